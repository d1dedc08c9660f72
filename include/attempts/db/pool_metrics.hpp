#pragma once

#include <cstddef>
#include <vector>

#include "attempts/metrics/metrics.hpp"

namespace attempts::db {

// What the connection pool counts. Shared by its workers; every update is a relaxed atomic.
struct PoolMetrics {
  // Distinct attempts per UPDATE statement (after keeping the last write per attempt).
  metrics::Histogram batch_rows{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  metrics::Counter batches_committed;
  metrics::Counter rows_committed;
  metrics::Counter connect_attempts;
  metrics::Counter connect_failures;
  // Statements that failed, connections lost in use included.
  metrics::Counter database_errors;
};

// One pool connection at scrape time.
struct ConnectionState {
  bool connected = false;
  std::size_t queue_depth = 0;
};

}  // namespace attempts::db
