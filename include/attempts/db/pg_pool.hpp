#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "attempts/db/claim_table.hpp"
#include "attempts/db/pool_metrics.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/runtime/event_loops.hpp"

namespace attempts::db {

// What a crash of PostgreSQL may lose, chosen with --durability; the attempts table must have
// the persistence the mode needs, or the pool refuses to run in another mode silently.
enum class Durability {
  unlogged,  // UNLOGGED table: fastest; a crash empties it
  async,     // LOGGED, synchronous_commit off: a crash loses the last few hundred ms of commits
  sync,      // LOGGED, synchronous_commit on: a crash loses nothing acknowledged
};

// Whether `attempts` is a Citus distributed table (sql/citus.sql). Then every batched UPDATE
// holds the attempts of one shard and names its ids, so Citus routes it to one worker; the
// shard map is read at connect and re-read when it changes.
enum class CitusMode {
  detect,    // look at connect: the citus extension, and attempts in pg_dist_partition
  required,  // refuse calls (with the reason) unless attempts is distributed
  off,       // never group batches by shard (a distributed table still gets the statements
             // Citus accepts: it refuses the single-node ones)
};

// Where the batches of a distributed attempts enter the cluster (--citus-entry).
enum class CitusEntry {
  // At the node holding their shard: Citus runs them there, without the coordinator's hop.
  // Each event loop opens one more connection to each node that takes distributed statements
  // (active, metadata synced) and holds shards, at most kMaxEntryNodes of them; the loop's pool
  // connections stay on database_url, for everything else and for the shards of a node that
  // cannot be reached.
  nodes,
  coordinator,  // everything through database_url
};

// The most nodes an event loop opens connections to under CitusEntry::nodes; the shards of
// nodes past it go through database_url. Bounds the connections: pool_size + loops * nodes.
inline constexpr std::size_t kMaxEntryNodes = 64;

struct PgPoolOptions {
  std::string database_url = "postgresql:///attempts";
  Durability durability = Durability::unlogged;
  CitusMode citus = CitusMode::detect;
  CitusEntry citus_entry = CitusEntry::nodes;
  // Keep every applied save, start and submit in answer_history (--history): the saves then go
  // out as the statements that also write their record (sql.hpp's kept statements).
  bool history = true;
  // Connections in all, spread over the event loops (at least one per loop).
  std::size_t pool_size = 2;
  // Most writes one UPDATE statement carries.
  std::size_t max_batch = 256;
  // Statements a connection may have sent and not yet had answered (libpq's pipeline mode).
  // 1 by default: what queues while a statement runs then goes out as one bigger batch, which
  // costs PostgreSQL less per row and measured faster on loopback, in every durability mode
  // (README, Configuration). More saves a round trip per statement on a high-latency network.
  std::size_t pipeline_depth = 1;
  // Calls waiting per connection, by count and by bytes of answers, before new ones are refused
  // as overloaded.
  std::size_t queue_capacity = 4096;
  std::size_t queue_bytes = 16u << 20;
  // Reconnect backoff: doubles from the first delay up to the cap, with jitter.
  std::chrono::milliseconds reconnect_initial_delay{50};
  std::chrono::milliseconds reconnect_max_delay{1000};
  // A connection attempt that has not completed in this time is abandoned.
  std::chrono::milliseconds connect_timeout{2000};
  // Server-side limit on one statement (statement_timeout): a statement that waits on a lock
  // this long fails, and nothing is saved.
  std::chrono::milliseconds statement_timeout{5000};
  // Client-side limit: a statement without a reply for this long means the server or the
  // network has stalled (where statement_timeout cannot fire); the connection is dropped.
  std::chrono::milliseconds stall_timeout{10000};
  // How often an idle connection checks that the table's persistence still fits the mode.
  std::chrono::milliseconds durability_check_interval{5000};
};

class PgConnection;
class LoopRouter;
struct PoolContext;
class StatementPipeline;
class PipelineHandler;

// The AttemptStore on PostgreSQL: a fixed pool of libpqxx connections, each owned by one event
// loop and driven from it with libpq's non-blocking API in pipeline mode. A request is parsed,
// sent, committed and answered on the thread that read it. Within a loop, an attempt's call
// goes to the connection that still holds a call of it, if one does (LoopRouter), so the writes
// to one attempt made through one loop take effect in the order they were made. Across loops,
// a connection sends nothing of an attempt while another connection's statement of it may
// still apply (ClaimTable): a call made after an earlier call of its attempt was answered
// never takes effect before it, whichever loops they went through. On Citus with
// CitusEntry::nodes, each loop also opens a connection to each node holding shards, once the
// shard map names them.
class PgPool {
 public:
  using Clock = std::chrono::steady_clock;
  // How connection `index` on `loop` reaches the server `conninfo` names. Empty: libpq
  // (PipelineDriver). The model tests put a simulated database there.
  using MakePipeline = std::function<std::unique_ptr<StatementPipeline>(
      boost::asio::io_context& loop, std::size_t index, const std::string& conninfo,
      PipelineHandler& handler)>;

