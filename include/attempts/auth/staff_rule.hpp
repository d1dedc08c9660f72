#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace attempts::auth {

// Which tokens are a staff member's (a teacher, a grader, the platform's exporter) rather than a
// student's, and which claim names the staff member. Identity providers say it differently:
// Keycloak puts realm roles in `realm_access.roles` (an array; a mapper can also copy them to a
// top-level `roles`), Auth0 in a namespaced array claim (`https://exams.example/roles`), and
// OAuth servers such as npm's oidc-provider in `scope`, a string of space-separated values.
struct StaffRule {
  // The claim holding roles or scopes; empty: no token is a staff member's. A name that is not
  // a top-level claim is read as a path of members separated by dots (`realm_access.roles`),
  // so a namespaced claim whose name holds dots is found first as itself.
  std::string claim;
  // The value the claim must contain: a member of an array of strings, or one of the
  // space-separated values of a string.
  std::string role;
  // The claim naming the staff member, matched against exam_staff.staff_id: a non-empty string
  // (a Keycloak or Auth0 `sub` is not a number), or an integer, read as its decimal digits.
  std::string id_claim = "sub";

  bool enabled() const noexcept { return !claim.empty(); }
};

// Whether `claims` (a JWT's payload, verified) grant the rule's role. False when the rule is
// off, the claim is missing, or it is neither a string nor an array.
bool grants_staff_role(const nlohmann::json& claims, const StaffRule& rule);

// The staff member's id from `claims`: the id claim as a non-empty string of at most
// kMaxStaffIdBytes bytes, or an integer's decimal digits; nullopt otherwise.
std::optional<std::string> staff_id_claim(const nlohmann::json& claims, const StaffRule& rule);

inline constexpr std::size_t kMaxStaffIdBytes = 256;

}  // namespace attempts::auth
