// The service against a real OpenID Connect provider (npm's oidc-provider, tests/oidc/
// provider.mjs) on loopback, configured with nothing but the provider's issuer: discovery, the
// first fetch, the provider's own tokens, the provider going away, a flood of unknown kids,
// fetches that fail in every way, and https with a test CA. Key rotation is
// test_key_rotation.cpp's; the rules of what may be fetched, test_key_source_rules.cpp's.
//
// Each scenario prints what it measured (fetches made, seconds until ready) for the record; the
// assertions are about behaviour and counts, never about time.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/identity_provider_test.hpp"

namespace attempts::integration {
namespace {

TEST_F(IdentityProviderTest, DiscoveryFindsTheKeysAndTheProvidersTokensSave) {
  OidcProvider provider;
  ServerProcess server(service_for(provider.issuer()));
  const auto ready = wait_until_ready(server);
  ASSERT_TRUE(ready.contains("keys")) << ready;
  EXPECT_EQ(ready["keys"]["source"], provider.jwks_url()) << ready;
  EXPECT_EQ(ready["keys"]["count"], 1) << ready;
  EXPECT_EQ(ready["keys"]["last_fetch"], "ok") << ready;

  const auto token = provider.token_for(7);
  const auto saved = save(server, 7, token, R"({"1":[2,3]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(7), R"({"1":[2,3]})"));
  // Another student's token, however valid, finds no attempt of theirs there.
  const auto intruder = save(server, 7, provider.token_for(8), R"({"1":[9]})");
  EXPECT_TRUE(IsJsonError(intruder, 404)) << intruder;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(7), R"({"1":[2,3]})"));
  // Without a token: 401, keys or not.
  const auto anonymous =
      HttpClient(server.port())
          .request(patch_request(attempt_target(attempt_of(7)), answers_body(R"({"1":[1]})")));
  EXPECT_EQ(anonymous.status, 401) << anonymous;

  const auto stats = provider.stats();
  EXPECT_EQ(stats["discovery_requests"], 1) << stats;
  EXPECT_EQ(stats["jwks_requests"], 1) << stats;
  EXPECT_EQ(metric(server.port(), fetches_sample("ok")), 1);
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_keys"), 1);
  EXPECT_GE(metric(server.port(), "attempts_auth_jwks_age_seconds"), 0);
  std::cout << "[ figures  ] discovery and first fetch: " << stats["discovery_requests"]
            << " discovery request, " << stats["jwks_requests"] << " JWKS request\n";
}

TEST_F(IdentityProviderTest, UntilTheKeysAreKnownRequestsGet503NotA401) {
  // The provider is not up yet: the service starts anyway and keeps trying.
  const auto port = pick_free_port();
  const std::string issuer = "http://127.0.0.1:" + std::to_string(port);
  ServerProcess server(service_for(issuer));
  EXPECT_GE(wait_for_metric(server, fetches_sample("network_error"), 1), 1);
  const auto not_ready = readyz(server);
  EXPECT_TRUE(IsUnavailable(not_ready)) << not_ready;
  EXPECT_NE(not_ready.body.find("no token signing keys yet"), std::string::npos) << not_ready;

  // Any token (this one names a key nobody has) is neither accepted nor called bad.
  const auto some_token = with_kid(token_for(7, "test-rs256"), "no-such-key");
  const auto waiting = save(server, 7, some_token, R"({"1":[1]})");
  EXPECT_TRUE(IsUnavailable(waiting)) << waiting;
  const auto anonymous =
      HttpClient(server.port())
          .request(patch_request(attempt_target(attempt_of(7)), answers_body(R"({"1":[1]})")));
  EXPECT_EQ(anonymous.status, 401) << anonymous;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(7), "{}"));

  const auto started = Clock::now();
  OidcProvider provider({.port = port});
  ASSERT_EQ(provider.issuer(), issuer);
  const auto ready = wait_until_ready(server, seconds(90));
  const double waited = seconds_since(started);
  const auto saved = save(server, 7, provider.token_for(7), R"({"1":[4]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(7), R"({"1":[4]})"));
  std::cout << "[ figures  ] provider up " << waited << " s before /readyz said ready; "
            << metric(server.port(), fetches_sample("network_error"))
            << " failed fetches while it was down\n";
}

TEST_F(IdentityProviderTest, TheRefreshIntervalFollowsTheProvidersMaxAgeWithinBounds) {
  OidcProvider provider;
  for (const auto& [cache_control, interval] : std::vector<std::pair<std::string, std::string>>{
           {"public, max-age=900", "900 s"}, {"no-store", "60 s"}, {"", "300 s"}}) {
    provider.set_cache_control(cache_control);
    ServerProcess server(service_for(provider.issuer()));
    wait_until_ready(server);
    EXPECT_NE(server.log().find("next refresh in " + interval), std::string::npos)
        << "Cache-Control: " << cache_control << "\n"
        << server.log();
  }
  // A fixed --jwks-refresh wins over what the provider says.
  provider.set_cache_control("max-age=900");
  ServerProcess fixed(service_for(provider.issuer(), {"--jwks-refresh", "45"}));
  wait_until_ready(fixed);
  EXPECT_NE(fixed.log().find("next refresh in 45 s"), std::string::npos) << fixed.log();
}

