#include "attempts/http/session.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <charconv>

#include "attempts/http/responses.hpp"

namespace attempts::http {

namespace beast = boost::beast;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// Buffers kept between requests up to this size, so a busy connection does not allocate per
// request; larger ones (a big answer set, a long response) are freed when the exchange ends.
constexpr std::size_t kKeptReadBuffer = 2048;
constexpr std::size_t kKeptWriteBuffer = 1024;
// The first read of a request: a typical request (a few hundred bytes) arrives whole.
constexpr std::size_t kFirstRead = 1536;

// What lingering connections read and discard; shared by the loop's sessions, whose reads all
// run on its one thread.
thread_local std::array<char, 4096> discard_buffer;

}  // namespace

// --- LoopSessions -------------------------------------------------------------------------------

void LoopSessions::add(Session& session) {
  sessions_.insert(&session);
}

void LoopSessions::remove(Session& session) {
  sessions_.erase(&session);
  if (draining_ && sessions_.empty()) {
    if (auto on_empty = std::exchange(on_empty_, nullptr)) on_empty();
  }
}

void LoopSessions::drain(std::function<void()> on_empty) {
  draining_ = true;
  if (sessions_.empty()) return on_empty();
  on_empty_ = std::move(on_empty);
  // drain() may end a session (and remove it) at once: iterate over a copy.
  const std::vector<Session*> sessions(sessions_.begin(), sessions_.end());
  for (Session* session : sessions) {
    if (sessions_.contains(session)) session->drain();
  }
}

// --- Session ------------------------------------------------------------------------------------

Session::Session(Socket&& socket, LoopServices services)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      buffer_(services.options.read_buffer_limit()),
      services_(services) {}

// Counted in when accepted (Server::accept), counted out here.
Session::~Session() {
  services_.metrics.open_connections.add(-1);
}

void Session::start() {
  services_.sessions.add(*this);
  if (services_.sessions.draining()) draining_ = true;
  do_wait_request();
}

void Session::drain() {
  draining_ = true;
  // An idle or lingering connection closes now; a busy one after its response is written.
  if (phase_ == Phase::idle || phase_ == Phase::lingering) do_close();
  // A progress stream never finishes by itself: it ends now, with a clean end of its body.
  if (phase_ == Phase::streaming) end_progress();
}

void Session::do_wait_request() {
  if (draining_) return do_close();
  phase_ = Phase::idle;
  set_deadline(Clock::now() + services_.options.idle_timeout);
  // Pipelined bytes may already be here. Otherwise read the first bytes of the next request:
  // Asio reads only once the socket is readable (a read on an exhausted socket waits for epoll
  // without a system call), which async_wait would cost an epoll_ctl to find out.
  if (buffer_.size() > 0) return begin_request();
  socket_.async_read_some(buffer_.prepare(kFirstRead),
                          [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                            if (ec || self->phase_ != Phase::idle) return self->do_close();
                            self->buffer_.commit(bytes);
                            self->begin_request();
                          });
}

void Session::begin_request() {
  if (draining_) return do_close();
  phase_ = Phase::reading;
  started_ = Clock::now();
  set_deadline(started_ + services_.options.request_timeout);
  // A fresh parser per request: limits apply to each request, not the connection.
  reader_.emplace(request_);
  reader_->body_limit(services_.options.body_limit);
  reader_->header_limit(services_.options.header_limit);
  // Nothing of the previous request may shape the answer to an unreadable next one.
  verdict_ = {};
  version_ = 11;
  keep_alive_ = true;
  head_request_ = false;
  // What is already buffered (usually the whole request: it came in one read) is parsed here;
  // the asynchronous read, which would only hand it back through the loop's queue, is for a
  // request that has not arrived whole.
  beast::error_code ec;
  if (parse_buffered(ec, /*header_only=*/true) && reader_->is_header_done()) {
    return on_read_header(ec, 0);
  }
  if (ec) return on_read_error(ec);
  beast_http::async_read_header(
      socket_, buffer_, *reader_,
      beast::bind_front_handler(&Session::on_read_header, shared_from_this()));
}

bool Session::parse_buffered(beast::error_code& ec, bool header_only) {
  // As Beast's read operations feed the parser, without reading: put() takes what it can
  // (the header, then the body), and asks for more bytes with need_more. The header is judged
  // before any of the body is parsed, as when it is read.
  while (buffer_.size() > 0 && !reader_->is_done() && !(header_only && reader_->is_header_done())) {
    const std::size_t used = reader_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == beast_http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) return false;
    if (used == 0) break;
  }
  return true;
}

