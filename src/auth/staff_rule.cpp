#include "attempts/auth/staff_rule.hpp"

#include <nlohmann/json.hpp>

namespace attempts::auth {
namespace {

using json = nlohmann::json;

// `name` as a top-level claim, else as a path of object members separated by dots.
const json* find_claim(const json& claims, std::string_view name) {
  if (!claims.is_object() || name.empty()) return nullptr;
  if (const auto found = claims.find(std::string(name)); found != claims.end()) return &*found;
  const json* node = &claims;
  while (!name.empty()) {
    const auto dot = name.find('.');
    const std::string member(name.substr(0, dot));
    if (!node->is_object()) return nullptr;
    const auto found = node->find(member);
    if (found == node->end()) return nullptr;
    node = &*found;
    name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  }
  return node;
}

bool contains_word(std::string_view text, std::string_view word) {
  while (!text.empty()) {
    const auto space = text.find(' ');
    if (text.substr(0, space) == word) return true;
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
  }
  return false;
}

}  // namespace

bool grants_staff_role(const json& claims, const StaffRule& rule) {
  if (!rule.enabled() || rule.role.empty()) return false;
  const json* value = find_claim(claims, rule.claim);
  if (value == nullptr) return false;
  if (value->is_string()) return contains_word(value->get_ref<const std::string&>(), rule.role);
  if (!value->is_array()) return false;
  for (const auto& member : *value) {
    if (member.is_string() && member.get_ref<const std::string&>() == rule.role) return true;
  }
  return false;
}

std::optional<std::string> staff_id_claim(const json& claims, const StaffRule& rule) {
  const json* value = find_claim(claims, rule.id_claim);
  if (value == nullptr) return std::nullopt;
  if (value->is_string()) {
    const auto& id = value->get_ref<const std::string&>();
    if (id.empty() || id.size() > kMaxStaffIdBytes) return std::nullopt;
    return id;
  }
  if (value->is_number_integer()) return value->dump();
  return std::nullopt;
}

}  // namespace attempts::auth
