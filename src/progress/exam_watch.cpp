#include "exam_watch.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

namespace attempts::progress {

ExamWatch::ExamWatch(ProgressHub& hub, boost::asio::io_context& loop, ExamId exam,
                     std::string token)
    : hub_(hub),
      loop_(loop),
      exam_(exam),
      token_(std::move(token)),
      quiet_after_(hub.options().quiet_after),
      timer_(loop),
      state_(static_cast<std::size_t>(std::max<std::int64_t>(
          1, std::chrono::duration_cast<std::chrono::milliseconds>(hub.options().resumable_for) /
                 std::max(hub.options().interval, std::chrono::milliseconds(1))))) {}

void ExamWatch::start() {
  boost::asio::post(loop_, [self = shared_from_this()] { self->do_read(); });
}

void ExamWatch::stop() {
  stopped_ = true;
  boost::asio::post(loop_, [self = shared_from_this()] { self->timer_.cancel(); });
}

void ExamWatch::do_read() {
  if (stopped_) return;
  std::optional<UnixMicros> since;
  {
    const std::lock_guard lock(mutex_);
    since = since_;
  }
  const auto started = Clock::now();
  hub_.reads_.changed_since(
      exam_, since, started + hub_.options().read_timeout,
      [weak = weak_from_this(), started](ProgressReadResult result) {
        // On the staff reader's thread (nice 10) as a rule: the state's update and the
        // event's text and compression (tens of ms for a busy exam of 20,000 attempts)
        // never hold up an event loop's saves.
        const auto self = weak.lock();
        if (!self) return;
        self->on_read(std::move(result), started);
        boost::asio::post(self->loop_, [self, started] { self->schedule_next_read(started); });
      });
}

void ExamWatch::on_read(ProgressReadResult result, Clock::time_point started) {
  if (stopped_) return;
  ProgressMetrics& metrics = hub_.metrics();
  metrics.queries.fetch_add(1, std::memory_order_relaxed);
  metrics.query_microseconds.fetch_add(
      static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count()),
      std::memory_order_relaxed);
  {
    const std::lock_guard lock(mutex_);
    if (result.outcome != ProgressReadOutcome::done) {
      metrics.query_failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("progress of exam {}: read failed: {}", exam_,
                   result.problem.empty() ? "unavailable" : result.problem);
      if (!state_.ready()) {
        // Nothing to show the streams that wait for the first read: they are refused (503).
        for (const auto& stream : waiting_) {
          boost::asio::post(stream->loop_, [stream] {
            if (stream->listener_ != nullptr) {
              stream->listener_->on_progress_refused(ProgressReadOutcome::unavailable);
            }
          });
        }
        waiting_.clear();
      }
    } else {
      metrics.query_rows.fetch_add(result.attempts.size(), std::memory_order_relaxed);
      const bool first = !state_.ready();
      const auto changed = state_.apply(result.attempts, result.at);
      since_ =
          state_.at() -
          std::chrono::duration_cast<std::chrono::microseconds>(hub_.options().overlap).count();
      if (!first && !streams_.empty()) {
        const auto event = make_event(changes_event(header_locked(), changed), forms_locked());
        for (const auto& stream : streams_) deliver(stream, event);
      }
      for (const auto& stream : waiting_) {
        deliver(stream, first_event(*stream));
        streams_.push_back(stream);
      }
      waiting_.clear();
    }
  }
}

void ExamWatch::schedule_next_read(Clock::time_point started) {
  if (stopped_) return;
  // The next read an interval after this one started (at once if this one took longer).
  timer_.expires_at(started + hub_.options().interval);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->do_read();
  });
}

void ExamWatch::subscribe(const std::shared_ptr<ProgressStream>& stream) {
  const std::lock_guard lock(mutex_);
  if (!state_.ready()) {
    waiting_.push_back(stream);
    return;
  }
  deliver(stream, first_event(*stream));
  streams_.push_back(stream);
}

std::size_t ExamWatch::unsubscribe(const ProgressStream& stream) {
  const std::lock_guard lock(mutex_);
  const auto is_it = [&](const std::shared_ptr<ProgressStream>& s) { return s.get() == &stream; };
  std::erase_if(streams_, is_it);
  std::erase_if(waiting_, is_it);
  return streams_.size() + waiting_.size();
}

SharedEvent ExamWatch::snapshot(EventForms forms) {
  const std::lock_guard lock(mutex_);
  if (!state_.ready()) return nullptr;
  return snapshot_locked(forms);
}

EventForms ExamWatch::forms_locked() const {
  EventForms forms;
  for (const auto& stream : streams_) forms = forms | stream->forms_;
  return forms;
}

SharedEvent ExamWatch::first_event(const ProgressStream& stream) {
  ProgressMetrics& metrics = hub_.metrics();
  if (stream.last_event_id_) {
    const auto id = parse_event_id(*stream.last_event_id_);
    if (id && id->watch == token_) {
      if (const auto changed = state_.changed_after(id->seq)) {
        metrics.resumes.fetch_add(1, std::memory_order_relaxed);
        return make_event(changes_event(header_locked(), *changed), stream.forms_);
      }
    }
    metrics.snapshots_resume_too_old.fetch_add(1, std::memory_order_relaxed);
  } else {
    metrics.snapshots_new.fetch_add(1, std::memory_order_relaxed);
  }
  return snapshot_locked(stream.forms_);
}

SharedEvent ExamWatch::snapshot_locked(EventForms forms) {
  const bool current = snapshot_ && snapshot_seq_ == state_.seq();
  if (!current || !snapshot_->forms.covers(forms)) {
    // In every form a stream of the exam may ask for before the next event.
    if (current) forms = forms | snapshot_->forms;
    snapshot_ = make_event(snapshot_event(header_locked(), state_.attempts(),
                                          hub_.options().interval, hub_.options().quiet_after),
                           forms | forms_locked());
    snapshot_seq_ = state_.seq();
  }
  return snapshot_;
}

ProgressEventHeader ExamWatch::header_locked() const {
  return {exam_, token_, state_.seq(), state_.at(), state_.totals(quiet_after_)};
}

void ExamWatch::deliver(const std::shared_ptr<ProgressStream>& stream, SharedEvent event) {
  hub_.metrics().events_sent.fetch_add(1, std::memory_order_relaxed);
  boost::asio::post(stream->loop_, [stream, event = std::move(event)]() mutable {
    if (stream->listener_ != nullptr) stream->listener_->on_progress_event(std::move(event));
  });
}

}  // namespace attempts::progress
