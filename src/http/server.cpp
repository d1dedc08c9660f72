#include "attempts/http/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <csignal>

#include "attempts/http/listener.hpp"

namespace attempts::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;

Server::Server(ServerOptions options, runtime::EventLoops& loops, const RequestHandler& handler,
               const std::function<LoopResources(std::size_t loop)>& resources_of_loop,
               HttpMetrics& metrics)
    : options_(std::move(options)),
      loops_(loops),
      metrics_(metrics),
      signals_(loops.executor(0), SIGINT, SIGTERM),
      shutdown_deadline_(loops.executor(0)),
      listener_(std::make_shared<Listener>(
          loops, options_.endpoint, options_.reuse_port, metrics,
          [this](Socket&& socket, std::size_t loop) { accept(std::move(socket), loop); })) {
  for (std::size_t i = 0; i < loops.size(); ++i) {
    sessions_.push_back(std::make_unique<LoopSessions>());
    const LoopResources resources = resources_of_loop(i);
    services_.push_back({handler, resources.store, resources.tokens, options_.session,
                         *sessions_.back(), metrics, resources.staff_store, resources.exports,
                         resources.progress});
  }
}

Server::~Server() = default;

tcp::endpoint Server::local_endpoint() const {
  return listener_->local_endpoint();
}

void Server::start(std::function<void()> on_drained,
                   std::function<std::size_t()> pending_store_calls) {
  on_drained_ = std::move(on_drained);
  pending_store_calls_ = std::move(pending_store_calls);
  wait_for_signal();
  listener_->run();
}

void Server::accept(Socket&& socket, std::size_t loop) {
  if (static_cast<std::size_t>(metrics_.open_connections.value()) >= options_.max_connections) {
    // Closing at once costs the client one failed connect, and costs us nothing held.
    if (metrics_.connections_refused.value() % 1000 == 0) {
      spdlog::warn("connection limit {} reached; refusing new connections",
                   options_.max_connections);
    }
    metrics_.connections_refused.add();
    return;
  }
  metrics_.connections_accepted.add();
  metrics_.open_connections.add(1);  // counted here, so a burst cannot overshoot the limit
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // responses are small and latency matters
  net::post(loops_.context(loop), [this, loop, socket = std::move(socket)]() mutable {
    std::make_shared<Session>(std::move(socket), services_[loop])->start();
  });
}

void Server::stop() {
  net::post(loops_.context(0), [this] { begin_shutdown(); });
}

void Server::wait_for_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (shutting_down_) {
      spdlog::warn("second signal {}: stopping now", signal);
      return stop_now("second signal");
    }
    spdlog::info("signal {}: finishing in-flight requests, then exiting", signal);
    begin_shutdown();
    wait_for_signal();
  });
}

void Server::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  listener_->stop();
  shutdown_deadline_.expires_after(options_.shutdown_timeout);
  shutdown_deadline_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) stop_now("shutdown timeout");
  });
  loops_draining_ = loops_.size();
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    net::post(loops_.context(i), [this, i] {
      sessions_[i]->drain([this] {
        if (loops_draining_.fetch_sub(1) == 1) {
          net::post(loops_.context(0), [this] { on_loop_drained(); });
        }
      });
    });
  }
}

void Server::on_loop_drained() {
  spdlog::info("all connections closed");
  shutdown_deadline_.cancel();
  signals_.cancel();
  if (on_drained_) on_drained_();
}

void Server::stop_now(const char* why) {
  const auto connections = metrics_.open_connections.value();
  const std::size_t calls = pending_store_calls_ ? pending_store_calls_() : 0;
  if (connections > 0 || calls > 0) {
    spdlog::error("{}: abandoning {} open connections and {} database calls, stopping now", why,
                  connections, calls);
    exit_code_ = 1;
  } else {
    spdlog::warn("{}: stopping now", why);
  }
  shutdown_deadline_.cancel();
  signals_.cancel();
  loops_.stop();
}

}  // namespace attempts::http
