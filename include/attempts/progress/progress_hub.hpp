#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "attempts/domain/exam_progress.hpp"
#include "attempts/progress/encoded_event.hpp"
#include "attempts/runtime/event_loops.hpp"

namespace attempts::progress {

struct ProgressOptions {
  // One read of the database per watched exam this often (--progress-interval).
  std::chrono::milliseconds interval{2000};
  // An attempt not submitted and not saved for longer counts as quiet (--progress-quiet).
  std::chrono::seconds quiet_after{300};
  // Streams open at once on this process (--max-progress-streams); one more is refused.
  std::size_t max_streams = 1000;
  // How far back each read looks before the previous read's database time: a save stamps its
  // row (clock_timestamp()) before it commits, and may commit after a read that did not see it,
  // for up to the write path's statement timeout.
  std::chrono::milliseconds overlap{10000};
  // How long a client can be away and still resume with Last-Event-ID.
  std::chrono::seconds resumable_for{300};
  // Each read must answer by then.
  std::chrono::milliseconds read_timeout{10000};
};

// What /metrics shows of the progress streams. Relaxed atomics.
struct ProgressMetrics {
  std::atomic<std::int64_t> streams_open{0};
  std::atomic<std::int64_t> watched_exams{0};
  std::atomic<std::uint64_t> queries{0};
  std::atomic<std::uint64_t> query_failures{0};
  std::atomic<std::uint64_t> query_microseconds{0};  // sum of the queries' durations
  std::atomic<std::uint64_t> query_rows{0};
  std::atomic<std::uint64_t> events_sent{0};
  std::atomic<std::uint64_t> snapshots_new{0};
  std::atomic<std::uint64_t> snapshots_resume_too_old{0};
  std::atomic<std::uint64_t> snapshots_slow_consumer{0};
  std::atomic<std::uint64_t> resumes{0};
  std::atomic<std::uint64_t> slow_consumers_closed{0};
  std::atomic<std::uint64_t> streams_refused{0};
};

// The stream's side (an HTTP session): called on the stream's own loop only.
class ProgressListener {
 public:
  // The next event's bytes, shared with every other stream: the first is a snapshot or the
  // changes since Last-Event-ID.
  virtual void on_progress_event(SharedEvent event) = 0;
  // The stream cannot start (before any event only): not_found or unavailable.
  virtual void on_progress_refused(ProgressReadOutcome why) = 0;

 protected:
  ~ProgressListener() = default;
};

class ExamWatch;

// One open stream, between its listener's loop and its exam's watch.
class ProgressStream {
 public:
  ProgressStream(boost::asio::io_context& loop, ProgressListener& listener, bool gzip)
      : loop_(loop), listener_(&listener), forms_{.text = !gzip, .gzip = gzip} {}

  bool gzip() const { return forms_.gzip; }

 private:
  friend class ProgressHub;
  friend class ExamWatch;

  boost::asio::io_context& loop_;
  ProgressListener* listener_;  // the loop's; null once closed
  std::shared_ptr<ExamWatch> watch_;
  std::optional<std::string> last_event_id_;
  const EventForms forms_;  // the form of the events this stream sends
  bool closed_ = false;     // the loop's
};

// The progress streams of this process: one ExamWatch per watched exam, created by its first
// stream and dropped with its last. A watch reads the exam once per interval whatever the
// number of its streams, keeps the exam's state in memory (a new stream's snapshot costs no
// read), builds each event once and posts the same bytes to every stream's loop.
class ProgressHub {
 public:
  ProgressHub(runtime::EventLoops& loops, ProgressReads& reads, ProgressOptions options);
  ~ProgressHub();

  ProgressHub(const ProgressHub&) = delete;
  ProgressHub& operator=(const ProgressHub&) = delete;

  const ProgressOptions& options() const { return options_; }
  ProgressMetrics& metrics() { return metrics_; }

  // Opens a stream on `loop` (the caller's), whose events are sent gzipped or not: nullptr when
  // --max-progress-streams are open.
  // Otherwise the staff member's right to the exam is checked, and the listener gets the
  // first event or the refusal, on `loop`.
  std::shared_ptr<ProgressStream> open(boost::asio::io_context& loop, ProgressListener& listener,
                                       ExamId exam, std::optional<std::string> staff_id,
                                       std::optional<std::string> last_event_id, bool gzip);
  // A fresh snapshot for a stream that fell behind, in its form (null while its exam has none
  // yet).
  SharedEvent snapshot(ProgressStream& stream);
  // Ends a stream (on its loop): nothing reaches its listener after this.
  void close(ProgressStream& stream);

  // Ends every watch's reads (at shutdown, once the loops stop).
  void stop();

 private:
  friend class ExamWatch;

  void on_authorized(const std::shared_ptr<ProgressStream>& stream, ExamId exam,
                     ProgressReadResult result);

  runtime::EventLoops& loops_;
  ProgressReads& reads_;
  const ProgressOptions options_;
  ProgressMetrics metrics_;
  std::mutex mutex_;
  std::unordered_map<ExamId, std::shared_ptr<ExamWatch>> watches_;
  std::atomic<bool> stopped_{false};
};

}  // namespace attempts::progress
