#include "attempts/http/session.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "attempts/http/responses.hpp"

namespace attempts::http {

namespace beast = boost::beast;
namespace net = boost::asio;

// --- ConnectionTracker ------------------------------------------------------------------------

std::size_t ConnectionTracker::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

void ConnectionTracker::add(const std::shared_ptr<Session>& session) {
  bool drain_now = false;
  {
    std::lock_guard lock(mutex_);
    sessions_.emplace(session.get(), session);
    drain_now = draining_;
  }
  if (drain_now) session->drain();
}

void ConnectionTracker::remove(const Session* session) noexcept {
  std::function<void()> on_empty;
  {
    std::lock_guard lock(mutex_);
    sessions_.erase(session);
    if (draining_ && sessions_.empty()) on_empty = std::exchange(on_empty_, nullptr);
  }
  if (on_empty) on_empty();
}

void ConnectionTracker::drain_all(std::function<void()> on_empty) {
  std::vector<std::weak_ptr<Session>> sessions;
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
    if (!sessions_.empty()) {
      on_empty_ = std::move(on_empty);
      sessions.reserve(sessions_.size());
      for (const auto& entry : sessions_) sessions.push_back(entry.second);
    }
  }
  if (on_empty) {  // not moved: there was nobody to wait for
    on_empty();
    return;
  }
  for (const auto& weak : sessions) {
    if (auto session = weak.lock()) session->drain();
  }
}

// --- Session ----------------------------------------------------------------------------------

Session::Session(net::ip::tcp::socket&& socket, const RequestHandler& handler,
                 const SessionOptions& options, ConnectionTracker& tracker, HttpMetrics& metrics)
    : stream_(std::move(socket)),
      handler_(handler),
      options_(options),
      tracker_(tracker),
      metrics_(metrics) {
  metrics_.open_connections.add(1);
}

Session::~Session() {
  metrics_.open_connections.add(-1);
  tracker_.remove(this);
}

void Session::start() {
  tracker_.add(shared_from_this());
  // Run on the session's strand from here on.
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&Session::do_read, shared_from_this()));
}

void Session::drain() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->draining_ = true;
    // An idle connection (waiting for a request, or lingering) closes now; a busy one after
    // its response is written.
    if (!self->busy_) self->stream_.cancel();
  });
}

void Session::do_read() {
  if (draining_) return do_close();
  // A fresh parser per request: limits apply to each request, not the connection.
  parser_.emplace();
  // Nothing of the previous request may shape the answer to an unreadable next one.
  route_ = Route::not_found;
  started_ = std::chrono::steady_clock::now();
  version_ = 11;
  keep_alive_ = true;
  head_request_ = false;
  header_rejection_.reset();
  parser_->body_limit(options_.body_limit);
  parser_->header_limit(options_.header_limit);
  stream_.expires_after(options_.idle_timeout);
  beast_http::async_read_header(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&Session::on_read_header, shared_from_this()));
}

void Session::on_read_header(beast::error_code ec, std::size_t) {
  if (ec) return on_read_error(ec);
  const auto& header = parser_->get();
  started_ = std::chrono::steady_clock::now();
  route_ = match_route(header.method(), header.target()).route;
  if (options_.access_log) {
    beast::error_code peer_error;
    const auto peer = stream_.socket().remote_endpoint(peer_error);
    access_line_ = (peer_error ? std::string("-") : peer.address().to_string()) + " " +
                   std::string(header.method_string()) + " " + std::string(header.target());
  }
  version_ = header.version();
  keep_alive_ = header.keep_alive();
  head_request_ = header.method() == Verb::head;
  // A Transfer-Encoding other than a final "chunked" leaves the body's length unknown; reading
  // on would take the body for the next request (RFC 9112 6.3: answer 400 and close).
  if (header.count(beast_http::field::transfer_encoding) > 0 && !parser_->chunked()) {
    return send(error_response(Status::bad_request,
                               "unsupported Transfer-Encoding: only chunked is accepted"),
                /*close_after=*/true);
  }
  // Judged on the header alone: fields in a chunked body's trailer (which Beast merges into the
  // message) cannot turn a refused Content-Type into an accepted one.
  header_rejection_ = handler_.reject_early(header);
  if (!beast::iequals(header[beast_http::field::expect], "100-continue")) return do_read_body();

  // Refuse before the client sends a body we would not accept.
  if (header_rejection_) return send(std::move(*header_rejection_), /*close_after=*/true);
  continue_.emplace(beast_http::status::continue_, version_);
  beast_http::async_write(
      stream_, *continue_,
      beast::bind_front_handler(&Session::on_continue_sent, shared_from_this()));
}

