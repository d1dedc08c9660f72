#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attempts/metrics/metrics.hpp"

namespace attempts::db {

// What the connection pool counts. Shared by its connections on every event loop; every update
// is a relaxed atomic.
struct PoolMetrics {
  // Distinct attempts per UPDATE statement (after coalescing the writes to each attempt).
  metrics::Histogram batch_rows{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  metrics::Counter batches_committed;
  metrics::Counter rows_committed;
  metrics::Counter connect_attempts;
  metrics::Counter connect_failures;
  // Statements that failed, connections lost in use included.
  metrics::Counter database_errors;
  // Calls answered at their deadline because the database had not answered.
  metrics::Counter deadline_expirations;
  // Writes answered "outcome unknown": sent, but the reply was lost or came too late.
  metrics::Counter outcomes_unknown;
  // Connections dropped because a statement had no reply for the stall timeout.
  metrics::Counter stalled_connections;
  // Writes sent again after their statement rolled back with a transient error.
  metrics::Counter writes_retried;
  // Times a connection found an attempt's statement in flight on another connection (another
  // event loop's, or a Citus node's) and kept its calls of it queued until that one finished
  // (ClaimTable); counted once per statement waited for.
  metrics::Counter claim_waits;
  // Statements of a session lost in use (no reason from the server) whose attempts were held
  // back because they may still apply, and lost sessions whose backend the next setup saw gone
  // (ended by it if it still ran) (LostStatements).
  metrics::Counter lost_session_holds;
  metrics::Counter lost_backends_ended;
  // Citus: shard maps read again that differed from the one in use (shards moved or split),
  // and the number of shards of attempts in the newest map (0: not distributed).
  metrics::Counter shard_map_changes;
  std::atomic<std::size_t> citus_shards{0};
};

// One pool connection at scrape time.
struct ConnectionState {
  bool connected = false;
  std::size_t queue_depth = 0;  // calls waiting to be sent
  std::size_t in_flight = 0;    // calls sent, not yet answered
  // Open, but refusing calls: the table does not fit --durability, or the cluster is not what
  // --citus requires (the reason is in /readyz and the log).
  bool refusing = false;
};

// A connection's state as its event loop publishes it for scrapes from other threads.
struct ConnectionGauges {
  std::atomic<bool> connected{false};
  std::atomic<std::size_t> queue_depth{0};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> refusing{false};

  ConnectionState read() const {
    return {connected.load(std::memory_order_relaxed), queue_depth.load(std::memory_order_relaxed),
            in_flight.load(std::memory_order_relaxed), refusing.load(std::memory_order_relaxed)};
  }
};

}  // namespace attempts::db
