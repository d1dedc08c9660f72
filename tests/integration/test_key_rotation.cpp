// Key rotation at a real OpenID Connect provider (npm's oidc-provider, tests/oidc/
// provider.mjs) on loopback, with the service given nothing but the provider's issuer: a new
// kid (the 401 it gets says when to retry, and the retry is accepted), a new key under the same
// kid, a provider without kids, the periodic refresh, and SIGHUP, which an operator removing a
// compromised key uses to act at once. docs/auth.md, "Rotation at the provider".
//
// Each scenario prints what it measured for the record; the assertions are about behaviour and
// counts, never about time.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/identity_provider_test.hpp"
#include "token/token_tools.hpp"

namespace attempts::integration {
namespace {

namespace tools = auth::tools;

class IdentityProviderRotationTest : public IdentityProviderTest {
 protected:
  // Tokens asking for new keys are answered within a second.
  static ServerSettings quick_service_for(const OidcProvider& provider) {
    return service_for(provider.issuer(), {"--jwks-min-refresh", "1"});
  }

  // Once the service has the provider's keys, a save of `student` with a token of the
  // provider's signing key is stored and --jwks-min-refresh has passed since the first fetch: a
  // rotation now is fetched as soon as a token asks. Returns that token.
  static std::string saved_before_rotation(OidcProvider& provider, const ServerProcess& server,
                                           int student) {
    wait_until_ready(server);
    const auto token = provider.token_for(student);
    EXPECT_EQ(save(server, student, token, R"({"1":[1]})").status, 204);
    std::this_thread::sleep_for(milliseconds(1100));
    return token;
  }

  // Saves with `token` once, then once more after the Retry-After its 401 names (as the
  // reference client does); the last response.
  static HttpResponse save_with_one_retry(const ServerProcess& server, int student,
                                          const std::string& token, const std::string& answers) {
    auto response = save(server, student, token, answers);
    const auto retry_after = response.header("retry-after");
    if (response.status != 401 || !retry_after) return response;
    std::this_thread::sleep_for(seconds(std::stoi(*retry_after)));
    return save(server, student, token, answers);
  }
};

TEST_F(IdentityProviderRotationTest, ANewKidIsAcceptedOnTheOneRetryThe401Asks) {
  OidcProvider provider;
  ServerProcess server(quick_service_for(provider));
  const auto first_key_token = saved_before_rotation(provider, server, 9);

  const int fetches_before = provider.jwks_requests();
  const auto second_kid = provider.rotate();
  const auto second_key_token = provider.token_for(9);
  ASSERT_EQ(kid_of(second_key_token), second_kid)
      << "the provider's new token is not signed by its new key";
  const auto rotated = Clock::now();
  // The first request with the new kid cannot be verified yet; it asks for the new keys, and
  // its 401 says when they will be there.
  const auto first_try = save(server, 9, second_key_token, R"({"1":[2]})");
  ASSERT_EQ(first_try.status, 401) << first_try;
  const auto retry_after = first_try.header("retry-after");
  ASSERT_TRUE(retry_after) << "a 401 while new keys are fetched says when to retry: " << first_try;
  const int wait = std::stoi(*retry_after);
  EXPECT_GE(wait, 1);
  EXPECT_LE(wait, 2);  // --jwks-min-refresh 1 has passed: at once, and a second for the fetch
  // The client's one retry, when it was told to, is accepted.
  std::this_thread::sleep_for(seconds(wait));
  const auto retried = save(server, 9, second_key_token, R"({"1":[2]})");
  const double to_accept = seconds_since(rotated);
  EXPECT_EQ(retried.status, 204) << retried;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(9), R"({"1":[2]})"));
  EXPECT_EQ(provider.jwks_requests() - fetches_before, 1);
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_unknown_kid_refreshes_total"), 1);
  // The old key is still published: its tokens still work.
  EXPECT_EQ(save(server, 9, first_key_token, R"({"1":[3]})").status, 204);
  std::cout << "[ figures  ] rotation (new kid, old one kept): accepted on the retry after "
            << to_accept << " s (Retry-After " << wait << "), "
            << provider.jwks_requests() - fetches_before << " JWKS fetch\n";

  // The provider drops every old key: once the service has the new set, tokens of the old
  // keys are refused, cached or not.
  std::this_thread::sleep_for(milliseconds(1100));
  const auto third_kid = provider.rotate(/*only_new=*/true);
  const auto third_key_token = provider.token_for(9);
  EXPECT_EQ(save_until_accepted(server, 9, third_key_token, R"({"1":[4]})").status, 204);
  const auto old_first = save(server, 9, first_key_token, R"({"1":[5]})");
  const auto old_second = save(server, 9, second_key_token, R"({"1":[5]})");
  EXPECT_EQ(old_first.status, 401) << old_first;
  EXPECT_EQ(old_second.status, 401) << old_second;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(9), R"({"1":[4]})"));
  EXPECT_NE(third_kid, second_kid);
}