void Session::on_read_header(beast::error_code ec, std::size_t) {
  if (ec) return on_read_error(ec);
  const Request& header = request_;
  started_ = Clock::now();
  if (services_.options.access_log) {
    beast::error_code peer_error;
    const auto peer = socket_.remote_endpoint(peer_error);
    access_line_ = (peer_error ? std::string("-") : peer.address().to_string()) + " " +
                   header.method_text + " " + header.target;
  }
  version_ = header.version;
  keep_alive_ = header.keep_alive;
  head_request_ = header.method == Verb::head;
  // A Transfer-Encoding other than a final "chunked" leaves the body's length unknown; reading
  // on would take the body for the next request (RFC 9112 6.3: answer 400 and close).
  if (header.has_transfer_encoding && !header.chunked) {
    return send(error_response(Status::bad_request,
                               "unsupported Transfer-Encoding: only chunked is accepted"),
                /*close_after=*/true);
  }
  // Judged on the header alone: fields in a chunked body's trailer (which Beast merges into the
  // message) cannot turn a refused request into an accepted one.
  verdict_ = services_.handler.judge_header(header, services_.tokens);
  // RFC 9110 10.1.1: an expectation from an HTTP/1.0 client is ignored.
  if (version_ < 11 || !beast::iequals(header.expect, "100-continue")) {
    return do_read_body();
  }
  // Refuse before the client sends a body we would not accept.
  if (verdict_.rejection) return send(std::move(*verdict_.rejection), /*close_after=*/true);
  net::async_write(socket_, net::buffer(kContinue),
                   [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                     if (write_ec) return self->do_close();
                     self->do_read_body();
                   });
}

void Session::do_read_body() {
  beast::error_code ec;
  if (!parse_buffered(ec, /*header_only=*/false)) return on_read_body(ec, 0);
  if (reader_->is_done()) return on_read_body({}, 0);
  beast_http::async_read(socket_, buffer_, *reader_,
                         beast::bind_front_handler(&Session::on_read_body, shared_from_this()));
}

void Session::on_read_body(beast::error_code ec, std::size_t) {
  if (ec) return on_read_error(ec);
  if (verdict_.rejection) {
    // Refused on the header; the body was read only to keep the connection usable.
    return send(std::move(*verdict_.rejection), /*close_after=*/false);
  }
  if (verdict_.match.route == Route::export_attempts) return do_export();
  if (verdict_.match.route == Route::progress_stream) return do_progress();
  call_.reset();
  if (auto response = services_.handler.begin(request_, verdict_, deadline_, call_)) {
    return send(std::move(*response), /*close_after=*/false);
  }
  // The store answers by the request's deadline, on this thread. A staff member's read goes to
  // the staff reader's connections, never the write pool's.
  phase_ = Phase::awaiting_store;
  self_while_stored_ = shared_from_this();
  AttemptStore& store = call_.staff_id ? services_.staff_store : services_.store;
  store.execute(call_, *this);
}

void Session::on_store_complete(StoreCall&) {
  const auto self = std::move(self_while_stored_);
  // A stopped loop (a forced shutdown abandoning work) writes nothing more.
  if (phase_ != Phase::awaiting_store || socket_.get_executor().context().stopped()) return;
  send(services_.handler.respond(call_), /*close_after=*/false);
}

void Session::on_read_error(beast::error_code ec) {
  if (timed_out_ && phase_ == Phase::reading) {
    return send(
        error_response(Status::request_timeout,
                       "request not received within " +
                           std::to_string(services_.options.request_timeout.count()) + " ms"),
        true);
  }
  if (ec == beast_http::error::header_limit) {
    return send(error_response(Status::request_header_fields_too_large,
                               "request header larger than " +
                                   std::to_string(services_.options.header_limit) + " bytes"),
                true);
  }
  if (ec == beast_http::error::body_limit) {
    return send(error_response(Status::payload_too_large,
                               "request body larger than " +
                                   std::to_string(services_.options.body_limit) + " bytes"),
                true);
  }
  if (ec == beast_http::error::buffer_overflow) {
    // The read buffer is full and the parser still needs more: a header, a chunk-size line (with
    // its extensions) or a trailer section longer than the buffer can hold.
    if (!reader_->is_header_done()) {
      return send(error_response(Status::request_header_fields_too_large,
                                 "request header larger than " +
                                     std::to_string(services_.options.header_limit) + " bytes"),
                  true);
    }
    return send(
        error_response(Status::bad_request,
                       "chunk-size line or trailer longer than " +
                           std::to_string(services_.options.read_buffer_limit()) + " bytes"),
        true);
  }
  // A client that closes, goes silent or resets between or within requests gets no answer.
  const bool peer_gone = ec == beast_http::error::end_of_stream ||
                         ec == beast_http::error::partial_message ||
                         ec == net::error::operation_aborted;
  if (!peer_gone &&
      ec.category() == beast_http::make_error_code(beast_http::error::bad_target).category()) {
    return send(error_response(Status::bad_request, "malformed HTTP request: " + ec.message()),
                true);
  }
  do_close();
}

