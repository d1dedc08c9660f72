#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "attempts/progress/exam_progress_state.hpp"
#include "attempts/progress/progress_events.hpp"
#include "attempts/progress/progress_hub.hpp"

namespace attempts::progress {

// One watched exam: reads it once per interval (one read in flight at most), its timer on its
// loop; applies each read to its state under its lock on the thread the read answers on (the
// staff reader's), and posts each event, built once, to every stream's loop.
// Streams join from any loop (under the lock); a stream that joins before the first read has
// answered gets its first event from that read.
class ExamWatch : public std::enable_shared_from_this<ExamWatch> {
 public:
  using Clock = std::chrono::steady_clock;

  ExamWatch(ProgressHub& hub, boost::asio::io_context& loop, ExamId exam, std::string token);

  ExamId exam() const { return exam_; }
  const std::string& token() const { return token_; }
  // The first read, now.
  void start();
  // Adds a stream; its first event (a snapshot, or changes since its Last-Event-ID) is posted to
  // it now if the state is known, else once the first read answers.
  void subscribe(const std::shared_ptr<ProgressStream>& stream);
  // Removes a stream; how many are left (waiting ones included).
  std::size_t unsubscribe(const ProgressStream& stream);
  // The current snapshot in at least `forms` (built at most once per event and form); null
  // before the first read.
  SharedEvent snapshot(EventForms forms);
  // No more reads; a read in flight is ignored when it answers.
  void stop();

 private:
  void do_read();
  // Applies a read to the state and sends its event (any thread).
  void on_read(ProgressReadResult result, Clock::time_point started);
  void schedule_next_read(Clock::time_point started);
  // Under mutex_: the first event for `stream`.
  SharedEvent first_event(const ProgressStream& stream);
  SharedEvent snapshot_locked(EventForms forms);
  // Under mutex_: the forms the joined streams need.
  EventForms forms_locked() const;
  ProgressEventHeader header_locked() const;
  void deliver(const std::shared_ptr<ProgressStream>& stream, SharedEvent event);

  ProgressHub& hub_;
  boost::asio::io_context& loop_;
  const ExamId exam_;
  const std::string token_;
  const std::chrono::microseconds quiet_after_;
  boost::asio::steady_timer timer_;  // the loop's
  std::atomic<bool> stopped_{false};

  std::mutex mutex_;
  ExamProgressState state_;
  std::optional<UnixMicros> since_;  // the next read's lower bound
  std::vector<std::shared_ptr<ProgressStream>> streams_;
  std::vector<std::shared_ptr<ProgressStream>> waiting_;  // for the first read
  SharedEvent snapshot_;
  std::uint64_t snapshot_seq_ = 0;
};

}  // namespace attempts::progress
