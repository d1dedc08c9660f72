#pragma once

// Checks the integration tests share. Header-only.

#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "support/http_client.hpp"
#include "support/postgres.hpp"

namespace attempts::integration {

// A seeded attempt that nobody has written: what every rejected request must leave behind.
inline AttemptRow pristine_row() {
  return AttemptRow{"{}", std::nullopt, std::nullopt};
}

// `status` with a JSON body {"error": "<non-empty text>"}.
inline ::testing::AssertionResult IsJsonError(const HttpResponse& response, int status) {
  if (response.status != status) {
    return ::testing::AssertionFailure() << "expected status " << status << ", got " << response;
  }
  const auto content_type = response.header("content-type");
  if (!content_type || content_type->rfind("application/json", 0) != 0) {
    return ::testing::AssertionFailure() << "expected a JSON content type, got " << response;
  }
  const auto body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("error") || !body["error"].is_string() ||
      body["error"].get<std::string>().empty()) {
    return ::testing::AssertionFailure()
           << "expected a body {\"error\": \"...\"}, got " << response;
  }
  return ::testing::AssertionSuccess();
}

// 503 with a Retry-After header and a JSON error body.
inline ::testing::AssertionResult IsUnavailable(const HttpResponse& response) {
  auto result = IsJsonError(response, 503);
  if (!result) return result;
  if (!response.header("retry-after")) {
    return ::testing::AssertionFailure() << "503 without Retry-After: " << response;
  }
  return ::testing::AssertionSuccess();
}

// A 504 that says the write's outcome is unknown (sent, reply lost or late), with Retry-After.
inline ::testing::AssertionResult IsUnknownOutcome(const HttpResponse& response) {
  auto result = IsJsonError(response, 504);
  if (!result) return result;
  if (!response.header("retry-after")) {
    return ::testing::AssertionFailure() << "504 without Retry-After: " << response;
  }
  if (response.body.find("\"outcome\":\"unknown\"") == std::string::npos) {
    return ::testing::AssertionFailure() << "504 that does not say the outcome is unknown: "
                                         << response;
  }
  return ::testing::AssertionSuccess();
}

// The stored answers equal `answers_json` (compared as jsonb).
inline ::testing::AssertionResult StoredAnswersAre(const Database& db, std::int64_t id,
                                                   const std::string& answers_json) {
  if (db.answers_equal(id, answers_json)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "attempt " << id << " holds " << db.answers_text(id) << ", expected " << answers_json;
}

}  // namespace attempts::integration
