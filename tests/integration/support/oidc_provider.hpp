#pragma once
// A real OpenID Connect provider for the tests: tests/oidc/provider.mjs (npm's oidc-provider)
// as a child process on a loopback port, with the test endpoints it adds to rotate its keys,
// make its JWKS endpoint misbehave and count what it was asked.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "support/subprocess.hpp"

namespace attempts::integration {

// A test CA and a certificate for 127.0.0.1 it signed, made with the openssl command.
struct TestCertificates {
  TestCertificates();
  std::string ca_pem() const { return dir_.file("ca.pem"); }
  std::string server_pem() const { return dir_.file("server.pem"); }
  std::string server_key() const { return dir_.file("server.key"); }

 private:
  TempDir dir_;
};

struct ProviderSettings {
  std::uint16_t port = 0;                 // 0: a free one
  const TestCertificates* tls = nullptr;  // https with this certificate, else http
  // Keeps the signing keys across a restart (a provider started again on the same port).
  std::string keys_file{};
};

// Starts the provider and waits for its ready line (throws std::runtime_error with its log if
// it does not come); stops it (SIGTERM, then SIGKILL) on destruction. Only ever signals the pid
// it spawned.
class OidcProvider {
 public:
  explicit OidcProvider(ProviderSettings settings = {});
  ~OidcProvider();
  OidcProvider(const OidcProvider&) = delete;
  OidcProvider& operator=(const OidcProvider&) = delete;

  const std::string& issuer() const { return issuer_; }
  std::uint16_t port() const { return port_; }
  std::string jwks_url() const { return issuer_ + "/jwks"; }

  // An access token for student 1..50 (the provider's clients student-N), from the token
  // endpoint by the client credentials grant: an RS256 JWT with iss = issuer(), aud =
  // "urn:attempts" and the numeric claim student_id = `student`.
  std::string token_for(int student);

  // A new signing key; the old ones stay published unless `only_new`. Returns its kid.
  std::string rotate(bool only_new = false);
  // New key material under the signing key's kid, which it replaces. Returns that kid.
  std::string rotate_same_kid();
  // How the JWKS endpoint answers: normal, error, garbage, huge, hang, redirect-loop,
  // redirect-once.
  void set_jwks_mode(const std::string& mode);
  // The JWKS endpoint serves `jwks` from now on (set_jwks_mode("normal") ends it).
  void serve_jwks(const nlohmann::json& jwks);
  // The discovery document names `url` as its jwks_uri ("" for the provider's own).
  void set_discovery_jwks_uri(const std::string& url);
  // The JWKS endpoint's Cache-Control ("" for none).
  void set_cache_control(const std::string& value);
  // {"jwks_requests", "jwks_copy_requests", "discovery_requests", "token_requests", "kids",
  // "signing_kid"}
  nlohmann::json stats();
  int jwks_requests() { return stats()["jwks_requests"].get<int>(); }
  int discovery_requests() { return stats()["discovery_requests"].get<int>(); }

  // SIGTERM, and waits until it has exited.
  void stop();
  std::string log() const;

 private:
  // POST or GET `target`; over https through node's fetch (the test HTTP client speaks plain
  // HTTP only). Throws std::runtime_error unless the status is 200.
  nlohmann::json call(const std::string& method, const std::string& target,
                      const std::string& form_body = "", const std::string& basic_auth = "");

  ProviderSettings settings_;
  TempDir dir_;
  std::string issuer_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// The JWS `token` with its header's kid replaced: a token naming a key no one has (its
// signature no longer matters, the key lookup refuses it first).
std::string with_kid(const std::string& token, const std::string& kid);
// The kid of a JWS's header ("" without one).
std::string kid_of(const std::string& token);

}  // namespace attempts::integration
