#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <functional>
#include <memory>

namespace attempts::http {

// Accepts connections and hands each socket, already on its own strand, to `on_accept`.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using OnAccept = std::function<void(boost::asio::ip::tcp::socket&&)>;

  // Opens, binds and listens at once, so a bad address fails at start-up (throws system_error).
  Listener(boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint,
           bool reuse_port, OnAccept on_accept);

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void run();
  // Stops accepting; connections already accepted are unaffected. Thread-safe.
  void stop();

 private:
  void do_accept();
  void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  OnAccept on_accept_;
};

}  // namespace attempts::http
