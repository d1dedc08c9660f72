#pragma once

#include <spdlog/common.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <pqxx/connection>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "attempts/db/pg_attempt_store.hpp"
#include "attempts/db/work_queue.hpp"

namespace attempts::db {

struct SaveOperation {
  AttemptId id;
  std::string answers_json;
  AttemptStore::SaveCallback done;
};

struct LoadOperation {
  AttemptId id;
  AttemptStore::LoadCallback done;
};

struct PingOperation {
  AttemptStore::ReadyCallback done;
};

using Operation = std::variant<SaveOperation, LoadOperation, PingOperation>;

// One pool connection and the thread that owns it. The thread takes everything waiting in the
// queue (up to max_batch), sends consecutive writes as one statement, and answers each
// operation through its callback. While the connection is down, queued operations are answered
// `unavailable` at once, and the thread reconnects with exponential backoff and jitter.
class ConnectionWorker {
 public:
  ConnectionWorker(std::size_t index, std::string conninfo, const PgPoolOptions& options,
                   PoolMetrics& metrics);
  ~ConnectionWorker();

  ConnectionWorker(const ConnectionWorker&) = delete;
  ConnectionWorker& operator=(const ConnectionWorker&) = delete;

  // On anything but `queued` the operation is handed back untouched for the caller to answer.
  PushResult submit(Operation& operation) { return queue_.push(operation); }

  ConnectionState state() const {
    return {connected_.load(std::memory_order_relaxed), queue_.size()};
  }

  // Runs what is queued, then closes the connection and joins the thread. Idempotent.
  void stop();

 private:
  using Clock = std::chrono::steady_clock;

  void run();
  void connect();
  void check_connection_alive();
  void drop_connection(const std::exception& cause);
  void execute(std::span<Operation> operations);
  void save(std::span<Operation> writes);
  void load(LoadOperation& operation);
  void ping(PingOperation& operation);
  Clock::duration next_backoff();
  // Logs a database error, but the same error at most once per 10 s, with a count of the lines
  // it held back; a different error is logged at once.
  void log_error(spdlog::level::level_enum level, std::string_view what, const std::string& message,
                 std::string_view cause);

  const std::size_t index_;
  const std::string conninfo_;
  const PgPoolOptions& options_;
  PoolMetrics& metrics_;

  WorkQueue<Operation> queue_;
  std::atomic<bool> connected_{false};  // mirrors connection_, for scrapes from other threads

  // Owned by the worker thread alone.
  std::unique_ptr<pqxx::connection> connection_;
  Clock::time_point next_connect_at_{};
  unsigned failed_connects_ = 0;
  struct RecentError {
    Clock::time_point logged_at{};
    unsigned not_logged = 0;
  };
  std::unordered_map<std::string, RecentError> recent_errors_;
  std::minstd_rand jitter_;

  std::thread thread_;  // last: starts after everything above is constructed
};

// Answers an operation that will not run.
void fail_operation(Operation& operation, SaveOutcome why);

}  // namespace attempts::db
