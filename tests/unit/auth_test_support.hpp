#pragma once

// Keys, tokens and printers shared by the auth unit tests. The keys are the fixed, published
// ones of tools/token/insecure_test_keys.cpp, so tests need no key generation.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/base64url.hpp"
#include "attempts/auth/jwks.hpp"
#include "attempts/auth/token_verifier.hpp"
#include "token/insecure_test_keys.hpp"
#include "token/token_tools.hpp"

namespace attempts::auth {

// gtest prints enums as numbers; names make failures readable.
inline void PrintTo(TokenError error, std::ostream* out) {
  *out << name(error);
}
inline void PrintTo(const AuthFailure& failure, std::ostream* out) {
  *out << name(failure.reason);
}
inline void PrintTo(const VerifiedToken& token, std::ostream* out) {
  *out << "{student_id " << token.student_id << ", expires_at " << token.expires_at << "}";
}

namespace test {

using json = nlohmann::json;

// The clock of most tests; the test tokens are issued at it and expire an hour later.
inline constexpr std::int64_t kNow = 1'700'000'000;
inline constexpr std::int64_t kExpiry = kNow + 3600;

inline const tools::SigningKeys& signing_keys() {
  static const tools::SigningKeys keys =
      tools::signing_keys_from_jwks(json::parse(tools::insecure_test_private_jwks()));
  return keys;
}

inline const tools::SigningKey& signing_key(std::string_view kid) {
  const auto found = signing_keys().find(kid);
  if (found == signing_keys().end()) throw std::invalid_argument("no test key " + std::string(kid));
  return found->second;
}

// The public JWK of one test key, as the server's JWKS has it.
inline json public_jwk(std::string_view kid) {
  const json jwks = json::parse(tools::insecure_test_private_jwks());
  for (const auto& jwk : jwks["keys"]) {
    if (jwk["kid"] == kid) return tools::public_jwk(jwk);
  }
  throw std::invalid_argument("no test key " + std::string(kid));
}

inline json jwks_of(std::initializer_list<json> keys) {
  json jwks = {{"keys", json::array()}};
  for (const json& key : keys) jwks["keys"].push_back(key);
  return jwks;
}

inline std::shared_ptr<const KeySet> key_set_of(const json& jwks) {
  auto result = KeySet::parse(jwks.dump(), KeyOrigin::file);
  if (const auto* error = std::get_if<KeySetError>(&result)) {
    throw std::runtime_error(error->message);
  }
  return std::make_shared<const KeySet>(std::move(std::get<LoadedKeySet>(result).key_set));
}

// The four test keys, public halves.
inline std::shared_ptr<const KeySet> test_key_set() {
  static const auto keys =
      key_set_of(jwks_of({public_jwk("test-hs256"), public_jwk("test-rs256"),
                          public_jwk("test-es256"), public_jwk("test-eddsa")}));
  return keys;
}

inline json claims_for(std::int64_t student_id) {
  return {{"sub", std::to_string(student_id)}, {"iat", kNow}, {"exp", kExpiry}};
}

// A token signed with a test key; see tools::sign_token for how `header` is merged.
inline std::string make_token(std::string_view kid, const json& header = json::object(),
                              const json& claims = claims_for(42)) {
  return tools::sign_token(signing_key(kid), header, claims);
}

// A token over raw header and payload bytes, which need not be JSON.
inline std::string raw_token(const tools::SigningKey& key, std::string_view header,
                             std::string_view payload) {
  const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  return input + "." + base64url_encode(tools::sign(key, input));
}

}  // namespace test
}  // namespace attempts::auth
