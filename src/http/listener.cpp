#include "attempts/http/listener.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>

namespace attempts::http {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::chrono::milliseconds kFirstBackoff{10};
constexpr std::chrono::milliseconds kMaxBackoff{1000};
constexpr std::chrono::seconds kWarningInterval{10};

bool out_of_descriptors(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec.value() == ENFILE;
}

}  // namespace

Listener::Listener(runtime::EventLoops& loops, const tcp::endpoint& endpoint, bool reuse_port,
                   HttpMetrics& metrics, OnAccept on_accept)
    : loops_(loops),
      acceptor_(loops.executor(0)),
      retry_timer_(loops.executor(0)),
      metrics_(metrics),
      on_accept_(std::move(on_accept)),
      reserve_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  if (reuse_port) {
    acceptor_.set_option(net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
  }
  acceptor_.bind(endpoint);
  acceptor_.listen(net::socket_base::max_listen_connections);
}

Listener::~Listener() {
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

tcp::endpoint Listener::local_endpoint() const {
  return acceptor_.local_endpoint();
}

void Listener::run() {
  net::post(acceptor_.get_executor(),
            beast::bind_front_handler(&Listener::do_accept, shared_from_this()));
}

void Listener::stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    beast::error_code ignored;
    self->acceptor_.close(ignored);
    self->retry_timer_.cancel();
  });
}

void Listener::do_accept() {
  if (!acceptor_.is_open()) return;
  // The socket is created on the loop that will serve it: its handlers run there.
  acceptor_.async_accept(loops_.context(next_loop_),
                         beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
}

void Listener::on_accept(beast::error_code ec, Socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;  // stopped
  if (ec) {
    warn_rate_limited(ec);
    if (out_of_descriptors(ec)) refuse_one();
    // Pause instead of spinning on the error, longer while it lasts.
    backoff_ = std::min(kMaxBackoff, backoff_ == backoff_.zero() ? kFirstBackoff : backoff_ * 2);
    retry_timer_.expires_after(backoff_);
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
      if (!wait_ec) self->do_accept();
    });
    return;
  }
  backoff_ = backoff_.zero();
  const std::size_t loop = next_loop_;
  next_loop_ = (next_loop_ + 1) % loops_.size();
  on_accept_(std::move(socket), loop);
  do_accept();
}

void Listener::refuse_one() {
  if (reserve_fd_ < 0) return;
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  const int client = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
  if (client >= 0) {
    ::close(client);
    metrics_.connections_refused.add();
  }
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void Listener::warn_rate_limited(const beast::error_code& ec) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ < kWarningInterval) {
    ++warnings_held_back_;
    return;
  }
  if (warnings_held_back_ > 0) {
    spdlog::warn("accept failed: {} ({} similar warnings not logged in the last {}s)", ec.message(),
                 warnings_held_back_, kWarningInterval.count());
  } else {
    spdlog::warn("accept failed: {}", ec.message());
  }
  last_warning_ = now;
  warnings_held_back_ = 0;
}

}  // namespace attempts::http
