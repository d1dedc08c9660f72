// Staff tokens: which claims make a token a staff member's (roles arrays as Keycloak and Auth0
// issue them, a space-separated scope string), which claim names the staff member, and what the
// verifier and the authenticator (with its cache) make of such a token.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/staff_rule.hpp"
#include "auth_test_support.hpp"

namespace attempts::auth {
namespace {

using json = nlohmann::json;

StaffRule rule(std::string claim, std::string role, std::string id_claim = "sub") {
  return StaffRule{std::move(claim), std::move(role), std::move(id_claim)};
}

TEST(StaffRoleTest, AnArrayClaimMustHoldTheRoleExactly) {
  const json claims = {{"roles", {"student", "teacher"}}};
  EXPECT_TRUE(grants_staff_role(claims, rule("roles", "teacher")));
  EXPECT_FALSE(grants_staff_role(claims, rule("roles", "teach")));
  EXPECT_FALSE(grants_staff_role(claims, rule("roles", "Teacher")));
  EXPECT_FALSE(grants_staff_role(json{{"roles", {1, "x"}}}, rule("roles", "1")));
}

TEST(StaffRoleTest, AStringClaimIsSpaceSeparatedValuesLikeScope) {
  const StaffRule scope = rule("scope", "attempts:export");
  EXPECT_TRUE(grants_staff_role(json{{"scope", "openid attempts:export profile"}}, scope));
  EXPECT_TRUE(grants_staff_role(json{{"scope", "attempts:export"}}, scope));
  EXPECT_FALSE(grants_staff_role(json{{"scope", "attempts:exporter"}}, scope));
  EXPECT_FALSE(grants_staff_role(json{{"scope", "openid,attempts:export"}}, scope));
}

TEST(StaffRoleTest, KeycloakRealmRolesAreFoundByPathAndAuth0NamespacedClaimsAsThemselves) {
  const json keycloak = {{"realm_access", {{"roles", {"offline_access", "teacher"}}}},
                         {"resource_access", {{"exam-app", {{"roles", {"grader"}}}}}}};
  EXPECT_TRUE(grants_staff_role(keycloak, rule("realm_access.roles", "teacher")));
  EXPECT_TRUE(grants_staff_role(keycloak, rule("resource_access.exam-app.roles", "grader")));
  EXPECT_FALSE(grants_staff_role(keycloak, rule("resource_access.other.roles", "grader")));
  // A namespaced claim's dots are its own: the whole name is looked up first.
  const json auth0 = {{"https://exams.example/roles", {"teacher"}}};
  EXPECT_TRUE(grants_staff_role(auth0, rule("https://exams.example/roles", "teacher")));
}

TEST(StaffRoleTest, MissingClaimsOtherTypesAndNoRuleGrantNothing) {
  EXPECT_FALSE(grants_staff_role(json{{"sub", "x"}}, rule("roles", "teacher")));
  EXPECT_FALSE(grants_staff_role(json{{"roles", {{"teacher", true}}}}, rule("roles", "teacher")));
  EXPECT_FALSE(grants_staff_role(json{{"roles", true}}, rule("roles", "teacher")));
  EXPECT_FALSE(grants_staff_role(json{{"roles", {"teacher"}}}, StaffRule{}));
}

TEST(StaffIdTest, AStringOrAnIntegerNamesTheStaffMember) {
  EXPECT_EQ(staff_id_claim(json{{"sub", "f3c1-uuid"}}, rule("roles", "t")), "f3c1-uuid");
  EXPECT_EQ(staff_id_claim(json{{"sub", "auth0|5f7c"}}, rule("roles", "t")), "auth0|5f7c");
  EXPECT_EQ(staff_id_claim(json{{"uid", 42}}, rule("roles", "t", "uid")), "42");
  EXPECT_FALSE(staff_id_claim(json{{"sub", ""}}, rule("roles", "t")));
  EXPECT_FALSE(staff_id_claim(json{{"sub", 4.5}}, rule("roles", "t")));
  EXPECT_FALSE(
      staff_id_claim(json{{"sub", std::string(kMaxStaffIdBytes + 1, 'x')}}, rule("roles", "t")));
  EXPECT_FALSE(staff_id_claim(json::object(), rule("roles", "t")));
}

// ---- through the verifier and the authenticator -----------------------------------------------

json staff_claims(json extra) {
  json claims = {{"sub", "teacher-uuid-1"}, {"iat", test::kNow}, {"exp", test::kExpiry}};
  claims.update(extra);
  return claims;
}

VerifierOptions staff_options() {
  VerifierOptions options;
  options.staff = rule("roles", "teacher");
  return options;
}

TEST(StaffTokenTest, TheVerifierNamesTheStaffMemberAndNoStudent) {
  const TokenVerifier verifier(test::test_key_set(), staff_options());
  const auto token =
      test::make_token("test-rs256", json::object(), staff_claims({{"roles", {"teacher"}}}));
  const VerifyResult result = verifier.verify(token, test::kNow);
  ASSERT_TRUE(std::holds_alternative<VerifiedToken>(result));
  EXPECT_EQ(std::get<VerifiedToken>(result).staff_id, "teacher-uuid-1");
  EXPECT_EQ(std::get<VerifiedToken>(result).student_id, 0);
  EXPECT_EQ(verifier.staff_id_of(token), "teacher-uuid-1");
}

TEST(StaffTokenTest, AStaffTokenWithoutItsIdClaimIsRefused) {
  const TokenVerifier verifier(test::test_key_set(), staff_options());
  json claims = staff_claims({{"roles", {"teacher"}}});
  claims.erase("sub");
  EXPECT_EQ(verifier.verify(test::make_token("test-hs256", json::object(), claims), test::kNow),
            VerifyResult(TokenError::bad_staff_id));
}

TEST(StaffTokenTest, WithoutTheRoleATokenIsAStudentsAndNeedsAStudentId) {
  const TokenVerifier verifier(test::test_key_set(), staff_options());
  const auto student = test::make_token("test-hs256", json::object(),
                                        staff_claims({{"sub", "7"}, {"roles", {"student"}}}));
  const VerifyResult result = verifier.verify(student, test::kNow);
  ASSERT_TRUE(std::holds_alternative<VerifiedToken>(result));
  EXPECT_EQ(std::get<VerifiedToken>(result).student_id, 7);
  EXPECT_FALSE(std::get<VerifiedToken>(result).staff_id);
  // The same teacher's token under a verifier without a staff rule: its sub is no student id.
  const TokenVerifier no_staff(test::test_key_set(), VerifierOptions{});
  EXPECT_EQ(no_staff.verify(test::make_token("test-hs256", json::object(),
                                             staff_claims({{"roles", {"teacher"}}})),
                            test::kNow),
            VerifyResult(TokenError::bad_subject));
}

TEST(StaffTokenTest, TheAuthenticatorGivesTheStaffMemberOnAMissAndOnACacheHit) {
  const Authenticator authenticator(
      std::make_shared<const TokenVerifier>(test::test_key_set(), staff_options()));
  TokenCache cache({.capacity = 64});
  const std::string header = "Bearer " + test::make_token("test-es256", json::object(),
                                                          staff_claims({{"roles", {"teacher"}}}));
  const AuthResult expected = StaffMember{"teacher-uuid-1"};
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), test::kNow), expected);
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), test::kNow + 1), expected);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 1u);
  // A student's token beside it keeps its own entry and answer.
  const std::string student = "Bearer " + test::make_token("test-es256");
  EXPECT_EQ(authenticator.authenticate(student, cache.reader(), test::kNow), AuthResult(42));
  EXPECT_EQ(authenticator.authenticate(student, cache.reader(), test::kNow), AuthResult(42));
}

TEST(StaffTokenTest, ChangingTheStaffRuleRetiresCachedStaffTokens) {
  Authenticator authenticator(
      std::make_shared<const TokenVerifier>(test::test_key_set(), staff_options()));
  TokenCache cache({.capacity = 64});
  const std::string header = "Bearer " + test::make_token("test-hs256", json::object(),
                                                          staff_claims({{"roles", {"teacher"}}}));
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), test::kNow),
            AuthResult(StaffMember{"teacher-uuid-1"}));
  VerifierOptions graders = staff_options();
  graders.staff.role = "grader";
  authenticator.replace(std::make_shared<const TokenVerifier>(test::test_key_set(), graders));
  // Not a grader, and its sub is no student id: refused, not answered from the cache.
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), test::kNow),
            AuthResult(AuthFailure{TokenError::bad_subject}));
}

}  // namespace
}  // namespace attempts::auth
