#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstddef>
#include <string>
#include <variant>

#include "attempts/auth/url.hpp"

namespace attempts::auth {

// What one fetch may take. A JWKS or an OpenID configuration is a few KiB; a provider that
// sends megabytes, answers slowly or redirects in circles is refused, not waited for.
struct FetchLimits {
  std::size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds timeout{10000};  // the whole fetch, redirects included
  unsigned max_redirects = 3;
};

enum class FetchFailure {
  network,    // resolve, connect, send or receive failed
  timeout,    // FetchLimits::timeout passed
  tls,        // the handshake failed: certificate not trusted, wrong host name, protocol
  status,     // an HTTP status other than 200 and the followed redirects
  too_large,  // a body past FetchLimits::max_body_bytes
  redirects,  // more than FetchLimits::max_redirects, or a bad Location
  insecure,   // a redirect from https to http (key_source_rules.hpp)
};

struct FetchedDocument {
  std::string body;
  std::string cache_control;  // the response's Cache-Control value; empty when absent
  Url url;                    // where the body came from, after redirects
};

struct FetchError {
  FetchFailure failure;
  std::string message;
};

using FetchResult = std::variant<FetchedDocument, FetchError>;

// GET `url` once (HTTP/1.1, Connection: close), following 301, 302, 303, 307 and 308
// redirects within the limits, never from https to http. An https URL verifies the server's
// certificate chain against `tls` (its trust store) and the certificate's name against the URL's
// host. Runs on the awaiting coroutine's executor; never throws for anything the network or the
// peer does.
boost::asio::awaitable<FetchResult> fetch_document(Url url, FetchLimits limits,
                                                   boost::asio::ssl::context& tls);

// A client TLS context that verifies peers against `ca_file` (PEM), or against the system's
// store when it is empty. Throws std::runtime_error naming the file when it cannot be read.
boost::asio::ssl::context make_client_tls_context(const std::string& ca_file);

}  // namespace attempts::auth