void Session::on_continue_sent(beast::error_code ec, std::size_t) {
  if (ec) return do_close();
  do_read_body();
}

void Session::do_read_body() {
  if (parser_->is_done()) return on_read_body({}, 0);
  stream_.expires_after(options_.idle_timeout);
  beast_http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&Session::on_read_body, shared_from_this()));
}

void Session::on_read_body(beast::error_code ec, std::size_t) {
  if (ec) return on_read_error(ec);
  if (header_rejection_) {
    // Refused on the header; the body was read only to keep the connection usable.
    return send(std::exchange(header_rejection_, std::nullopt).value(), /*close_after=*/false);
  }
  busy_ = true;
  stream_.expires_never();  // the store bounds its own work; the write gets a new deadline
  handler_.handle(parser_->release(), [self = shared_from_this()](Response response) {
    net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
      self->send(std::move(response), /*close_after=*/false);
    });
  });
}

void Session::on_read_error(beast::error_code ec) {
  if (ec == beast_http::error::header_limit) {
    return send(error_response(Status::request_header_fields_too_large,
                               "request header larger than " +
                                   std::to_string(options_.header_limit) + " bytes"),
                true);
  }
  if (ec == beast_http::error::body_limit) {
    return send(error_response(
                    Status::payload_too_large,
                    "request body larger than " + std::to_string(options_.body_limit) + " bytes"),
                true);
  }
  // A client that closes, goes silent or resets between or within requests gets no answer.
  const bool peer_gone = ec == beast_http::error::end_of_stream ||
                         ec == beast_http::error::partial_message || ec == beast::error::timeout ||
                         ec == net::error::operation_aborted;
  if (!peer_gone &&
      ec.category() == beast_http::make_error_code(beast_http::error::bad_target).category()) {
    return send(error_response(Status::bad_request, "malformed HTTP request: " + ec.message()),
                true);
  }
  do_close();
}

void Session::send(Response response, bool close_after) {
  busy_ = true;
  const auto elapsed = std::chrono::steady_clock::now() - started_;
  metrics_.record(route_, response.result_int(), elapsed);
  if (options_.access_log) {
    spdlog::info("access {} {} {}us", access_line_.empty() ? "-" : access_line_,
                 response.result_int(),
                 std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
    access_line_.clear();
  }
  response.version(version_);
  const bool keep_alive = keep_alive_ && !close_after && !draining_;
  response.keep_alive(keep_alive);
  response.prepare_payload();
  // RFC 9110 8.6: no Content-Length in a 204 (Beast's prepare_payload adds "0").
  if (response.result() == Status::no_content) response.erase(beast_http::field::content_length);
  // For HEAD, Content-Length stays that of the GET and the body is left out.
  response_bytes_ = serialize_response(response, head_request_);
  stream_.expires_after(options_.idle_timeout);
  net::async_write(stream_, net::buffer(response_bytes_),
                   beast::bind_front_handler(&Session::on_write, shared_from_this(), keep_alive));
}

void Session::on_write(bool keep_alive, beast::error_code ec, std::size_t) {
  busy_ = false;
  if (ec) return do_close();
  if (!keep_alive) return do_linger();
  do_read();
}

void Session::do_linger() {
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  stream_.expires_after(options_.linger_timeout);
  stream_.async_read_some(net::buffer(discard_),
                          beast::bind_front_handler(&Session::on_linger, shared_from_this()));
}

void Session::on_linger(beast::error_code ec, std::size_t) {
  if (ec) return do_close();  // EOF, timeout or cancel: the client has had its chance
  stream_.async_read_some(net::buffer(discard_),
                          beast::bind_front_handler(&Session::on_linger, shared_from_this()));
}

void Session::do_close() {
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
}

}  // namespace attempts::http
