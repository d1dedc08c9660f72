#include "auth/oidc_discovery.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "attempts/auth/key_source_rules.hpp"

namespace attempts::auth {

std::string discovery_url(std::string issuer) {
  while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();
  return issuer + "/.well-known/openid-configuration";
}

boost::asio::awaitable<std::variant<Url, KeyFetchFailure>> discover_jwks_url(
    const Url& discovery, const std::string& issuer, const FetchLimits& limits,
    boost::asio::ssl::context& tls) {
  const auto where = "OpenID configuration " + to_string(discovery);
  auto fetched = co_await fetch_document(discovery, limits, tls);
  if (const auto* error = std::get_if<FetchError>(&fetched)) {
    co_return fetch_failure(*error, where);
  }
  const auto document = nlohmann::json::parse(std::get<FetchedDocument>(fetched).body, nullptr,
                                              /*allow_exceptions=*/false);
  if (!document.is_object()) {
    co_return KeyFetchFailure{FetchOutcome::malformed, where + ": not a JSON object"};
  }
  const auto found_issuer = document.find("issuer");
  const auto jwks_uri = document.find("jwks_uri");
  if (found_issuer == document.end() || !found_issuer->is_string() || jwks_uri == document.end() ||
      !jwks_uri->is_string()) {
    co_return KeyFetchFailure{FetchOutcome::malformed, where + ": no issuer or jwks_uri string"};
  }
  if (found_issuer->get_ref<const std::string&>() != issuer) {
    co_return KeyFetchFailure{FetchOutcome::issuer_mismatch, where + ": names the issuer '" +
                                                                 found_issuer->get<std::string>() +
                                                                 "', not '" + issuer + "'"};
  }
  auto url = parse_url(jwks_uri->get_ref<const std::string&>());
  if (const auto* why = std::get_if<std::string>(&url)) {
    co_return KeyFetchFailure{FetchOutcome::malformed, where + ": jwks_uri: " + *why};
  }
  if (const auto why = downgrade_error(discovery, std::get<Url>(url))) {
    co_return KeyFetchFailure{FetchOutcome::insecure, where + ": jwks_uri goes " + *why};
  }
  spdlog::info("OpenID configuration of {}: keys at {}", issuer, to_string(std::get<Url>(url)));
  co_return std::get<Url>(url);
}

}  // namespace attempts::auth