  // Creates the connections and starts connecting in the background, so a database that is
  // down at start-up does not stop the service from starting. `loops` must outlive the pool.
  // `now` is the clock deadlines are read from (the model tests pass a simulated one).
  PgPool(runtime::EventLoops& loops, PgPoolOptions options, MakePipeline make_pipeline = {},
         Clock::time_point (*now)() = &Clock::now);
  // Answers what is still pending (unavailable or, for writes already sent, unknown).
  ~PgPool();

  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // The store for calls made on event loop `loop`; use it only from that loop's thread.
  AttemptStore& store(std::size_t loop);

  const PoolMetrics& metrics() const { return metrics_; }
  // Which connection may send statements of an attempt (the model tests look at it at rest).
  const ClaimTable& claims() const { return claims_; }
  // Each connection's state, in pool order (node connections last, as they were opened).
  // Thread-safe.
  std::vector<ConnectionState> connection_states() const;
  // Calls queued or in flight on all connections. Thread-safe.
  std::size_t pending_calls() const;

  // Refuses new calls and closes each connection once what it holds is answered; `on_closed`
  // runs on one of the loops when the last has closed. Thread-safe.
  void close_when_idle(std::function<void()> on_closed);

  // Runs each connection's deadline check now, on its loop: the model tests call it after
  // moving their clock (the connections' own timers wait on the real one).
  void check_deadlines();

 private:
  // Opens a connection to a Citus node ("host:port") on event loop `loop`, from that loop's
  // thread; nullptr once closing.
  PgConnection* open_node(std::size_t loop, const std::string& node);
  // Creates and starts a connection; mutex_ held.
  PgConnection& add_connection(std::size_t loop, const std::string& conninfo);
  // Asks every loop to look again at the calls that wait for a claim (any thread).
  void claims_released();

  runtime::EventLoops& loops_;
  PgPoolOptions options_;
  MakePipeline make_pipeline_;
  PoolMetrics metrics_;
  ClaimTable claims_;
  // Set while the pool is destroyed: the connections' last releases wake nobody.
  std::atomic<bool> destroying_{false};
  // By loop: a wake-up is posted and has not run yet (many releases, one wake-up).
  std::unique_ptr<std::atomic<bool>[]> wake_pending_;
  // Declared after what it refers to; shared by every connection.
  std::unique_ptr<PoolContext> context_;
  // Node connections are added from the loops' threads while others read the gauges.
  mutable std::mutex mutex_;
  bool closing_ = false;
  std::vector<std::unique_ptr<ConnectionGauges>> gauges_;
  std::vector<std::unique_ptr<PgConnection>> connections_;
  std::vector<std::size_t> loop_of_;  // by connection
  std::vector<std::unique_ptr<LoopRouter>> stores_;
};

}  // namespace attempts::db
