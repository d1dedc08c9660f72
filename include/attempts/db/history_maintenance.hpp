#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace attempts::db {

// Keeps the answer history's weekly partitions coming and drops the weeks past the retention:
// calls answer_history_maintain() (sql/schema.sql) at start and every hour, on a thread and a
// connection of its own, opened for each run and closed after it. Not on a pool connection: a
// partition is created or dropped under a lock on answer_history that saves also take, and
// waiting for it (up to the function's lock_timeout) must never stall a pipeline of saves. On
// Citus it runs through the coordinator, which distributes the partitions it creates.
class HistoryMaintenance {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::string database_url;
    unsigned retention_days = 400;  // 0: keep every week
    unsigned weeks_ahead = 4;
    std::chrono::milliseconds interval{std::chrono::hours(1)};
    // After a failed run (the database down, say), the next one comes sooner.
    std::chrono::milliseconds retry{std::chrono::minutes(1)};
  };

  struct Status {
    // Whole weeks after the current one that have their partition, as the last run left them;
    // -1 before the first run succeeds.
    std::int64_t weeks_ahead = -1;
    std::int64_t last_success_unix = 0;  // 0: never
    std::uint64_t runs = 0;
    std::uint64_t failures = 0;
    std::string last_error;
  };

  explicit HistoryMaintenance(Options options);
  // Stops the thread (an open run ends with its statement).
  ~HistoryMaintenance();

  HistoryMaintenance(const HistoryMaintenance&) = delete;
  HistoryMaintenance& operator=(const HistoryMaintenance&) = delete;

  void start();
  void stop();
  // Thread-safe.
  Status status() const;

 private:
  void run();
  // One call of answer_history_maintain(); records its outcome. True if it succeeded.
  bool maintain();

  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  Status status_;
  std::thread thread_;
};

}  // namespace attempts::db
