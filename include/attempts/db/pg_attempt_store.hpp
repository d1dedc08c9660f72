#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "attempts/db/pool_metrics.hpp"
#include "attempts/domain/attempt_store.hpp"

namespace attempts::db {

class ConnectionWorker;

struct PgPoolOptions {
  std::string database_url = "postgresql:///attempts";
  // Fixed number of connections, each owned by one worker thread.
  std::size_t pool_size = 2;
  // Most queued operations one worker sends as a single statement.
  std::size_t max_batch = 256;
  // Operations waiting per connection before new ones are refused as overloaded.
  std::size_t queue_capacity = 4096;
  // Reconnect backoff: doubles from the first delay up to the cap, with jitter.
  std::chrono::milliseconds reconnect_initial_delay{50};
  std::chrono::milliseconds reconnect_max_delay{1000};
  // Server-side limit on one statement; also bounds how long a request can wait on a lock.
  std::chrono::milliseconds statement_timeout{5000};
  // libpq's connect_timeout, so a connection attempt to an unreachable host cannot hang.
  std::chrono::seconds connect_timeout{2};
};

// The AttemptStore on PostgreSQL: a fixed pool of libpqxx connections, one worker thread each.
// An attempt id always goes to the same worker (id modulo pool size), so writes to one attempt
// are applied in the order they were submitted. Blocking libpqxx calls run only on the workers.
class PgAttemptStore final : public AttemptStore {
 public:
  // Starts the workers at once; they connect in the background, so a database that is down at
  // start-up does not stop the service from starting.
  explicit PgAttemptStore(PgPoolOptions options);
  ~PgAttemptStore() override;

  PgAttemptStore(const PgAttemptStore&) = delete;
  PgAttemptStore& operator=(const PgAttemptStore&) = delete;

  void save_answers(AttemptId id, std::string answers_json, SaveCallback done) override;
  void load_attempt(AttemptId id, LoadCallback done) override;
  void check_ready(ReadyCallback done) override;

  const PoolMetrics& metrics() const { return metrics_; }
  // Each connection's state and queue depth, in pool order.
  std::vector<ConnectionState> connection_states() const;

  // Runs everything already queued, then closes the connections and joins the workers.
  // Later calls are answered `unavailable`. Idempotent.
  void stop();

 private:
  ConnectionWorker& worker_for(AttemptId id);

  PgPoolOptions options_;
  PoolMetrics metrics_;
  std::vector<std::unique_ptr<ConnectionWorker>> workers_;
  std::atomic<std::size_t> next_ping_worker_{0};
};

}  // namespace attempts::db