TEST_F(IdentityProviderRotationTest, ThePeriodicRefreshPicksUpANewKeyBeforeATokenNeedsIt) {
  OidcProvider provider;
  ServerProcess server(service_for(provider.issuer(), {"--jwks-refresh", "1"}));
  wait_until_ready(server);
  provider.rotate();
  const auto rotated = Clock::now();
  const double fetched = metric(server.port(), fetches_sample("ok"));
  // Two more refreshes: the second one surely started after the rotation.
  EXPECT_GE(wait_for_metric(server, fetches_sample("ok"), fetched + 2), fetched + 2);
  const auto saved = save(server, 10, provider.token_for(10), R"({"1":[6]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_unknown_kid_refreshes_total"), 0);
  std::cout << "[ figures  ] rotation picked up by --jwks-refresh 1 within "
            << seconds_since(rotated) << " s, no request refused\n";
}

TEST_F(IdentityProviderRotationTest, SighupFetchesTheKeysAgain) {
  OidcProvider provider;
  ServerProcess server(service_for(provider.issuer()));
  wait_until_ready(server);
  const int fetches_before = provider.jwks_requests();
  provider.rotate();
  server.signal(SIGHUP);
  const auto deadline = Clock::now() + seconds(30);
  while (provider.jwks_requests() == fetches_before && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(provider.jwks_requests(), fetches_before + 1);
  EXPECT_EQ(wait_for_metric(server, "attempts_auth_jwks_keys", 2), 2);
  // The new key was there before any token needed it.
  const auto saved = save(server, 16, provider.token_for(16), R"({"1":[3]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_unknown_kid_refreshes_total"), 0);
  EXPECT_NE(server.log().find("SIGHUP: fetching the keys from " + provider.jwks_url()),
            std::string::npos);
  EXPECT_TRUE(server.running());
}

TEST_F(IdentityProviderRotationTest, ANewKeyUnderTheSameKidIsFetchedWhenItsFirstTokenFails) {
  OidcProvider provider;
  ServerProcess server(quick_service_for(provider));
  const auto old_token = saved_before_rotation(provider, server, 17);

  const int fetches_before = provider.jwks_requests();
  const auto kid = provider.rotate_same_kid();
  const auto new_token = provider.token_for(17);
  ASSERT_EQ(kid_of(new_token), kid);
  ASSERT_EQ(kid_of(old_token), kid);
  // The kid is known, its key does not verify the token: the provider may have rotated.
  const auto saved = save_with_one_retry(server, 17, new_token, R"({"1":[2]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(17), R"({"1":[2]})"));
  EXPECT_GE(provider.jwks_requests() - fetches_before, 1);
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_bad_signature_refreshes_total"), 1);
  // The key that verified the old token is gone, and its cached token with it.
  const auto old = save(server, 17, old_token, R"({"1":[3]})");
  EXPECT_EQ(old.status, 401) << old;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(17), R"({"1":[2]})"));
}

TEST_F(IdentityProviderRotationTest, AProviderWithoutKidsIsFetchedWhenItsKeyChanges) {
  OidcProvider provider;
  const auto first = tools::generate_private_jwk(auth::Algorithm::es256, "unused");
  const auto second = tools::generate_private_jwk(auth::Algorithm::es256, "unused");
  const auto published = [](json jwk) {
    jwk = tools::public_jwk(jwk);
    jwk.erase("kid");
    return json{{"keys", json::array({jwk})}};
  };
  auto first_key = tools::signing_key_from_jwk(first);
  auto second_key = tools::signing_key_from_jwk(second);
  provider.serve_jwks(published(first));
  ServerProcess server(quick_service_for(provider));
  wait_until_ready(server);
  const auto first_token = provider_style_token(first_key, provider.issuer(), 18, false);
  ASSERT_EQ(kid_of(first_token), "");
  ASSERT_EQ(save(server, 18, first_token, R"({"1":[1]})").status, 204);
  std::this_thread::sleep_for(milliseconds(1100));

  // The one key changes; tokens name none, so the service learns it from a signature that
  // fails.
  provider.serve_jwks(published(second));
  const auto second_token = provider_style_token(second_key, provider.issuer(), 18, false);
  const auto saved = save_with_one_retry(server, 18, second_token, R"({"1":[2]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(18), R"({"1":[2]})"));
  EXPECT_EQ(save(server, 18, first_token, R"({"1":[3]})").status, 401);
}

TEST_F(IdentityProviderRotationTest, SighupRemovesAKeyTheProviderDroppedAtOnce) {
  // An operator whose provider's key leaked: the key is removed at the provider, and a reload
  // makes the service forget it now, not at the next refresh (up to a day with max-age) nor
  // after --jwks-min-refresh.
  OidcProvider provider;
  ServerProcess server(service_for(provider.issuer(), {"--jwks-min-refresh", "300"}));
  wait_until_ready(server);
  const auto leaked = provider.token_for(19);
  ASSERT_EQ(save(server, 19, leaked, R"({"1":[1]})").status, 204);  // verified and cached
  const int fetches_before = provider.jwks_requests();
  provider.rotate(/*only_new=*/true);
  server.signal(SIGHUP);
  const auto deadline = Clock::now() + seconds(20);
  while (provider.jwks_requests() == fetches_before && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(provider.jwks_requests(), fetches_before + 1) << "SIGHUP fetched nothing";
  const auto refused = when_status(
      server.port(),
      with_token(patch_request(attempt_target(attempt_of(19)), answers_body(R"({"1":[2]})")),
                 leaked),
      401, seconds(10));
  EXPECT_EQ(refused.status, 401) << refused;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(19), R"({"1":[1]})"));
  EXPECT_EQ(save(server, 19, provider.token_for(19), R"({"1":[3]})").status, 204);
}

}  // namespace
}  // namespace attempts::integration
