#pragma once

// What the identity provider tests share (test_identity_provider.cpp, test_key_rotation.cpp,
// test_key_source_rules.cpp): the service told only where the provider is, and the requests
// and waits they make of it. Header-only.

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/oidc_provider.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/tokens.hpp"
#include "token/token_tools.hpp"

namespace attempts::integration {

// Seeded attempts 60001..60050 belong to students 1..50 (owner_of), the provider's clients.
inline std::int64_t attempt_of(int student) {
  return 60000 + student;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline std::string fetches_sample(const std::string& result) {
  return "attempts_auth_jwks_fetches_total{result=\"" + result + "\"}";
}

// A token as the provider would issue it (iss = `issuer`, aud = urn:attempts, the numeric
// claim student_id), signed by a key of the test's own, which it publishes with
// OidcProvider::serve_jwks; without a kid in its header when `kid` is false.
inline std::string provider_style_token(const auth::tools::SigningKey& key,
                                        const std::string& issuer, int student, bool kid = true) {
  const auto now = unix_now();
  return auth::tools::sign_token(key,
                                 kid ? nlohmann::json::object() : nlohmann::json{{"kid", nullptr}},
                                 {{"iss", issuer},
                                  {"aud", "urn:attempts"},
                                  {"student_id", student},
                                  {"iat", now},
                                  {"exp", now + 600}});
}

class IdentityProviderTest : public testing::Test {
 protected:
  using json = nlohmann::json;
  using milliseconds = std::chrono::milliseconds;
  using seconds = std::chrono::seconds;
  using Clock = std::chrono::steady_clock;

  void SetUp() override { db_.reset_attempts(attempt_of(1), attempt_of(50)); }

  // The service told only where the provider is (and which claim and audience its tokens
  // carry): the keys are discovered.
  static ServerSettings service_for(const std::string& issuer, std::vector<std::string> more = {}) {
    std::vector<std::string> flags = {
        "--auth",         "jwt",          "--jwt-issuer",        issuer,
        "--jwt-audience", "urn:attempts", "--jwt-student-claim", "student_id"};
    flags.insert(flags.end(), more.begin(), more.end());
    return ServerSettings::with_flags(flags);
  }

  static HttpResponse readyz(const ServerProcess& server) {
    return HttpClient(server.port()).request(get_request("/readyz"));
  }

  // /readyz once it answers 200 (the first fetch has succeeded), within `within`.
  static json wait_until_ready(const ServerProcess& server, milliseconds within = seconds(30)) {
    const auto response = when_status(server.port(), get_request("/readyz"), 200, within);
    EXPECT_EQ(response.status, 200) << response;
    return response.status == 200 ? json::parse(response.body) : json::object();
  }

  // Waits until the sample reaches `at_least` (bounded); returns its last value.
  static double wait_for_metric(const ServerProcess& server, const std::string& sample,
                                double at_least, milliseconds within = seconds(30)) {
    const auto deadline = Clock::now() + within;
    double value = metric(server.port(), sample);
    while (value < at_least && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(50));
      value = metric(server.port(), sample);
    }
    return value;
  }

  static HttpResponse save(const ServerProcess& server, int student, const std::string& token,
                           const std::string& answers) {
    return HttpClient(server.port())
        .request(with_token(
            patch_request(attempt_target(attempt_of(student)), answers_body(answers)), token));
  }

  // Sends the save every 20 ms until it is not 401 (bounded); the last response.
  static HttpResponse save_until_accepted(const ServerProcess& server, int student,
                                          const std::string& token, const std::string& answers,
                                          milliseconds within = seconds(30)) {
    const auto deadline = Clock::now() + within;
    auto response = save(server, student, token, answers);
    while (response.status == 401 && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
      response = save(server, student, token, answers);
    }
    return response;
  }

  Database db_;
};

}  // namespace attempts::integration
