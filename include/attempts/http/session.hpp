#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "attempts/http/http_metrics.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/types.hpp"

namespace attempts::http {

struct SessionOptions {
  std::size_t body_limit = 64 * 1024;
  std::uint32_t header_limit = 8 * 1024;
  // Longest wait for a whole request header, a body or a response write; also the keep-alive
  // idle limit. Bounds what a slow or silent client can hold.
  std::chrono::seconds idle_timeout{15};
  // After an error response the server stops sending and discards what the client still sends
  // for this long, so the client reads the response instead of a connection reset.
  std::chrono::milliseconds linger_timeout{1000};
  // One info line per request: peer, method, target, status, microseconds.
  bool access_log = false;
};

class Session;

// Knows every open session, so the server can cap connections and drain them on shutdown.
class ConnectionTracker {
 public:
  std::size_t size() const;
  void add(const std::shared_ptr<Session>& session);
  void remove(const Session* session) noexcept;
  // Asks every session to finish its current request and close; `on_empty` runs once, when
  // the last one has gone (at once if there are none).
  void drain_all(std::function<void()> on_empty);

 private:
  mutable std::mutex mutex_;
  std::unordered_map<const Session*, std::weak_ptr<Session>> sessions_;
  bool draining_ = false;
  std::function<void()> on_empty_;
};

// One client connection, on its own strand. Requests are read and answered one at a time, so
// pipelined requests are answered in order: read header -> (100 Continue) -> read body ->
// handle (the store answers on its own thread; the response is posted back to the strand) ->
// write (one contiguous buffer) -> read the next one, or close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(boost::asio::ip::tcp::socket&& socket, const RequestHandler& handler,
          const SessionOptions& options, ConnectionTracker& tracker, HttpMetrics& metrics);
  ~Session();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  // Finish the request in progress, if any, then close. Thread-safe.
  void drain();

 private:
  void do_read();
  void on_read_header(boost::beast::error_code ec, std::size_t bytes);
  void on_continue_sent(boost::beast::error_code ec, std::size_t bytes);
  void do_read_body();
  void on_read_body(boost::beast::error_code ec, std::size_t bytes);
  void on_read_error(boost::beast::error_code ec);
  void send(Response response, bool close_after);
  void on_write(bool keep_alive, boost::beast::error_code ec, std::size_t bytes);
  void do_linger();
  void on_linger(boost::beast::error_code ec, std::size_t bytes);
  void do_close();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  const RequestHandler& handler_;
  const SessionOptions& options_;
  ConnectionTracker& tracker_;
  HttpMetrics& metrics_;

  std::optional<beast_http::request_parser<beast_http::string_body>> parser_;
  std::optional<beast_http::response<beast_http::empty_body>> continue_;
  std::optional<Response> header_rejection_;  // the answer when the header alone is refused
  std::string response_bytes_;      // the response being written
  Route route_ = Route::not_found;  // of the request in progress, for metrics
  std::chrono::steady_clock::time_point started_;
  std::string access_line_;  // "peer method target" of the request, when access_log is on
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool busy_ = false;  // a request has been read and its response is not yet written
  bool draining_ = false;
  std::array<char, 4096> discard_{};
};

}  // namespace attempts::http
