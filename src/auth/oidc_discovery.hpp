#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <string>
#include <variant>

#include "attempts/auth/url.hpp"
#include "auth/key_fetch_failure.hpp"
#include "http_fetch.hpp"

namespace attempts::auth {

// The discovery document's URL of an issuer: the issuer without a trailing '/', then
// /.well-known/openid-configuration (OpenID Connect Discovery 1.0, section 4).
std::string discovery_url(std::string issuer);

// Where an issuer's keys are (OpenID Connect Discovery 1.0): fetches `discovery`, whose
// `issuer` must be exactly `issuer` (section 4.3: else the keys would be another issuer's), and
// returns its `jwks_uri`, which must not downgrade https to http (key_source_rules.hpp).
boost::asio::awaitable<std::variant<Url, KeyFetchFailure>> discover_jwks_url(
    const Url& discovery, const std::string& issuer, const FetchLimits& limits,
    boost::asio::ssl::context& tls);

}  // namespace attempts::auth
