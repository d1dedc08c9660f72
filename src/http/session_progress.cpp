// The progress stream of a session (GET /exams/{id}/progress): Server-Sent Events, chunked,
// one event per write. Events come from the exam's watch (progress_hub.hpp), posted to this
// loop; while one is written the next ones queue, up to SessionOptions::progress_queue_bytes.
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <charconv>

#include "attempts/http/responses.hpp"
#include "attempts/http/session.hpp"
#include "attempts/progress/progress_events.hpp"

namespace attempts::http {

namespace beast = boost::beast;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

void Session::do_progress() {
  if (auto refusal = services_.handler.begin_progress(request_, verdict_)) {
    return send(std::move(*refusal), /*close_after=*/false);
  }
  progress_exam_ = verdict_.match.exam_id;
  if (services_.progress == nullptr) {
    return send(services_.handler.refuse_progress(progress_exam_, ProgressReadOutcome::unavailable),
                false);
  }
  std::optional<std::string> last_event_id;
  if (request_.last_event_id_count == 1) last_event_id = request_.last_event_id;
  progress_ = services_.progress->open(socket_.get_executor().context(), *this, progress_exam_,
                                       verdict_.staff_id, std::move(last_event_id));
  if (!progress_) return send(services_.handler.progress_streams_full(), false);
  progress_queue_.clear();
  progress_queued_bytes_ = 0;
  progress_head_sent_ = progress_write_pending_ = progress_needs_snapshot_ = false;
  progress_heartbeat_due_ = progress_ending_ = false;
  progress_fell_behind_ = 0;
  // HTTP/1.0 has no chunked encoding: the body ends where the connection does.
  progress_chunked_ = version_ >= 11;
  // The first event (or the refusal) comes by the request's deadline; then the stream lives
  // on heartbeats and write timeouts, never the request timeout.
  phase_ = Phase::streaming;
  self_while_streaming_ = shared_from_this();
}

void Session::on_progress_refused(ProgressReadOutcome why) {
  if (phase_ != Phase::streaming || progress_head_sent_) return;
  close_progress();
  send(services_.handler.refuse_progress(progress_exam_, why), /*close_after=*/false);
}

void Session::on_progress_event(std::shared_ptr<const std::string> event) {
  if (phase_ != Phase::streaming || progress_ending_) return;
  if (progress_head_sent_ || progress_write_pending_) {
    if (progress_queued_bytes_ + event->size() > services_.options.progress_queue_bytes) {
      // The client reads slower than the exam changes: what waits is dropped, and it gets the
      // whole state once it has caught up, rather than this server buffering without bound.
      progress_queue_.clear();
      progress_queued_bytes_ = 0;
      if (++progress_fell_behind_ >= services_.options.progress_falls_behind) {
        services_.progress->metrics().slow_consumers_closed.fetch_add(1, std::memory_order_relaxed);
        return end_progress();
      }
      progress_needs_snapshot_ = true;
      return;
    }
    if (!progress_needs_snapshot_) {
      progress_queued_bytes_ += event->size();
      progress_queue_.push_back(std::move(event));
    }
  } else {
    progress_queue_.push_back(std::move(event));
  }
  if (!progress_write_pending_) do_write_progress();
}

void Session::do_write_progress() {
  if (draining_) progress_ending_ = true;
  chunk_prefix_.clear();
  bool first_event = false;
  if (!progress_head_sent_) {
    if (progress_queue_.empty()) return progress_ending_ ? do_close() : void();
    progress_head_sent_ = first_event = true;
    Response head = services_.handler.progress_head();
    record(head);
    head.version(version_);
    head.keep_alive(false);  // a stream ends with its connection
    if (progress_chunked_) head.chunked(true);
    serialize_response(head, /*omit_body=*/true, chunk_prefix_, cors_fields(head));
  }
  if (progress_needs_snapshot_) {
    progress_needs_snapshot_ = false;
    progress_writing_ = services_.progress->snapshot(*progress_);
  } else if (!progress_queue_.empty()) {
    progress_writing_ = std::move(progress_queue_.front());
    progress_queue_.pop_front();
    progress_queued_bytes_ -= std::min(progress_queued_bytes_, progress_writing_->size());
  } else {
    progress_writing_.reset();
  }
  std::string_view body;
  if (progress_writing_) {
    body = *progress_writing_;
  } else if (progress_heartbeat_due_) {
    body = progress::kHeartbeat;
  }
  progress_heartbeat_due_ = false;
  const bool ending = progress_ending_ && progress_queue_.empty() && !progress_needs_snapshot_;
  if (body.empty() && !first_event && !ending) {
    // Nothing to write: wait for the next event, with a heartbeat if none comes.
    set_deadline(Clock::now() + services_.options.progress_heartbeat);
    return;
  }
  // Only the response's first event says how long to wait before reconnecting.
  const std::string retry =
      first_event ? progress::retry_field(services_.options.progress_interval) : std::string();
  const std::size_t size = retry.size() + body.size();
  if (size > 0 && progress_chunked_) {
    char digits[20];
    const auto end = std::to_chars(digits, digits + sizeof digits, size, 16).ptr;
    chunk_prefix_.append(digits, end).append("\r\n");
  }
  chunk_prefix_.append(retry);
  std::string_view suffix = size > 0 && progress_chunked_ ? "\r\n" : "";
  if (ending && progress_chunked_) suffix = size > 0 ? "\r\n0\r\n\r\n" : "0\r\n\r\n";
  progress_write_pending_ = true;
  const std::array<net::const_buffer, 3> buffers{net::buffer(chunk_prefix_), net::buffer(body),
                                                 net::buffer(suffix)};
  set_deadline(Clock::now() + services_.options.write_timeout);
  net::async_write(socket_, buffers,
                   [self = shared_from_this(), ending](beast::error_code ec, std::size_t bytes) {
                     if (ending && !ec) {
                       // The body is complete: the connection closes once the client has it.
                       self->progress_write_pending_ = false;
                       self->progress_writing_.reset();
                       self->close_progress();
                       return self->do_linger();
                     }
                     self->on_write_progress(ec, bytes);
                   });
}

void Session::on_write_progress(beast::error_code ec, std::size_t) {
  progress_write_pending_ = false;
  progress_writing_.reset();
  if (ec || phase_ != Phase::streaming) return do_close();
  do_write_progress();
}

void Session::on_progress_timer() {
  if (progress_write_pending_) return do_close();  // the client does not read: write timeout
  if (!progress_head_sent_) {
    // No first event by the request's deadline: the database did not answer in time.
    close_progress();
    return send(services_.handler.refuse_progress(progress_exam_, ProgressReadOutcome::unavailable),
                false);
  }
  progress_heartbeat_due_ = true;
  do_write_progress();
}

void Session::end_progress() {
  if (phase_ != Phase::streaming) return;
  progress_ending_ = true;
  progress_queue_.clear();
  progress_queued_bytes_ = 0;
  progress_needs_snapshot_ = false;
  if (!progress_head_sent_) {
    // Not started yet: nothing was sent, the connection just closes.
    return do_close();
  }
  if (!progress_write_pending_) do_write_progress();
}

void Session::close_progress() {
  if (progress_ && services_.progress != nullptr) services_.progress->close(*progress_);
  progress_.reset();
  progress_queue_.clear();
  progress_queued_bytes_ = 0;
  self_while_streaming_.reset();
}

}  // namespace attempts::http
