#include "attempts/http/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <csignal>
#include <thread>
#include <vector>

#include "attempts/http/listener.hpp"

namespace attempts::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;

Server::Server(ServerOptions options, const RequestHandler& handler, HttpMetrics& metrics)
    : options_(std::move(options)),
      handler_(handler),
      metrics_(metrics),
      ioc_(static_cast<int>(options_.threads)),
      control_(net::make_strand(ioc_)),
      signals_(control_, SIGINT, SIGTERM),
      shutdown_deadline_(control_),
      listener_(std::make_shared<Listener>(
          ioc_, options_.endpoint, options_.reuse_port,
          [this](tcp::socket&& socket) { accept(std::move(socket)); })) {}

Server::~Server() = default;

tcp::endpoint Server::local_endpoint() const {
  return listener_->local_endpoint();
}

void Server::accept(tcp::socket&& socket) {
  if (tracker_.size() >= options_.max_connections) {
    // Closing at once costs the client one failed connect, and costs us nothing held.
    if (metrics_.connections_refused.value() % 1000 == 0) {
      spdlog::warn("connection limit {} reached; refusing new connections",
                   options_.max_connections);
    }
    metrics_.connections_refused.add();
    return;
  }
  metrics_.connections_accepted.add();
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // responses are small and latency matters
  std::make_shared<Session>(std::move(socket), handler_, options_.session, tracker_, metrics_)
      ->start();
}

void Server::run() {
  work_.emplace(net::make_work_guard(ioc_));
  wait_for_signal();
  listener_->run();

  std::vector<std::thread> threads;
  threads.reserve(options_.threads - 1);
  for (unsigned i = 1; i < options_.threads; ++i) threads.emplace_back([this] { ioc_.run(); });
  ioc_.run();
  for (auto& thread : threads) thread.join();
}

void Server::stop() {
  net::post(control_, [this] { begin_shutdown(); });
}

void Server::wait_for_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (shutting_down_) {
      spdlog::warn("second signal {}: stopping now", signal);
      ioc_.stop();
      return;
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
    if (ec) return;
    spdlog::warn("shutdown timeout: {} connections still open, stopping now", tracker_.size());
    ioc_.stop();
  });
  tracker_.drain_all([this] {
    // Runs wherever the last session ended; back to the control strand.
    net::post(control_, [this] {
      shutdown_deadline_.cancel();
      signals_.cancel();
      work_.reset();
      spdlog::info("all connections closed");
    });
  });
}

}  // namespace attempts::http
