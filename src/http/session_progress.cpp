// The progress stream of a session (GET /exams/{id}/progress): Server-Sent Events, chunked,
// one event per write. Events come from the exam's watch (progress_hub.hpp), posted to this
// loop; while one is written the next ones queue, up to SessionOptions::progress_queue_bytes.
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <charconv>

#include "attempts/codec/gzip_pieces.hpp"
#include "attempts/http/export_format.hpp"
#include "attempts/http/responses.hpp"
#include "attempts/http/session.hpp"
#include "attempts/progress/progress_events.hpp"

namespace attempts::http {

namespace beast = boost::beast;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// The bytes an event puts on this stream's wire.
std::size_t sent_size(const progress::EncodedEvent& event, bool gzip) {
  return gzip ? event.gzip.bytes.size() : event.text.size();
}

const codec::DeflatedPiece& heartbeat_piece() {
  static const codec::DeflatedPiece piece = codec::deflate_piece(progress::kHeartbeat);
  return piece;
}

}  // namespace

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
                                       verdict_.staff_id, std::move(last_event_id),
                                       accepts_gzip(request_.accept_encoding));
  if (!progress_) return send(services_.handler.progress_streams_full(), false);
  progress_queue_.clear();
  progress_queued_bytes_ = 0;
  progress_head_sent_ = progress_write_pending_ = progress_needs_snapshot_ = false;
  progress_heartbeat_due_ = progress_ending_ = false;
  progress_fell_behind_ = 0;
  // HTTP/1.0 has no chunked encoding: the body ends where the connection does.
  progress_chunked_ = version_ >= 11;
  if (progress_->gzip()) {
    progress_gzip_.emplace();
  } else {
    progress_gzip_.reset();
  }
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

void Session::on_progress_event(progress::SharedEvent event) {
  if (phase_ != Phase::streaming || progress_ending_) return;
  if (progress_head_sent_ || progress_write_pending_) {
    if (progress_queued_bytes_ + sent_size(*event, progress_gzip_.has_value()) >
        services_.options.progress_queue_bytes) {
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
      progress_queued_bytes_ += sent_size(*event, progress_gzip_.has_value());
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
    Response head = services_.handler.progress_head(progress_gzip_.has_value());
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
    progress_queued_bytes_ -=
        std::min(progress_queued_bytes_, sent_size(*progress_writing_, progress_gzip_.has_value()));
  } else {
    progress_writing_.reset();
  }
  if (progress_writing_ &&
      !(progress_gzip_ ? progress_writing_->forms.gzip : progress_writing_->forms.text)) {
    // Never expected (a watch builds the forms of its streams): end the stream rather than
    // send the wrong bytes; the client reconnects.
    spdlog::error("progress of exam {}: an event without this stream's form", progress_exam_);
    progress_writing_.reset();
    progress_queue_.clear();
    progress_queued_bytes_ = 0;
    progress_ending_ = true;
  }
  const bool ending = progress_ending_ && progress_queue_.empty() && !progress_needs_snapshot_;
  const codec::DeflatedPiece* piece = nullptr;  // what to send, deflated; null: nothing
  std::string_view body;
  if (progress_writing_) {
    piece = &progress_writing_->gzip;
    body = progress_writing_->text;
  } else if (progress_heartbeat_due_) {
    piece = &heartbeat_piece();
    body = progress::kHeartbeat;
  }
  progress_heartbeat_due_ = false;
  if (piece == nullptr && !first_event && !ending) {
    // Nothing to write: wait for the next event, with a heartbeat if none comes.
    set_deadline(Clock::now() + services_.options.progress_heartbeat);
    return;
  }
  // What goes before the event in this chunk: only the response's first event says how long
  // to wait before reconnecting, behind the gzip header when gzipped.
  std::string lead =
      first_event ? progress::retry_field(services_.options.progress_interval) : std::string();
  progress_tail_.clear();
  if (progress_gzip_) {
    auto& gzip = *progress_gzip_;
    std::string deflated_lead = first_event ? std::string(codec::GzipBody::header()) : "";
    if (!lead.empty()) {
      const auto retry = codec::deflate_piece(lead);
      gzip.add(retry);
      deflated_lead.append(retry.bytes);
    }
    lead = std::move(deflated_lead);
    if (piece != nullptr) {
      gzip.add(*piece);
      body = piece->bytes;
    }
    if (ending) progress_tail_ = gzip.end();
  }
  const std::size_t size = lead.size() + body.size() + progress_tail_.size();
  if (size > 0 && progress_chunked_) {
    char digits[20];
    const auto end = std::to_chars(digits, digits + sizeof digits, size, 16).ptr;
    chunk_prefix_.append(digits, end).append("\r\n");
  }
  chunk_prefix_.append(lead);
  if (size > 0 && progress_chunked_) progress_tail_.append("\r\n");
  if (ending && progress_chunked_) progress_tail_.append("0\r\n\r\n");
  progress_write_pending_ = true;
  const std::array<net::const_buffer, 3> buffers{net::buffer(chunk_prefix_), net::buffer(body),
                                                 net::buffer(progress_tail_)};
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
