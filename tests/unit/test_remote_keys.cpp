// Unit tests for the pieces of the remote key source that need no network: the URLs it
// fetches (configured, discovered, redirected to), the rules of key_source_rules.hpp, and how
// long the keys it gets are kept (when it fetches: test_refresh_schedule.cpp).
// Fetching from a real provider is tested end to end in
// tests/integration/test_identity_provider.cpp.

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <variant>

#include "attempts/auth/jwks.hpp"
#include "attempts/auth/key_source_rules.hpp"
#include "attempts/auth/remote_keys.hpp"
#include "attempts/auth/url.hpp"
#include "auth/oidc_discovery.hpp"

namespace attempts::auth {
namespace {

using std::chrono::seconds;

Url url_of(std::string_view text) {
  auto parsed = parse_url(text);
  if (const auto* why = std::get_if<std::string>(&parsed)) {
    ADD_FAILURE() << text << ": " << *why;
    return {};
  }
  return std::get<Url>(parsed);
}

bool refused(std::string_view text) {
  return std::holds_alternative<std::string>(parse_url(text));
}

TEST(UrlTest, HttpAndHttpsWithTheirDefaultPorts) {
  EXPECT_EQ(url_of("https://id.example/realms/exams/protocol/openid-connect/certs"),
            (Url{true, "id.example", 443, "/realms/exams/protocol/openid-connect/certs"}));
  EXPECT_EQ(url_of("http://127.0.0.1:8080"), (Url{false, "127.0.0.1", 8080, "/"}));
  EXPECT_EQ(url_of("HTTPS://ID.Example:8443/Keys?v=2"),
            (Url{true, "id.example", 8443, "/Keys?v=2"}));
  EXPECT_EQ(url_of("http://[::1]:9000/jwks"), (Url{false, "::1", 9000, "/jwks"}));
  EXPECT_EQ(url_of("https://id.example?x=1").target, "/?x=1");
}

TEST(UrlTest, WhatIsNotAPlainHttpUrlIsRefusedWithAReason) {
  for (const char* text :
       {"", "id.example/jwks", "ftp://id.example/jwks", "file:///etc/jwks.json",
        "https://user:pw@id.example/jwks", "https://id.example/jwks#frag", "https:///jwks",
        "https://id.example:/jwks", "https://id.example:0/jwks", "https://id.example:65536/",
        "https://id.example:8x/", "https://id example/", "https://id.example/a b",
        "http://[::1/jwks", "http://[not-v6]/", "http://[::1]x/", "https://id\x01.example/"}) {
    EXPECT_TRUE(refused(text)) << "'" << text << "'";
  }
}

TEST(UrlTest, ToStringOmitsTheDefaultPortAndBracketsIpv6) {
  EXPECT_EQ(to_string(url_of("https://id.example:443/jwks")), "https://id.example/jwks");
  EXPECT_EQ(to_string(url_of("http://id.example:8080/jwks")), "http://id.example:8080/jwks");
  EXPECT_EQ(to_string(url_of("http://[::1]/x")), "http://[::1]/x");
}

TEST(UrlTest, ARedirectGoesToAnAbsoluteUrlOrAPathOfTheSameServer) {
  const Url base = url_of("https://id.example:8443/jwks");
  const auto same_server = resolve_location(base, "/v2/jwks?x=1");
  ASSERT_TRUE(std::holds_alternative<Url>(same_server));
  EXPECT_EQ(std::get<Url>(same_server), (Url{true, "id.example", 8443, "/v2/jwks?x=1"}));
  const auto elsewhere = resolve_location(base, "https://cdn.example/keys");
  ASSERT_TRUE(std::holds_alternative<Url>(elsewhere));
  EXPECT_EQ(std::get<Url>(elsewhere), (Url{true, "cdn.example", 443, "/keys"}));
  for (const char* location :
       {"", "jwks", "../jwks", "//cdn.example/keys", "/a b", "/x#y", "gopher://cdn.example/"}) {
    EXPECT_TRUE(std::holds_alternative<std::string>(resolve_location(base, location)))
        << "'" << location << "'";
  }
}

TEST(KeySourceRulesTest, HttpsStaysHttps) {
  const Url https = url_of("https://id.example/.well-known/openid-configuration");
  const Url http = url_of("http://id.example/jwks");
  EXPECT_EQ(downgrade_error(https, url_of("https://keys.example/jwks")), std::nullopt);
  EXPECT_EQ(downgrade_error(http, url_of("https://keys.example/jwks")), std::nullopt);
  EXPECT_EQ(downgrade_error(http, url_of("http://127.0.0.1:9/jwks")), std::nullopt);
  const auto refused = downgrade_error(https, url_of("http://127.0.0.1:9/jwks"));
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("http://127.0.0.1:9/jwks"), std::string::npos) << *refused;
}

TEST(KeySourceRulesTest, PlainHttpIsWarnedAbout) {
  EXPECT_EQ(plaintext_warning(url_of("https://id.example/jwks")), std::nullopt);
  const auto warning = plaintext_warning(url_of("http://id.example/jwks"));
  ASSERT_TRUE(warning);
  EXPECT_NE(warning->find("http://id.example/jwks"), std::string::npos) << *warning;
}

TEST(KeySourceRulesTest, SecretsComeFromAFileOnlyAndOneBadKeyRefusesOnlyAFile) {
  for (const auto algorithm : {Algorithm::rs256, Algorithm::es256, Algorithm::eddsa}) {
    EXPECT_TRUE(may_carry(KeyOrigin::remote, algorithm));
    EXPECT_TRUE(may_carry(KeyOrigin::file, algorithm));
  }
  EXPECT_FALSE(may_carry(KeyOrigin::remote, Algorithm::hs256));
  EXPECT_TRUE(may_carry(KeyOrigin::file, Algorithm::hs256));
  EXPECT_TRUE(refuses_whole_document(KeyOrigin::file));
  EXPECT_FALSE(refuses_whole_document(KeyOrigin::remote));
}

TEST(DiscoveryTest, TheDocumentIsUnderTheIssuerWithoutItsTrailingSlash) {
  EXPECT_EQ(discovery_url("https://id.example/realms/exams"),
            "https://id.example/realms/exams/.well-known/openid-configuration");
  EXPECT_EQ(discovery_url("https://id.example/"),
            "https://id.example/.well-known/openid-configuration");
}

TEST(CacheControlTest, MaxAgeIsReadAsRfc9111Says) {
  EXPECT_EQ(max_age("max-age=600"), seconds(600));
  EXPECT_EQ(max_age("public, max-age=3600, must-revalidate"), seconds(3600));
  EXPECT_EQ(max_age("Max-Age=\"120\""), seconds(120));
  EXPECT_EQ(max_age("max-age=99999999999999999999"), seconds(std::int64_t{1} << 31));
  EXPECT_EQ(max_age("no-cache"), seconds(0));
  EXPECT_EQ(max_age("no-store, max-age=600"), seconds(0));
  EXPECT_EQ(max_age(""), std::nullopt);
  EXPECT_EQ(max_age("public"), std::nullopt);
  EXPECT_EQ(max_age("max-age=-5"), std::nullopt);
  EXPECT_EQ(max_age("max-age="), std::nullopt);
  EXPECT_EQ(max_age("s-maxage=60"), std::nullopt);
}

TEST(CacheControlTest, TheRefreshFollowsMaxAgeWithinBoundsUnlessAnIntervalIsSet) {
  RemoteKeysOptions automatic;
  EXPECT_EQ(refresh_interval(automatic, ""), kDefaultRefresh);
  EXPECT_EQ(refresh_interval(automatic, "max-age=900"), seconds(900));
  // A provider asking for no caching at all would be fetched on every request: one a minute.
  EXPECT_EQ(refresh_interval(automatic, "no-store"), kMinAutoRefresh);
  EXPECT_EQ(refresh_interval(automatic, "max-age=5"), kMinAutoRefresh);
  EXPECT_EQ(refresh_interval(automatic, "max-age=31536000"), kMaxAutoRefresh);
  RemoteKeysOptions fixed;
  fixed.refresh = seconds(7);
  EXPECT_EQ(refresh_interval(fixed, "max-age=900"), seconds(7));
  EXPECT_EQ(refresh_interval(fixed, ""), seconds(7));
}

TEST(FetchOutcomeTest, EachOutcomeHasItsOwnLabel) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kFetchOutcomeCount; ++i) {
    names.insert(name(static_cast<FetchOutcome>(i)));
  }
  EXPECT_EQ(names.size(), kFetchOutcomeCount);
  EXPECT_EQ(name(FetchOutcome::ok), "ok");
  EXPECT_EQ(name(FetchOutcome::issuer_mismatch), "issuer_mismatch");
  EXPECT_EQ(name(FetchOutcome::insecure), "insecure");
}

}  // namespace
}  // namespace attempts::auth
