// Unit tests for where the token keys come from: one source among a file, a URL and OIDC
// discovery (implied by an issuer URL alone), and the settings of a remote source.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "attempts/config/config.hpp"

namespace attempts::config {
namespace {

using testing::HasSubstr;
using Action = ParseResult::Action;

ParseResult parse(std::vector<std::string> args,
                  std::map<std::string, std::string> environment = {}) {
  return parse_config(args, [environment](const std::string& name) -> std::optional<std::string> {
    const auto found = environment.find(name);
    return found == environment.end() ? std::nullopt : std::optional(found->second);
  });
}

TEST(KeySourceConfigTest, AnIssuerUrlAloneMeansDiscovery) {
  const auto result = parse({"--jwt-issuer", "https://id.example/realms/exams"});
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_TRUE(result.config.oidc_discovery);
  EXPECT_THAT(describe(result.config), HasSubstr("oidc-discovery=true"));
  EXPECT_THAT(describe(result.config), HasSubstr("jwks-refresh=auto"));
}

TEST(KeySourceConfigTest, AnIssuerWithAnotherSourceOrNotAUrlIsOnlyChecked) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--jwt-issuer", "https://id.example", "--jwks", "/etc/jwks.json"},
           {"--jwt-issuer", "https://id.example", "--jwks-url", "https://id.example/keys"},
           {"--jwt-issuer", "attempts-dev"},
           {"--jwt-issuer", "https://id.example", "--oidc-discovery=false"},
           {"--jwt-issuer", "https://id.example", "--auth", "none"}}) {
    const auto result = parse(args);
    ASSERT_EQ(result.action, Action::run) << result.message;
    EXPECT_FALSE(result.config.oidc_discovery) << args[2];
  }
}

TEST(KeySourceConfigTest, RemoteSettingsComeFromFlagsEnvironmentAndTheirDefaults) {
  const auto defaults = parse({"--jwks-url", "https://id.example/keys"});
  ASSERT_EQ(defaults.action, Action::run) << defaults.message;
  EXPECT_EQ(defaults.config.jwks_url, "https://id.example/keys");
  EXPECT_EQ(defaults.config.jwks_refresh_seconds, 0u);
  EXPECT_EQ(defaults.config.jwks_min_refresh_seconds, 10u);
  EXPECT_EQ(defaults.config.jwks_ca, "");

  const auto set = parse(
      {"--jwks-url", "https://id.example/keys", "--jwks-refresh", "120", "--jwks-min-refresh=3"},
      {{"JWKS_CA", "/etc/ssl/idp-ca.pem"}});
  ASSERT_EQ(set.action, Action::run) << set.message;
  EXPECT_EQ(set.config.jwks_refresh_seconds, 120u);
  EXPECT_EQ(set.config.jwks_min_refresh_seconds, 3u);
  EXPECT_EQ(set.config.jwks_ca, "/etc/ssl/idp-ca.pem");
  EXPECT_THAT(describe(set.config), HasSubstr("jwks-refresh=120s jwks-min-refresh=3s"));

  const auto by_env =
      parse({}, {{"JWKS_URL", "http://127.0.0.1:9000/jwks"}, {"OIDC_DISCOVERY", "false"}});
  ASSERT_EQ(by_env.action, Action::run) << by_env.message;
  EXPECT_EQ(by_env.config.jwks_url, "http://127.0.0.1:9000/jwks");
}

TEST(KeySourceConfigTest, WhatCannotWorkIsRefusedWithAReason) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--jwks", "/etc/jwks.json", "--jwks-url", "https://id.example/keys"}, "one key source"},
      {{"--jwks-url", "https://id.example/keys", "--oidc-discovery", "--jwt-issuer",
        "https://id.example"},
       "one key source"},
      {{"--oidc-discovery"}, "needs --jwt-issuer"},
      {{"--oidc-discovery", "--jwt-issuer", "attempts-dev"}, "not an http(s) URL"},
      {{"--jwks-url", "ftp://id.example/keys"}, "not http or https"},
      {{"--jwks-url", "https://user:pw@id.example/keys"}, "user information"},
      {{"--jwks", "/etc/jwks.json", "--jwks-ca", "/etc/ca.pem"}, "--jwks-ca"},
      {{"--jwks-url", "https://id.example/keys", "--jwks-refresh", "86401"}, "0 to 86400"},
      {{"--jwks-url", "https://id.example/keys", "--jwks-min-refresh", "0"}, "1 to 3600"},
  };
  for (const auto& [args, reason] : cases) {
    const auto result = parse(args);
    EXPECT_EQ(result.action, Action::fail) << args[0] << " " << args[1];
    EXPECT_THAT(result.message, HasSubstr(reason)) << args[0] << " " << args[1];
  }
}

TEST(KeySourceConfigTest, PrintConfigReadsBackTheSameKeySource) {
  const auto printed =
      parse({"--jwks-url", "https://id.example/keys", "--jwks-refresh", "60", "--print-config"});
  ASSERT_EQ(printed.action, Action::print_config) << printed.message;
  EXPECT_THAT(printed.message, HasSubstr("jwks-url = \"https://id.example/keys\""));
  EXPECT_THAT(printed.message, HasSubstr("jwks-refresh = 60"));
  EXPECT_THAT(printed.message, HasSubstr("oidc-discovery = false"));
}

}  // namespace
}  // namespace attempts::config
