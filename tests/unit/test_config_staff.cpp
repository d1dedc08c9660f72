// The staff settings: which tokens are a staff member's, and the staff reader's connections and
// limits.

#include <gtest/gtest.h>

#include "attempts/config/config.hpp"

namespace attempts::config {
namespace {

TEST(StaffSettingsTest, DefaultsAreNoStaffTokensOneConnectionOneExport) {
  const ParseResult result = parse_config({}, EnvLookup{});
  ASSERT_EQ(result.action, ParseResult::Action::run) << result.message;
  EXPECT_EQ(result.config.staff_claim, "");
  EXPECT_EQ(result.config.staff_role, "");
  EXPECT_EQ(result.config.staff_id_claim, "sub");
  EXPECT_EQ(result.config.staff_connections, 1u);
  EXPECT_EQ(result.config.max_exports, 1u);
  EXPECT_EQ(result.config.staff_statement_timeout_seconds, 30u);
  EXPECT_EQ(result.config.export_rate, 100000u);
  EXPECT_EQ(parse_config({"--export-rate", "0"}, EnvLookup{}).config.export_rate, 0u);
}

TEST(StaffSettingsTest, ClaimAndRoleAreReadTogether) {
  const ParseResult result =
      parse_config({"--staff-claim", "realm_access.roles", "--staff-role", "teacher",
                    "--staff-id-claim", "email", "--staff-connections", "2", "--max-exports", "3"},
                   EnvLookup{});
  ASSERT_EQ(result.action, ParseResult::Action::run) << result.message;
  EXPECT_EQ(result.config.staff_claim, "realm_access.roles");
  EXPECT_EQ(result.config.staff_role, "teacher");
  EXPECT_EQ(result.config.staff_id_claim, "email");
  EXPECT_EQ(result.config.staff_connections, 2u);
  EXPECT_EQ(result.config.max_exports, 3u);
  for (const auto& alone : {std::vector<std::string>{"--staff-claim", "roles"},
                            std::vector<std::string>{"--staff-role", "teacher"}}) {
    const ParseResult refused = parse_config(alone, EnvLookup{});
    EXPECT_EQ(refused.action, ParseResult::Action::fail) << alone[0];
    EXPECT_NE(refused.message.find("go together"), std::string::npos) << refused.message;
  }
  for (const auto& bad : {std::vector<std::string>{"--staff-connections", "0"},
                          std::vector<std::string>{"--max-exports", "65"},
                          std::vector<std::string>{"--staff-role", "a b", "--staff-claim", "x"}}) {
    EXPECT_EQ(parse_config(bad, EnvLookup{}).action, ParseResult::Action::fail) << bad[0];
  }
}

}  // namespace
}  // namespace attempts::config
