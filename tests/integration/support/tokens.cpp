#include "support/tokens.hpp"

#include <fstream>
#include <stdexcept>

#include "token/insecure_test_keys.hpp"
#include "token/token_tools.hpp"

namespace attempts::integration {
namespace {

namespace tools = attempts::auth::tools;
using json = nlohmann::json;

const json& private_jwks() {
  static const json keys = json::parse(tools::insecure_test_private_jwks());
  return keys;
}

const tools::SigningKeys& signing_keys() {
  static const tools::SigningKeys keys = tools::signing_keys_from_jwks(private_jwks());
  return keys;
}

}  // namespace

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TestJwks::TestJwks(std::initializer_list<std::string_view> kids)
    : dir_("attempts-jwks"), path_(dir_.file("jwks.json")) {
  write(kids);
}

void TestJwks::write(std::initializer_list<std::string_view> kids) {
  json jwks = {{"keys", json::array()}};
  for (const auto kid : kids) {
    bool found = false;
    for (const auto& jwk : private_jwks()["keys"]) {
      if (jwk["kid"] != kid) continue;
      jwks["keys"].push_back(tools::public_jwk(jwk));
      found = true;
    }
    if (!found) throw std::invalid_argument("no test key " + std::string(kid));
  }
  write_raw(jwks.dump(2));
}

void TestJwks::write_raw(const std::string& text) {
  // Written next to the file and renamed over it, so the server never reads half a file.
  const std::string temporary = path_ + ".new";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
  }
  std::rename(temporary.c_str(), path_.c_str());
}

std::string token_for(std::int64_t student, std::string_view kid, const json& claims,
                      const json& header) {
  const auto key = signing_keys().find(kid);
  if (key == signing_keys().end()) throw std::invalid_argument("no test key " + std::string(kid));
  const std::int64_t now = unix_now();
  json all = {{"sub", std::to_string(student)}, {"iat", now}, {"exp", now + 3600}};
  for (const auto& [name, value] : claims.items()) {
    if (value.is_null()) {
      all.erase(name);
    } else {
      all[name] = value;
    }
  }
  return tools::sign_token(key->second, header, all);
}

HttpRequest with_token(HttpRequest request, const std::string& token) {
  request.headers.emplace_back("Authorization", "Bearer " + token);
  return request;
}

}  // namespace attempts::integration
