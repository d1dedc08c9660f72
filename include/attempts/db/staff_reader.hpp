#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "attempts/domain/attempt_exports.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/domain/exam_progress.hpp"
#include "attempts/runtime/event_loops.hpp"

namespace attempts::db {

struct StaffReaderOptions {
  std::string database_url = "postgresql:///attempts";
  // Connections, one worker thread each (--staff-connections): exports and staff reads of one
  // attempt share them, and never touch the write pool's.
  std::size_t connections = 1;
  // Exports at once (--max-exports); one more is refused (busy) without reading anything.
  std::size_t max_exports = 1;
  // Server-side limit on each statement (each FETCH of an export is one).
  std::chrono::milliseconds statement_timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
  // How long an export waits for its client to ask for the next chunk: past it the export is
  // ended (the client's connection has timed out by then; this bounds the snapshot's life
  // should the session never say).
  std::chrono::milliseconds client_timeout{60000};
  // A chunk's target size: each FETCH asks for as many rows as fit in it, judged by the largest
  // row seen so far, at least 1 and at most max_chunk_rows; the first asks for
  // first_chunk_rows (nothing is known of the rows' sizes yet).
  std::size_t chunk_bytes = 256 * 1024;
  std::size_t max_chunk_rows = 1000;
  std::size_t first_chunk_rows = 64;
  // Reads and exports waiting for a connection; more are refused (overloaded, 503).
  std::size_t queue_capacity = 256;
  // Attempts per second one export reads at most (--export-rate; 0: as fast as its client
  // takes them). Every exported row costs PostgreSQL and this process CPU the saves share; at
  // the default an exam of 20,000 students takes a fifth of a second, 100,000 a second.
  std::size_t rows_per_second = 100000;
};

// What /metrics shows of the staff reader. Relaxed atomics, written by its threads.
struct StaffReaderMetrics {
  std::atomic<std::uint64_t> exports_started{0};
  std::atomic<std::uint64_t> exports_finished{0};  // every row sent to the client
  std::atomic<std::uint64_t> exports_aborted{0};   // the client left, or its timeout passed
  std::atomic<std::uint64_t> exports_failed{0};    // the database failed or timed out
  std::atomic<std::uint64_t> exports_refused{0};   // --max-exports running already
  std::atomic<std::uint64_t> export_rows{0};
  std::atomic<std::uint64_t> export_bytes{0};
  std::atomic<std::uint64_t> reads{0};  // staff reads of one attempt or its history
  std::atomic<std::uint64_t> reads_failed{0};
  std::atomic<std::uint64_t> progress_reads{0};  // the progress streams' reads and checks
  std::atomic<std::int64_t> exports_running{0};
  std::atomic<std::int64_t> connections_busy{0};
  std::atomic<std::int64_t> connections_up{0};
};

class ExportJob;
class LoopExports;
class StaffProgressReads;
class LoopStaffStore;
class StaffConnection;
struct StaffJob;

// Staff reads on a small set of connections of their own: exports of an exam's attempts
// (AttemptExports) and a staff member's read of one attempt or its history (AttemptStore with
// StoreCall::staff_id). Each connection has a worker thread that runs one job at a time with
// blocking libpq calls; a job's results go back to the event loop that asked, posted to it.
// Nothing here runs on the write pool's connections or its event loops' time but the posts
// and the writes of the chunks.
//
// An export is one REPEATABLE READ, READ ONLY transaction on one connection: the staff member's
// right to the exam is checked in its snapshot, then a cursor is read a FETCH at a time. The
// worker fetches the next rows only when the loop asks (AttemptExports::next, once the
// previous chunk is written), encodes them with the caller's encoder on its own thread, and
// hands the chunk over; so at most one chunk is being written and one read. Cancelling (the
// client left) wakes the worker, which cancels a FETCH in progress and rolls back: the
// connection is free for the next job at once.
class StaffReader {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts the worker threads; they connect when the first job comes. `loops` must outlive it.
  StaffReader(runtime::EventLoops& loops, StaffReaderOptions options);
  // stop()s.
  ~StaffReader();

  StaffReader(const StaffReader&) = delete;
  StaffReader& operator=(const StaffReader&) = delete;

  // The ports for calls made on event loop `loop`; use them only from that loop's thread.
  AttemptStore& store(std::size_t loop);
  AttemptExports& exports(std::size_t loop);
  // The progress streams' reads (thread-safe): short, so they go ahead of queued exports.
  ProgressReads& progress_reads();

  const StaffReaderMetrics& metrics() const { return metrics_; }
  std::size_t connections() const { return options_.connections; }
  // How long the oldest export still running has run (0: none runs). Its snapshot is as old:
  // while it lasts, VACUUM cannot remove the row versions the saves leave behind.
  std::chrono::seconds longest_export() const;

  // Ends every export, answers what still waits (unavailable), and joins the workers. Call
  // it once no session uses the ports any more. Thread-safe; later jobs are refused.
  void stop();

 private:
  friend class LoopStaffStore;
  friend class LoopExports;
  friend class StaffProgressReads;

  // Queues a job for the next free worker; false when stopping or the queue is full.
  bool enqueue(std::shared_ptr<StaffJob> job);
  void work(std::size_t worker);
  void run_read(StaffConnection& connection, StaffJob& job);
  void run_progress(StaffConnection& connection, StaffJob& job);
  void run_export(std::size_t worker, StaffConnection& connection, ExportJob& job);
  // Whether one more export may start now (counted as running if so).
  bool admit_export();
  void export_ended();

  runtime::EventLoops& loops_;
  const StaffReaderOptions options_;
  StaffReaderMetrics metrics_;
  std::vector<std::unique_ptr<LoopStaffStore>> stores_;
  std::vector<std::unique_ptr<LoopExports>> exports_;
  std::unique_ptr<StaffProgressReads> progress_reads_;
  // When each worker's export started (0: none), for longest_export().
  std::unique_ptr<std::atomic<std::int64_t>[]> export_started_at_;

  std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<std::shared_ptr<StaffJob>> queue_;
  // The exports on a worker now, so that stop() can end them.
  std::vector<std::shared_ptr<ExportJob>> running_;
  bool stopping_ = false;
  // stopping_, for the workers' polls during a statement, which take no lock.
  std::atomic<bool> stopping_flag_{false};
  std::vector<std::thread> workers_;
};

}  // namespace attempts::db
