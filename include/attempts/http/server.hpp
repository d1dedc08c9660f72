#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/http_metrics.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/session.hpp"
#include "attempts/runtime/event_loops.hpp"

namespace attempts::http {

class Listener;

struct ServerOptions {
  boost::asio::ip::tcp::endpoint endpoint{boost::asio::ip::tcp::v4(), 8000};
  // Connections beyond this are closed as soon as they are accepted.
  std::size_t max_connections = 10000;
  // SO_REUSEPORT: several processes listen on one port and the kernel spreads connections.
  bool reuse_port = false;
  // How long in-flight requests may take to finish after SIGINT/SIGTERM.
  std::chrono::seconds shutdown_timeout{10};
  SessionOptions session;
};

// What sessions on one event loop use that belongs to that loop.
struct LoopResources {
  AttemptStore& store;
  auth::TokenCache::Reader* tokens;  // the loop's way into the token cache; null with auth off
  // Staff reads and exports, on connections of their own (never the write pool's).
  AttemptStore& staff_store;
  AttemptExports& exports;
  progress::ProgressHub* progress = nullptr;  // the process's progress streams
};

// The HTTP front end on the event loops: a listener on loop 0, each connection's session on the
// loop it was accepted for, and the shutdown that SIGINT/SIGTERM start.
class Server {
 public:
  // `resources_of_loop(i)` is what sessions on loop i use. Binds at once; throws
  // boost::system::system_error if the address cannot be used.
  Server(ServerOptions options, runtime::EventLoops& loops, const RequestHandler& handler,
         const std::function<LoopResources(std::size_t loop)>& resources_of_loop,
         HttpMetrics& metrics);
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const;

  // Starts accepting and watching for SIGINT/SIGTERM. On the first (or stop()): stops
  // accepting, lets every request already read be answered, closes idle connections, then runs
  // `on_drained` on loop 0 (where the caller closes the store, which lets the loops end). The
  // shutdown timeout, or a second signal, stops the loops at once. `pending_store_calls` counts
  // what would then be abandoned, for the log.
  void start(std::function<void()> on_drained, std::function<std::size_t()> pending_store_calls);
  // Starts the same shutdown as a signal. Thread-safe.
  void stop();
  // 0 after a clean shutdown; 1 when work was abandoned (timeout or second signal).
  int exit_code() const { return exit_code_.load(); }

 private:
  void accept(Socket&& socket, std::size_t loop);
  void begin_shutdown();
  void wait_for_signal();
  void on_loop_drained();
  void stop_now(const char* why);

  ServerOptions options_;
  runtime::EventLoops& loops_;
  HttpMetrics& metrics_;
  std::vector<std::unique_ptr<LoopSessions>> sessions_;
  std::vector<LoopServices> services_;
  // Signals, stop() and the shutdown deadline are handled on loop 0, one at a time.
  boost::asio::signal_set signals_;
  Timer shutdown_deadline_;
  std::shared_ptr<Listener> listener_;
  std::function<void()> on_drained_;
  std::function<std::size_t()> pending_store_calls_;
  bool shutting_down_ = false;  // only on loop 0
  std::atomic<std::size_t> loops_draining_{0};
  std::atomic<int> exit_code_{0};
};

}  // namespace attempts::http