void Session::record(const Response& response) {
  const auto elapsed = Clock::now() - started_;
  services_.metrics.record(verdict_.match.route, response.result_int(), elapsed);
  if (services_.options.access_log) {
    spdlog::info("access {} {} {}us", access_line_.empty() ? "-" : access_line_,
                 response.result_int(),
                 std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
    access_line_.clear();
  }
}

void Session::send(Response response, bool close_after) {
  phase_ = Phase::writing;
  record(response);
  response.version(version_);
  const bool keep_alive = keep_alive_ && !close_after && !draining_;
  response.keep_alive(keep_alive);
  // RFC 9110 8.6: no Content-Length in a 204. For HEAD, Content-Length stays that of the GET and
  // the body is left out.
  if (response.result() != Status::no_content) response.prepare_payload();
  write_buffer_.clear();
  serialize_response(response, head_request_, write_buffer_, cors_fields(response));
  set_deadline(Clock::now() + services_.options.write_timeout);
  net::async_write(socket_, net::buffer(write_buffer_),
                   beast::bind_front_handler(&Session::on_write, shared_from_this(), keep_alive));
}

// Every response, the session's own errors included, gets the CORS fields of the request's
// Origin: a browser shows a page a 413 or a 431 only if it carries them. The parser hands over
// each field as soon as its line is complete; when it stopped before the end of the header and
// before an Origin field (a 431 for one overlong line, a 408), the bytes it left in the buffer
// are searched for one.
std::string_view Session::cors_fields(const Response& response) const {
  const CorsPolicy& cors = services_.handler.cors();
  if (!cors.enabled()) return {};
  const bool expose = CorsPolicy::needs_expose(response);
  if (request_.origin_count == 0 && reader_ && !reader_->is_header_done()) {
    const auto raw = buffer_.data();
    const std::string_view origin =
        find_origin_field({static_cast<const char*>(raw.data()), raw.size()});
    return cors.response_fields(origin, origin.empty() ? 0 : 1, expose);
  }
  return cors.response_fields(request_.origin, request_.origin_count, expose);
}

void Session::on_write(bool keep_alive, beast::error_code ec, std::size_t) {
  if (ec) return do_close();
  release_memory();
  if (!keep_alive) return do_linger();
  do_wait_request();
}

void Session::do_linger() {
  phase_ = Phase::lingering;
  beast::error_code ignored;
  socket_.shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  set_deadline(Clock::now() + services_.options.linger_timeout);
  socket_.async_read_some(net::buffer(discard_buffer),
                          beast::bind_front_handler(&Session::on_linger, shared_from_this()));
}

void Session::on_linger(beast::error_code ec, std::size_t) {
  if (ec) return do_close();  // EOF, timeout or cancel: the client has had its chance
  socket_.async_read_some(net::buffer(discard_buffer),
                          beast::bind_front_handler(&Session::on_linger, shared_from_this()));
}

// --- an export ----------------------------------------------------------------------------------

void Session::do_export() {
  export_.outcome = ExportOutcome::unavailable;
  export_.problem.clear();
  export_.rows = 0;
  export_head_sent_ = false;
  if (auto refusal =
          services_.handler.begin_export(request_, verdict_, deadline_, export_, export_head_)) {
    return send(std::move(*refusal), /*close_after=*/false);
  }
  // HTTP/1.0 has no chunked encoding: the body ends where the connection does.
  export_chunked_ = version_ >= 11;
  // The first step comes by the request's deadline (the store and this session's timer both
  // hold to it); each later one within a request timeout of asking.
  phase_ = Phase::awaiting_export;
  export_open_ = true;
  self_while_exporting_ = shared_from_this();
  services_.exports.open(export_, *this);
}

void Session::on_export_step(ExportCall&) {
  const auto self = std::move(self_while_exporting_);
  if (phase_ != Phase::awaiting_export || socket_.get_executor().context().stopped()) return;
  const bool has_rows =
      export_.outcome == ExportOutcome::rows || export_.outcome == ExportOutcome::finished;
  if (!has_rows || export_.outcome == ExportOutcome::finished) export_open_ = false;
  if (!has_rows) {
    if (export_.outcome == ExportOutcome::unavailable) {
      spdlog::warn("export of exam {} failed{}: {}", export_.exam_id,
                   export_head_sent_ ? " after its first chunks (the stream ends abnormally)" : "",
                   export_.problem.empty() ? "unavailable" : export_.problem);
    }
    if (!export_head_sent_) {
      return send(services_.handler.refuse_export(export_), /*close_after=*/false);
    }
    // The head is sent: the only way left to say the stream is incomplete is to end it without
    // its last chunk (the client reads an incomplete chunked body, not a short success).
    return do_close();
  }
  do_write_chunk(export_.outcome == ExportOutcome::finished);
}

void Session::do_write_chunk(bool last) {
  phase_ = Phase::writing;
  chunk_prefix_.clear();
  bool keep_alive = keep_alive_ && !draining_ && export_chunked_;
  if (!export_head_sent_) {
    export_head_sent_ = true;
    record(export_head_);
    export_head_.version(version_);
    export_head_.keep_alive(keep_alive);
    if (export_chunked_) export_head_.chunked(true);
    serialize_response(export_head_, /*omit_body=*/true, chunk_prefix_, cors_fields(export_head_));
    if (head_request_) {
      // The head says what a GET would stream; nothing more is read.
      cancel_export();
      last = true;
    }
  }
  const bool body = !head_request_ && !export_.chunk.empty();
  if (body && export_chunked_) {
    char size[20];
    const auto end = std::to_chars(size, size + sizeof size, export_.chunk.size(), 16).ptr;
    chunk_prefix_.append(size, end).append("\r\n");
  }
  std::string_view suffix;
  if (export_chunked_ && !head_request_) {
    suffix = body ? (last ? "\r\n0\r\n\r\n" : "\r\n") : (last ? "0\r\n\r\n" : "");
  }
  const std::array<net::const_buffer, 3> buffers{
      net::buffer(chunk_prefix_), net::buffer(body ? std::string_view(export_.chunk) : ""),
      net::buffer(suffix)};
  set_deadline(Clock::now() + services_.options.write_timeout);
  net::async_write(socket_, buffers,
                   beast::bind_front_handler(&Session::on_write_chunk, shared_from_this(), last));
}

void Session::on_write_chunk(bool last, beast::error_code ec, std::size_t) {
  if (ec) return do_close();  // the client is gone: do_close cancels the export
  if (!last) {
    // Written: only now are the next rows read.
    phase_ = Phase::awaiting_export;
    set_deadline(Clock::now() + services_.options.request_timeout);
    self_while_exporting_ = shared_from_this();
    return services_.exports.next(export_);
  }
  const bool keep_alive = keep_alive_ && !draining_ && export_chunked_;
  release_memory();
  if (!keep_alive) return do_linger();
  do_wait_request();
}

void Session::cancel_export() {
  if (!export_open_) return;
  export_open_ = false;
  services_.exports.cancel(export_);
  self_while_exporting_.reset();
}

void Session::do_close() {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  cancel_export();
  close_progress();
  beast::error_code ignored;
  socket_.shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  timer_.cancel();
  services_.sessions.remove(*this);
}

void Session::release_memory() {
  reader_.reset();
  request_.clear();
  call_.reset();
  // A finished export's chunk buffer (a few hundred KiB) is not kept for the next request.
  if (export_.chunk.capacity() > kKeptWriteBuffer) std::string().swap(export_.chunk);
  export_.staff_id.reset();
  export_.filter = {};
  if (write_buffer_.capacity() > kKeptWriteBuffer) std::string().swap(write_buffer_);
  if (buffer_.size() == 0 && buffer_.capacity() > kKeptReadBuffer) buffer_.shrink_to_fit();
}

// --- deadlines ----------------------------------------------------------------------------------

void Session::set_deadline(Clock::time_point at) {
  deadline_ = at;
  if (at >= timer_armed_) return;  // the armed timer fires first and re-arms for deadline_
  timer_armed_ = at;
  timer_.expires_at(at);
  timer_.async_wait(beast::bind_front_handler(&Session::on_timer, shared_from_this()));
}

void Session::on_timer(beast::error_code ec) {
  if (ec) return;  // cancelled: re-armed earlier, or closed
  timer_armed_ = Clock::time_point::max();
  if (phase_ == Phase::closed) return;
  if (Clock::now() < deadline_) return set_deadline(deadline_);
  if (phase_ == Phase::streaming) return on_progress_timer();
  // Waiting on the store: it answers by this same deadline, and the answer is written then.
  if (phase_ == Phase::awaiting_store) return;
  if (phase_ == Phase::awaiting_export) {
    // The export's next rows did not come in time: it ends here.
    cancel_export();
    if (!export_head_sent_) {
      export_.outcome = ExportOutcome::unavailable;
      return send(services_.handler.refuse_export(export_), /*close_after=*/false);
    }
    return do_close();
  }
  timed_out_ = true;
  // Idle, reading, writing or lingering too long: cancel what is pending; its handler ends the
  // session (a request being read gets 408 first).
  beast::error_code ignored;
  if (phase_ == Phase::reading) {
    socket_.cancel(ignored);
  } else {
    do_close();
  }
}

}  // namespace attempts::http