TEST_F(IdentityProviderTest, WhenTheProviderStopsTheCachedKeysKeepWorking) {
  OidcProvider provider;
  ServerProcess server(service_for(provider.issuer(), {"--jwks-min-refresh", "1"}));
  wait_until_ready(server);
  const auto used_token = provider.token_for(11);
  const auto unused_token = provider.token_for(12);
  ASSERT_EQ(save(server, 11, used_token, R"({"1":[1]})").status, 204);
  provider.stop();

  // A token never seen before is verified with the keys fetched earlier.
  const auto saved = save(server, 12, unused_token, R"({"1":[2]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(12), R"({"1":[2]})"));
  // An unknown kid makes the service try the provider, which fails; the keys stay.
  std::this_thread::sleep_for(milliseconds(1100));
  const auto unknown = save(server, 12, with_kid(unused_token, "rotated-away"), R"({"1":[3]})");
  EXPECT_EQ(unknown.status, 401) << unknown;
  EXPECT_GE(wait_for_metric(server, fetches_sample("network_error"), 1), 1);
  EXPECT_EQ(save(server, 11, used_token, R"({"1":[4]})").status, 204);

  // Ready, saying how old the keys are and why the last fetch failed; the age grows.
  json keys;
  const auto deadline = Clock::now() + seconds(15);
  do {
    std::this_thread::sleep_for(milliseconds(200));
    const auto response = readyz(server);
    ASSERT_EQ(response.status, 200) << response;
    keys = json::parse(response.body)["keys"];
  } while (keys["age_seconds"].get<int>() < 2 && Clock::now() < deadline);
  EXPECT_GE(keys["age_seconds"].get<int>(), 2) << keys;
  EXPECT_NE(keys["last_fetch"].get<std::string>().find("connect"), std::string::npos) << keys;
  EXPECT_GE(metric(server.port(), "attempts_auth_jwks_age_seconds"), 2);
  EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_keys"), 1);
  std::cout << "[ figures  ] provider stopped: keys " << keys["age_seconds"]
            << " s old still verify; failed fetches "
            << metric(server.port(), fetches_sample("network_error")) << '\n';
}

TEST_F(IdentityProviderTest, AFloodOfUnknownKidsCostsAtMostOneFetchPerInterval) {
  OidcProvider provider;
  constexpr int kMinRefreshSeconds = 2;
  ServerProcess server(
      service_for(provider.issuer(), {"--jwks-min-refresh", std::to_string(kMinRefreshSeconds)}));
  wait_until_ready(server);
  const auto genuine = provider.token_for(13);
  const int fetches_before = provider.jwks_requests();

  std::mt19937_64 random(std::random_device{}());
  const auto flood_start = Clock::now();
  int refused = 0;
  int sent = 0;
  HttpClient client(server.port());
  // 3 s of made-up kids, as fast as one connection goes (bounded in count too).
  while (seconds_since(flood_start) < 3.0 && sent < 20000) {
    const auto response = client.request(
        with_token(patch_request(attempt_target(attempt_of(13)), answers_body(R"({"1":[1]})")),
                   with_kid(genuine, "made-up-" + std::to_string(random()))));
    ++sent;
    refused += response.status == 401 ? 1 : 0;
  }
  const double flood_seconds = seconds_since(flood_start);
  // A fetch asked for at the end of the flood may start up to min-refresh later.
  std::this_thread::sleep_for(seconds(kMinRefreshSeconds) + milliseconds(500));
  const double window = seconds_since(flood_start);
  const int fetches = provider.jwks_requests() - fetches_before;

  EXPECT_EQ(refused, sent);
  EXPECT_GE(fetches, 1) << "an unknown kid must make the service look for new keys";
  EXPECT_LE(fetches, static_cast<int>(std::floor(window / kMinRefreshSeconds)) + 1)
      << "fetch starts are at least --jwks-min-refresh apart";
  EXPECT_EQ(save(server, 13, genuine, R"({"1":[2]})").status, 204);
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(13), R"({"1":[2]})"));
  std::cout << "[ figures  ] unknown-kid flood: " << sent << " requests in " << flood_seconds
            << " s -> " << fetches << " JWKS fetches (--jwks-min-refresh " << kMinRefreshSeconds
            << ")\n";
}

