#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "attempts/http/http_metrics.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/session.hpp"

namespace attempts::http {

class Listener;

struct ServerOptions {
  boost::asio::ip::tcp::endpoint endpoint{boost::asio::ip::tcp::v4(), 8000};
  unsigned threads = 1;
  // Connections beyond this are closed as soon as they are accepted.
  std::size_t max_connections = 10000;
  // SO_REUSEPORT: several processes listen on one port and the kernel spreads connections.
  bool reuse_port = false;
  // How long in-flight requests may take to finish after SIGINT/SIGTERM.
  std::chrono::seconds shutdown_timeout{10};
  SessionOptions session;
};

// The HTTP front end: a listener and `threads` I/O threads running one io_context.
class Server {
 public:
  // Binds at once; throws boost::system::system_error if the address cannot be used.
  Server(ServerOptions options, const RequestHandler& handler, HttpMetrics& metrics);
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const;

  // Serves until SIGINT or SIGTERM (or stop()): then stops accepting, lets every request
  // already read finish and be answered, closes idle connections and returns. A second
  // signal, or the shutdown timeout, stops at once.
  void run();
  // Starts the same graceful shutdown as a signal. Thread-safe.
  void stop();

 private:
  void accept(boost::asio::ip::tcp::socket&& socket);
  void begin_shutdown();
  void wait_for_signal();

  ServerOptions options_;
  const RequestHandler& handler_;
  HttpMetrics& metrics_;
  // Destroyed after the io_context, whose pending handlers may still hold sessions.
  ConnectionTracker tracker_;
  boost::asio::io_context ioc_;
  // Signals, stop() and the shutdown deadline are handled on this strand, one at a time.
  boost::asio::strand<boost::asio::io_context::executor_type> control_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer shutdown_deadline_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::shared_ptr<Listener> listener_;
  bool shutting_down_ = false;  // only on control_
};

}  // namespace attempts::http
