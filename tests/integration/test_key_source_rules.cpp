// The rules of what a remote key source may fetch and use (include/attempts/auth/
// key_source_rules.hpp), against a real OpenID Connect provider (npm's oidc-provider,
// tests/oidc/provider.mjs) on loopback: https stays https through discovery, a fetched JWKS
// carries no HS256 secret, one bad key in it is refused alone, and a source over plain http is
// warned about.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/identity_provider_test.hpp"
#include "token/token_tools.hpp"

namespace attempts::integration {
namespace {

namespace tools = auth::tools;

class IdentityProviderRulesTest : public IdentityProviderTest {};

TEST_F(IdentityProviderRulesTest, ADiscoveredJwksUriMustNotLeaveHttps) {
  TestCertificates certificates;
  OidcProvider issuer({.tls = &certificates});
  OidcProvider plain;  // anyone on the path could answer this one
  issuer.set_discovery_jwks_uri(plain.jwks_url());
  ServerProcess server(service_for(issuer.issuer(), {"--jwks-ca", certificates.ca_pem()}));
  // Until a fetch has ended one way or the other.
  const auto deadline = Clock::now() + seconds(30);
  while (metric(server.port(), fetches_sample("ok")) < 1 &&
         metric(server.port(), fetches_sample("insecure")) < 1 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  const auto ready = readyz(server);
  EXPECT_TRUE(IsUnavailable(ready)) << "keys were taken from an http jwks_uri: " << ready;
  EXPECT_NE(ready.body.find("from https"), std::string::npos) << ready;
  EXPECT_EQ(plain.jwks_requests(), 0) << "the keys were fetched in clear text";
  EXPECT_GE(metric(server.port(), fetches_sample("insecure")), 1);
  EXPECT_TRUE(IsUnavailable(save(server, 20, issuer.token_for(20), R"({"1":[1]})")));
}

TEST_F(IdentityProviderRulesTest, AFetchedJwksMayNotCarryHs256Secrets) {
  // A JWKS endpoint is public: whoever reads the secret there can sign any student's token.
  OidcProvider provider;
  const auto secret = tools::generate_private_jwk(auth::Algorithm::hs256, "published-secret");
  const auto rsa = tools::generate_private_jwk(auth::Algorithm::rs256, "rsa");
  provider.serve_jwks({{"keys", json::array({tools::public_jwk(secret), tools::public_jwk(rsa)})}});
  ServerProcess server(service_for(provider.issuer()));
  const auto ready = wait_until_ready(server);
  ASSERT_TRUE(ready.contains("keys")) << ready;
  EXPECT_EQ(ready["keys"]["count"], 1) << ready;
  // A token minted from the public document.
  const auto minted =
      provider_style_token(tools::signing_key_from_jwk(secret), provider.issuer(), 21);
  const auto forged = save(server, 21, minted, R"({"1":[9]})");
  EXPECT_EQ(forged.status, 401) << forged;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(21), "{}"));
  const auto genuine =
      provider_style_token(tools::signing_key_from_jwk(rsa), provider.issuer(), 21);
  EXPECT_EQ(save(server, 21, genuine, R"({"1":[1]})").status, 204);
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_keys_refused"), 1);
  EXPECT_NE(server.log().find("an HS256 secret (kty \"oct\") in a fetched JWKS is public"),
            std::string::npos)
      << server.log();
}

TEST_F(IdentityProviderRulesTest, OneBadKeyInTheProvidersJwksIsRefusedAloneAndTheOthersAreUsed) {
  OidcProvider provider;
  const auto weak = tools::generate_private_jwk(auth::Algorithm::rs256, "weak", 1024);
  const auto good = tools::generate_private_jwk(auth::Algorithm::rs256, "good");
  auto repeated = tools::public_jwk(tools::generate_private_jwk(auth::Algorithm::es256, "good"));
  provider.serve_jwks(
      {{"keys", json::array({tools::public_jwk(weak), tools::public_jwk(good), repeated})}});
  ServerProcess server(service_for(provider.issuer()));
  const auto ready = wait_until_ready(server);
  ASSERT_TRUE(ready.contains("keys")) << ready;
  EXPECT_EQ(ready["keys"]["count"], 1) << ready;
  EXPECT_EQ(ready["keys"]["last_fetch"], "ok") << ready;
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_keys"), 1);
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_keys_refused"), 2);
  const auto log = server.log();
  EXPECT_NE(log.find("RSA modulus is 1024 bits"), std::string::npos) << log;
  EXPECT_NE(log.find("kid is already used by keys[1]"), std::string::npos) << log;
  const auto token = provider_style_token(tools::signing_key_from_jwk(good), provider.issuer(), 22);
  EXPECT_EQ(save(server, 22, token, R"({"1":[2]})").status, 204);
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(22), R"({"1":[2]})"));
  // Once the provider mends its document, nothing is refused any more.
  provider.serve_jwks({{"keys", json::array({tools::public_jwk(good)})}});
  server.signal(SIGHUP);
  const auto deadline = Clock::now() + seconds(20);
  while (metric(server.port(), "attempts_auth_jwks_keys_refused") != 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_keys_refused"), 0);
}

TEST_F(IdentityProviderRulesTest, AKeySourceOverPlainHttpIsWarnedAbout) {
  OidcProvider provider;
  const std::string warning = "over plain http: anyone on the path can replace them";
  ServerProcess discovered(service_for(provider.issuer()));
  wait_until_ready(discovered);
  EXPECT_NE(discovered.log().find(warning), std::string::npos) << discovered.log();
  ServerProcess configured(service_for(provider.issuer(), {"--jwks-url", provider.jwks_url()}));
  wait_until_ready(configured);
  EXPECT_NE(configured.log().find(warning), std::string::npos) << configured.log();
  // https: not a word.
  TestCertificates certificates;
  OidcProvider secure({.tls = &certificates});
  ServerProcess quiet(service_for(secure.issuer(), {"--jwks-ca", certificates.ca_pem()}));
  wait_until_ready(quiet);
  EXPECT_EQ(quiet.log().find("plain http"), std::string::npos) << quiet.log();
}

}  // namespace
}  // namespace attempts::integration
