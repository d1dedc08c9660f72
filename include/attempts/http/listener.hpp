#pragma once

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "attempts/http/session.hpp"
#include "attempts/runtime/event_loops.hpp"

namespace attempts::http {

// Accepts connections on loop 0 and hands each socket, already bound to the loop that will
// serve it (round robin), to `on_accept` (called on loop 0).
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using OnAccept = std::function<void(Socket&& socket, std::size_t loop)>;

  // Opens, binds and listens at once, so a bad address fails at start-up (throws system_error).
  Listener(runtime::EventLoops& loops, const boost::asio::ip::tcp::endpoint& endpoint,
           bool reuse_port, HttpMetrics& metrics, OnAccept on_accept);
  ~Listener();

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void run();
  // Stops accepting; connections already accepted are unaffected. Thread-safe.
  void stop();

 private:
  void do_accept();
  void on_accept(boost::beast::error_code ec, Socket socket);
  void refuse_one();
  void warn_rate_limited(const boost::beast::error_code& ec);

  runtime::EventLoops& loops_;
  boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, Executor> acceptor_;
  Timer retry_timer_;
  HttpMetrics& metrics_;
  OnAccept on_accept_;
  std::size_t next_loop_ = 0;
  // A descriptor held in reserve: out of descriptors, it is closed to accept one waiting client
  // and close it at once (refused, not left hanging in the backlog), then taken back.
  int reserve_fd_ = -1;
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point last_warning_{};
  std::size_t warnings_held_back_ = 0;
};

}  // namespace attempts::http
