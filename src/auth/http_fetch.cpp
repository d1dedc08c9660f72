#include "http_fetch.hpp"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <stdexcept>

#include "attempts/auth/key_source_rules.hpp"

namespace attempts::auth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
// Response headers a JWKS endpoint needs are few; a flood of them is refused like a big body.
constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;

struct Answer {
  unsigned status = 0;
  std::string location;
  std::string cache_control;
  std::string body;
};

using Exchange = std::variant<Answer, FetchError>;

FetchError failure_of(const error_code& ec, std::string_view step) {
  if (ec == beast::error::timeout || ec == asio::error::timed_out) {
    return {FetchFailure::timeout, std::string(step) + ": timed out"};
  }
  if (ec == http::error::body_limit || ec == http::error::header_limit) {
    return {FetchFailure::too_large, std::string(step) + ": " + ec.message()};
  }
  if (ec.category() == asio::error::get_ssl_category() ||
      ec.category() == asio::ssl::error::get_stream_category()) {
    return {FetchFailure::tls, std::string(step) + ": " + ec.message()};
  }
  return {FetchFailure::network, std::string(step) + ": " + ec.message()};
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string host_field(const Url& url) {
  const bool v6 = url.host.find(':') != std::string::npos;
  std::string host = v6 ? "[" + url.host + "]" : url.host;
  if (url.port != (url.https ? 443 : 80)) host += ":" + std::to_string(url.port);
  return host;
}

// Names resolve through getaddrinfo, which no timeout reaches: a timer cancels the lookup.
asio::awaitable<std::variant<tcp::resolver::results_type, FetchError>> resolve(
    const Url& url, Clock::time_point deadline) {
  const auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  asio::steady_timer timer(executor, deadline);
  timer.async_wait([&resolver](const error_code& ec) {
    if (!ec) resolver.cancel();  // only while the lookup is awaited: the timer is cancelled
  });                            // before the resolver goes
  auto [ec, results] = co_await resolver.async_resolve(url.host, std::to_string(url.port), kAwait);
  timer.cancel();
  if (ec) {
    if (Clock::now() >= deadline) co_return FetchError{FetchFailure::timeout, "resolve: timed out"};
    co_return failure_of(ec, "resolve " + url.host);
  }
  co_return results;
}

template <typename Stream>
asio::awaitable<Exchange> exchange(Stream& stream, const Url& url, const FetchLimits& limits) {
  http::request<http::empty_body> request{http::verb::get, url.target, 11};
  request.set(http::field::host, host_field(url));
  request.set(http::field::user_agent, "attempts-server");
  request.set(http::field::accept, "application/jwk-set+json, application/json");
  request.set(http::field::connection, "close");
  if (auto [ec, sent] = co_await http::async_write(stream, request, kAwait); ec) {
    co_return failure_of(ec, "send");
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(limits.max_body_bytes);
  if (auto [ec, read] = co_await http::async_read(stream, buffer, parser, kAwait); ec) {
    if (ec == http::error::body_limit) {
      co_return FetchError{
          FetchFailure::too_large,
          "the body is larger than " + std::to_string(limits.max_body_bytes) + " bytes"};
    }
    co_return failure_of(ec, "receive");
  }
  auto& response = parser.get();
  Answer answer;
  answer.status = response.result_int();
  answer.location = std::string(response[http::field::location]);
  answer.cache_control = std::string(response[http::field::cache_control]);
  answer.body = std::move(response.body());
  co_return answer;
}

asio::awaitable<Exchange> get_once(const Url& url, const FetchLimits& limits,
                                   asio::ssl::context& tls, Clock::time_point deadline) {
  const auto executor = co_await asio::this_coro::executor;
  auto resolved = co_await resolve(url, deadline);
  if (auto* error = std::get_if<FetchError>(&resolved)) co_return std::move(*error);
  const auto& endpoints = std::get<tcp::resolver::results_type>(resolved);
  if (!url.https) {
    beast::tcp_stream stream(executor);
    stream.expires_at(deadline);
    if (auto [ec, endpoint] = co_await stream.async_connect(endpoints, kAwait); ec) {
      co_return failure_of(ec, "connect to " + url.host);
    }
    co_return co_await exchange(stream, url, limits);
  }
  beast::ssl_stream<beast::tcp_stream> stream(executor, tls);
  // SNI names the host (never an address, RFC 6066); the certificate must name it too.
  if (!is_ip_literal(url.host) &&
      !SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
    co_return FetchError{FetchFailure::tls, "cannot set the TLS server name " + url.host};
  }
  stream.set_verify_mode(asio::ssl::verify_peer);
  stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
  beast::get_lowest_layer(stream).expires_at(deadline);
  if (auto [ec, endpoint] =
          co_await beast::get_lowest_layer(stream).async_connect(endpoints, kAwait);
      ec) {
    co_return failure_of(ec, "connect to " + url.host);
  }
  if (auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kAwait); ec) {
    co_return failure_of(ec, "TLS handshake with " + url.host);
  }
  co_return co_await exchange(stream, url, limits);
}

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

asio::awaitable<FetchResult> fetch_document(Url url, FetchLimits limits, asio::ssl::context& tls) {
  const auto deadline = Clock::now() + limits.timeout;
  for (unsigned redirects = 0;; ++redirects) {
    auto exchanged = co_await get_once(url, limits, tls, deadline);
    if (auto* error = std::get_if<FetchError>(&exchanged)) co_return std::move(*error);
    auto& answer = std::get<Answer>(exchanged);
    if (answer.status == 200) {
      co_return FetchedDocument{std::move(answer.body), std::move(answer.cache_control), url};
    }
    if (!is_redirect(answer.status)) {
      co_return FetchError{FetchFailure::status,
                           "HTTP " + std::to_string(answer.status) + " from " + to_string(url)};
    }
    if (redirects == limits.max_redirects) {
      co_return FetchError{FetchFailure::redirects,
                           "more than " + std::to_string(limits.max_redirects) + " redirects"};
    }
    auto next = resolve_location(url, answer.location);
    if (const auto* why = std::get_if<std::string>(&next)) {
      co_return FetchError{FetchFailure::redirects,
                           "redirect from " + to_string(url) + ": " + *why};
    }
    auto& target = std::get<Url>(next);
    if (const auto why = downgrade_error(url, target)) {
      co_return FetchError{FetchFailure::insecure, "redirect " + *why};
    }
    url = std::move(target);
  }
}

asio::ssl::context make_client_tls_context(const std::string& ca_file) {
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
  tls.set_verify_mode(asio::ssl::verify_peer);
  error_code ec;
  if (ca_file.empty()) {
    tls.set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("the system's CA store: " + ec.message());
  } else {
    tls.load_verify_file(ca_file, ec);
    if (ec) throw std::runtime_error(ca_file + ": not a readable PEM file of CA certificates");
  }
  return tls;
}

}  // namespace attempts::auth