TEST_F(IdentityProviderTest, AFailedOrMalformedFetchKeepsTheLastGoodKeys) {
  OidcProvider provider;
  ServerProcess server(service_for(provider.issuer(), {"--jwks-refresh", "1"}));
  wait_until_ready(server);
  struct Case {
    const char* mode;
    const char* result;
  };
  // `hang` waits out the fetch timeout (10 s).
  for (const Case& bad :
       {Case{"error", "http_error"}, Case{"garbage", "malformed"}, Case{"huge", "too_large"},
        Case{"redirect-loop", "too_many_redirects"}, Case{"hang", "timeout"}}) {
    SCOPED_TRACE(bad.mode);
    const double before = metric(server.port(), fetches_sample(bad.result));
    provider.set_jwks_mode(bad.mode);
    EXPECT_GE(wait_for_metric(server, fetches_sample(bad.result), before + 1, seconds(40)),
              before + 1);
    const auto saved = save(server, 14, provider.token_for(14), R"({"1":[1]})");
    EXPECT_EQ(saved.status, 204) << saved;
    const auto ready = readyz(server);
    EXPECT_EQ(ready.status, 200) << ready;
    EXPECT_NE(json::parse(ready.body)["keys"]["last_fetch"], "ok") << ready;
    EXPECT_EQ(metric(server.port(), "attempts_auth_jwks_keys"), 1);
  }
  // A redirect within bounds is followed.
  provider.set_jwks_mode("redirect-once");
  const double ok_before = metric(server.port(), fetches_sample("ok"));
  EXPECT_GE(wait_for_metric(server, fetches_sample("ok"), ok_before + 1), ok_before + 1);
  EXPECT_GE(provider.stats()["jwks_copy_requests"].get<int>(), 1);
  const auto ready = json::parse(readyz(server).body);
  EXPECT_EQ(ready["keys"]["last_fetch"], "ok") << ready;
}

TEST_F(IdentityProviderTest, HttpsVerifiesTheProviderAgainstTheConfiguredCa) {
  TestCertificates certificates;
  OidcProvider provider({.tls = &certificates});
  ASSERT_EQ(provider.issuer().rfind("https://127.0.0.1:", 0), 0u) << provider.issuer();

  ServerProcess trusting(service_for(provider.issuer(), {"--jwks-ca", certificates.ca_pem()}));
  const auto ready = wait_until_ready(trusting);
  EXPECT_EQ(ready["keys"]["source"], provider.jwks_url()) << ready;
  const auto saved = save(trusting, 15, provider.token_for(15), R"({"1":[5]})");
  EXPECT_EQ(saved.status, 204) << saved;
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(15), R"({"1":[5]})"));

  // The system's store does not know the test CA: no keys, so 503, never a 401.
  ServerProcess distrusting(service_for(provider.issuer()));
  EXPECT_GE(wait_for_metric(distrusting, fetches_sample("tls_error"), 1), 1);
  EXPECT_TRUE(IsUnavailable(readyz(distrusting)));
  EXPECT_TRUE(IsUnavailable(save(distrusting, 15, provider.token_for(15), R"({"1":[6]})")));

  // --jwks-url skips discovery.
  const int discoveries = provider.discovery_requests();
  ServerProcess direct(service_for(
      provider.issuer(), {"--jwks-url", provider.jwks_url(), "--jwks-ca", certificates.ca_pem()}));
  wait_until_ready(direct);
  EXPECT_EQ(save(direct, 15, provider.token_for(15), R"({"1":[7]})").status, 204);
  EXPECT_EQ(provider.discovery_requests(), discoveries);
  EXPECT_TRUE(StoredAnswersAre(db_, attempt_of(15), R"({"1":[7]})"));
}

TEST_F(IdentityProviderTest, TheDiscoveredDocumentMustNameTheConfiguredIssuer) {
  OidcProvider provider;
  // The same provider, named with a trailing slash: not the issuer its document names.
  ServerProcess server(service_for(provider.issuer() + "/"));
  EXPECT_GE(wait_for_metric(server, fetches_sample("issuer_mismatch"), 1), 1);
  const auto not_ready = readyz(server);
  EXPECT_TRUE(IsUnavailable(not_ready)) << not_ready;
  EXPECT_NE(not_ready.body.find("names the issuer"), std::string::npos) << not_ready;
  EXPECT_EQ(provider.jwks_requests(), 0);
}

TEST_F(IdentityProviderTest, AKeySourceThatCannotWorkStopsTheStart) {
  const auto run = [](std::vector<std::string> flags) {
    SpawnOptions options;
    options.argv = {server_binary(), "--listen", "127.0.0.1:0", "--auth", "jwt"};
    options.argv.insert(options.argv.end(), flags.begin(), flags.end());
    return run_command(options, seconds(30));
  };
  const auto unreadable_ca =
      run({"--jwks-url", "https://127.0.0.1:1/jwks", "--jwks-ca", "/nonexistent/ca.pem"});
  EXPECT_EQ(unreadable_ca.status, ExitStatus::exit_code(2)) << unreadable_ca.output;
  EXPECT_NE(unreadable_ca.output.find("/nonexistent/ca.pem"), std::string::npos)
      << unreadable_ca.output;
  const auto two_sources = run({"--jwks-url", "http://127.0.0.1:1/jwks", "--jwks", "/tmp/x.json"});
  EXPECT_EQ(two_sources.status, ExitStatus::exit_code(2)) << two_sources.output;
  const auto not_http = run({"--jwks-url", "ftp://127.0.0.1/jwks"});
  EXPECT_EQ(not_http.status, ExitStatus::exit_code(2)) << not_http.output;
  const auto no_issuer = run({"--oidc-discovery"});
  EXPECT_EQ(no_issuer.status, ExitStatus::exit_code(2)) << no_issuer.output;
}

}  // namespace
}  // namespace attempts::integration
