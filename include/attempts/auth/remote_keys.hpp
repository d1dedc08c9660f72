#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "attempts/auth/token_verifier.hpp"

namespace attempts::auth {

class Authenticator;

// Where the keys come from and how often they are fetched again.
struct RemoteKeysOptions {
  // The JWKS URL. When empty, it is discovered: the `jwks_uri` of
  // `{issuer}/.well-known/openid-configuration`, whose `issuer` must equal `issuer`.
  std::string jwks_url;
  std::string issuer;
  std::string ca_file;  // PEM CA certificates for https; empty: the system's store
  // Time between two refreshes. Unset: the JWKS response's Cache-Control max-age, within
  // [kMinAutoRefresh, kMaxAutoRefresh]; without one, kDefaultRefresh.
  std::optional<std::chrono::seconds> refresh;
  // Least time between the start of one fetch and a fetch asked for by a token (one that names
  // an unknown kid, or whose key does not verify it): a flood of made-up tokens costs the
  // provider one request per this. An operator's SIGHUP does not wait for it.
  std::chrono::seconds min_refresh{10};
  std::size_t max_document_bytes = 1 << 20;
  std::chrono::seconds fetch_timeout{10};  // each fetch, redirects included
  unsigned max_redirects = 3;
  // What the verifiers made from the fetched keys check.
  VerifierOptions verifier;
};

inline constexpr std::chrono::seconds kMinAutoRefresh{60};
inline constexpr std::chrono::seconds kMaxAutoRefresh{86400};
inline constexpr std::chrono::seconds kDefaultRefresh{300};
// A failed fetch is tried again after 1 s, then 2, 4... up to this (or the refresh interval,
// when that is shorter).
inline constexpr std::chrono::seconds kMaxRetryDelay{60};

// How a fetch ended, for the metric attempts_auth_jwks_fetches_total{result}.
enum class FetchOutcome : std::uint8_t {
  ok,
  network_error,
  timeout,
  tls_error,
  http_error,          // a status other than 200 (after redirects)
  too_large,           // a body past RemoteKeysOptions::max_document_bytes
  too_many_redirects,  // or a redirect that cannot be followed (a bad Location)
  malformed,           // not a JWKS (or an OpenID configuration), or no key this service can use
  issuer_mismatch,     // the discovered document names another issuer
  insecure,            // from https to http: a redirect, or a discovered jwks_uri
};
inline constexpr std::size_t kFetchOutcomeCount =
    static_cast<std::size_t>(FetchOutcome::insecure) + 1;
std::string_view name(FetchOutcome outcome) noexcept;

// The key source as /readyz and /metrics show it.
struct KeySourceStatus {
  std::string source{};         // the JWKS URL, or the discovery URL until it is known
  bool keys_known = false;      // a fetch has succeeded: tokens can be verified
  std::int64_t fetched_at = 0;  // Unix seconds of the last successful fetch (keys confirmed)
  std::size_t keys = 0;         // keys in use
  // Keys of the last JWKS read that were meant for verifying tokens but refused (too weak, a
  // secret, a repeated kid...: key_source_rules.hpp); the others are in use.
  std::size_t refused_keys = 0;
  std::string last_error{};  // why the last fetch failed; empty when it succeeded
};

// The refresh interval a JWKS response asks for (see RemoteKeysOptions::refresh).
std::chrono::seconds refresh_interval(const RemoteKeysOptions& options,
                                      std::string_view cache_control);
// The max-age directive of a Cache-Control value (RFC 9111 section 5.2.2.1), if any;
// `no-cache` and `no-store` count as 0.
std::optional<std::chrono::seconds> max_age(std::string_view cache_control);

// Keeps an Authenticator's keys in step with an identity provider's JWKS, on a thread of its
// own, so that a request never waits for the provider:
// - at start, until a fetch succeeds (meanwhile the Authenticator has no keys: requests get
//   503, not 401), retrying with backoff;
// - then every refresh interval;
// - sooner when a token names a kid the keys do not have, or its key does not verify it (a
//   rotation under a new kid, under the same kid, or by a provider that sends none), at most
//   once per min_refresh; that token's 401 carries the Retry-After after which the new keys
//   are there (docs/auth.md, "Rotation at the provider");
// - at once on refresh_now() (SIGHUP).
// A failed or unusable fetch keeps the keys in force, logs why and counts it. The parts, each
// with one job (src/auth/): RefreshSchedule (when), discover_jwks_url (where), KeyInstaller
// (what is used), KeySourceMonitor (what /readyz, /metrics and the log show); the rules on what
// may be fetched and used are key_source_rules.hpp's.
class RemoteKeys {
 public:
  // Throws std::runtime_error when a URL or the CA file cannot be used. Logs a warning for a
  // source over plain http. Tells the authenticator to ask it for a fetch when a token's key is
  // missing: construct it before serving starts, and destroy it after serving has ended.
  RemoteKeys(RemoteKeysOptions options, Authenticator& authenticator);
  ~RemoteKeys();
  RemoteKeys(const RemoteKeys&) = delete;
  RemoteKeys& operator=(const RemoteKeys&) = delete;

  void start();
  // Ends any fetch under way and the thread; idempotent.
  void stop();

  // Thread-safe and non-blocking: a fetch now, or as soon as the one under way has ended (an
  // operator's SIGHUP: a key removed at the provider stops verifying once it is done). False
  // when one is already asked for.
  bool refresh_now() noexcept;

  KeySourceStatus status() const;
  std::uint64_t fetches(FetchOutcome outcome) const noexcept;
  // Fetches asked for by tokens naming an unknown kid, and by tokens whose key did not verify
  // them.
  std::uint64_t unknown_kid_refreshes() const noexcept;
  std::uint64_t bad_signature_refreshes() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace attempts::auth
