#pragma once

// Keys and bearer tokens for integration tests of authentication: the fixed test keys of
// tools/token/insecure_test_keys.cpp (kids test-hs256, test-rs256, test-es256, test-eddsa),
// written to a JWKS file the server reads, and tokens signed with them.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "support/http_client.hpp"
#include "support/subprocess.hpp"

namespace attempts::integration {

// Seconds since the Unix epoch, as the server's clock reads it.
std::int64_t unix_now();

// A JWKS file with the public halves of the chosen test keys. Rewrite it, then SIGHUP the
// server, to rotate keys.
class TestJwks {
 public:
  explicit TestJwks(std::initializer_list<std::string_view> kids = {"test-hs256", "test-rs256",
                                                                    "test-es256", "test-eddsa"});
  const std::string& path() const { return path_; }
  void write(std::initializer_list<std::string_view> kids);
  void write_raw(const std::string& text);

 private:
  TempDir dir_;
  std::string path_;
};

// A token for `student` signed by test key `kid`, valid for an hour from now; `claims` adds or
// overrides claims (a null value removes one), `header` the JWS header's members.
std::string token_for(std::int64_t student, std::string_view kid = "test-hs256",
                      const nlohmann::json& claims = nlohmann::json::object(),
                      const nlohmann::json& header = nlohmann::json::object());

// `request` with `Authorization: Bearer <token>`.
HttpRequest with_token(HttpRequest request, const std::string& token);

// The owner of seeded attempt `id` (sql/seed.sql: student 1 + (id - 1) % 20000).
inline std::int64_t owner_of(std::int64_t id) {
  return 1 + (id - 1) % 20000;
}

}  // namespace attempts::integration
