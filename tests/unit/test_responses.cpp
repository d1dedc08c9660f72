// The bytes the server writes for a response, and the store outcome -> status mapping.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "attempts/http/responses.hpp"

namespace attempts::http {
namespace {

using Kind = StoreCall::Kind;
using Field = beast_http::field;
constexpr auto kRetry = std::chrono::seconds(1);

Response prepared(Response response, unsigned version, bool keep_alive) {
  response.version(version);
  response.keep_alive(keep_alive);
  response.prepare_payload();
  return response;
}

std::string serialized(const Response& response, bool omit_body = false) {
  std::string out = "previous|";  // appended to, never overwritten
  serialize_response(response, omit_body, out);
  EXPECT_EQ(out.substr(0, 9), "previous|");
  return out.substr(9);
}

StoreCall completed(Kind kind, StoreOutcome outcome) {
  StoreCall call;
  call.kind = kind;
  call.attempt_id = 42;
  call.exam_id = 7;
  call.outcome = outcome;
  call.record.id = 42;
  call.record.exam_id = 7;
  call.record.student_id = 3;
  call.record.answers_json = R"({"1": [2]})";
  call.record.revision = 5;
  call.record.started_at = "2026-01-01T10:00:00+00:00";
  return call;
}

nlohmann::json body_of(const Response& response) {
  return nlohmann::json::parse(response.body());
}

TEST(SerializeResponseTest, NoContentIsStatusLineAndBlankLine) {
  Response response = no_content_response();
  response.keep_alive(true);
  EXPECT_EQ(serialized(response), "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST(SerializeResponseTest, JsonErrorCarriesHeadersAndBody) {
  const Response response = prepared(error_response(Status::not_found, "gone"), 11, true);
  EXPECT_EQ(serialized(response),
            "HTTP/1.1 404 Not Found\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 16\r\n"
            "\r\n"
            R"({"error":"gone"})");
}

TEST(SerializeResponseTest, HeadKeepsContentLengthButOmitsBody) {
  const Response response = prepared(json_response(Status::ok, R"({"status":"ok"})"), 11, true);
  EXPECT_EQ(serialized(response, true),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n");
}

TEST(SerializeResponseTest, Http10KeepAliveAndCloseAreExplicit) {
  EXPECT_EQ(serialized(prepared(json_response(Status::ok, "{}"), 10, true)),
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            "Content-Length: 2\r\n\r\n{}");
  EXPECT_EQ(serialized(prepared(json_response(Status::ok, "{}"), 11, false)),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            "Content-Length: 2\r\n\r\n{}");
}

TEST(SerializeResponseTest, RetryAfterAndAllowHeadersAreWritten) {
  const std::string unavailable =
      serialized(prepared(unavailable_response("down", std::chrono::seconds(3)), 11, true));
  EXPECT_NE(unavailable.find("HTTP/1.1 503 Service Unavailable\r\n"), std::string::npos);
  EXPECT_NE(unavailable.find("\r\nRetry-After: 3\r\n"), std::string::npos);
  const std::string not_allowed =
      serialized(prepared(method_not_allowed_response("GET, HEAD"), 11, true));
  EXPECT_NE(not_allowed.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
}

TEST(AttemptJsonTest, EveryFieldWithNullsForWhatIsNotSet) {
  const auto call = completed(Kind::load_attempt, StoreOutcome::done);
  EXPECT_EQ(nlohmann::json::parse(attempt_json(call.record)),
            nlohmann::json::parse(R"({"id":42,"exam_id":7,"student_id":3,"answers":{"1":[2]},
              "revision":5,"started_at":"2026-01-01T10:00:00+00:00","deadline":null,
              "updated_at":null,"submitted_at":null})"));
}

TEST(StoreResponseTest, SaveOutcomes) {
  EXPECT_EQ(store_response(completed(Kind::save_answers, StoreOutcome::done), kRetry).result(),
            Status::no_content);
  const auto missing =
      store_response(completed(Kind::save_answers, StoreOutcome::not_found), kRetry);
  EXPECT_EQ(missing.result(), Status::not_found);
  EXPECT_EQ(body_of(missing)["error"], "attempt 42 not found");

  auto submitted = completed(Kind::save_answers, StoreOutcome::submitted);
  submitted.record.submitted_at = "2026-01-01T11:00:00+00:00";
  const auto conflict = store_response(submitted, kRetry);
  EXPECT_EQ(conflict.result(), Status::conflict);
  EXPECT_EQ(body_of(conflict)["submitted_at"], "2026-01-01T11:00:00+00:00");

  auto late = completed(Kind::save_answers, StoreOutcome::deadline_passed);
  late.record.deadline = "2026-01-01T10:30:00+00:00";
  const auto past = store_response(late, kRetry);
  EXPECT_EQ(past.result(), Status::conflict);
  EXPECT_EQ(body_of(past)["deadline"], "2026-01-01T10:30:00+00:00");
  EXPECT_NE(body_of(past)["error"].get<std::string>().find("2026-01-01T10:30:00+00:00"),
            std::string::npos);

  auto stale = completed(Kind::save_answers, StoreOutcome::stale_revision);
  stale.revision = 4;
  stale.record.revision = 9;
  const auto old = store_response(stale, kRetry);
  EXPECT_EQ(old.result(), Status::conflict);
  EXPECT_EQ(body_of(old)["revision"], 9);
  EXPECT_EQ(body_of(old)["error"],
            "revision 4 is not newer than the stored revision 9; nothing changed");
}

TEST(StoreResponseTest, AnUnknownOutcomeIsA504ThatSaysSo) {
  for (const auto kind : {Kind::save_answers, Kind::submit_attempt, Kind::start_attempt}) {
    const auto response = store_response(completed(kind, StoreOutcome::unknown), kRetry);
    EXPECT_EQ(response.result(), Status::gateway_timeout);
    EXPECT_EQ(response[Field::retry_after], "1");
    EXPECT_EQ(body_of(response)["outcome"], "unknown");
    EXPECT_NE(body_of(response)["error"].get<std::string>().find("may or may not"),
              std::string::npos);
  }
}

TEST(StoreResponseTest, UnavailableAndOverloadedAre503WithRetryAfterAndNeverClaimUnknown) {
  for (const auto kind : {Kind::save_answers, Kind::load_attempt, Kind::submit_attempt,
                          Kind::start_attempt, Kind::ping}) {
    for (const auto outcome : {StoreOutcome::unavailable, StoreOutcome::overloaded}) {
      const auto response = store_response(completed(kind, outcome), kRetry);
      EXPECT_EQ(response.result(), Status::service_unavailable);
      EXPECT_EQ(response[Field::retry_after], "1");
      EXPECT_FALSE(body_of(response).contains("outcome"));
    }
  }
  EXPECT_NE(body_of(store_response(completed(Kind::save_answers, StoreOutcome::unavailable),
                                   kRetry))["error"]
                .get<std::string>()
                .find("nothing was saved"),
            std::string::npos);
}

TEST(StoreResponseTest, ReadsAndSubmitsReturnTheAttempt) {
  for (const auto kind : {Kind::load_attempt, Kind::submit_attempt}) {
    const auto found = store_response(completed(kind, StoreOutcome::done), kRetry);
    EXPECT_EQ(found.result(), Status::ok);
    EXPECT_EQ(body_of(found)["id"], 42);
    EXPECT_EQ(found[Field::cache_control], "no-store") << "a student's answers, for them alone";
    const auto missing = store_response(completed(kind, StoreOutcome::not_found), kRetry);
    EXPECT_EQ(missing.result(), Status::not_found);
  }
}

TEST(StoreResponseTest, StartCreatesWithLocationAndMarksReplays) {
  const auto created = store_response(completed(Kind::start_attempt, StoreOutcome::done), kRetry);
  EXPECT_EQ(created.result(), Status::created);
  EXPECT_EQ(created[Field::location], "/attempts/42");
  EXPECT_EQ(created.count("Idempotent-Replayed"), 0u);
  EXPECT_EQ(created[Field::cache_control], "no-store");
  const auto replayed =
      store_response(completed(Kind::start_attempt, StoreOutcome::replayed), kRetry);
  EXPECT_EQ(replayed.result(), Status::created);
  EXPECT_EQ(replayed[Field::location], "/attempts/42");
  EXPECT_EQ(replayed["Idempotent-Replayed"], "true");
  EXPECT_EQ(replayed.body(), created.body());
  const auto no_exam =
      store_response(completed(Kind::start_attempt, StoreOutcome::not_found), kRetry);
  EXPECT_EQ(no_exam.result(), Status::not_found);
  EXPECT_EQ(body_of(no_exam)["error"], "exam 7 not found");
  EXPECT_EQ(
      store_response(completed(Kind::start_attempt, StoreOutcome::key_reused), kRetry).result(),
      Status::unprocessable_entity);
}

TEST(StoreResponseTest, ReadinessIsOkOnlyWhenThePingWasAnswered) {
  EXPECT_EQ(store_response(completed(Kind::ping, StoreOutcome::done), kRetry).result(), Status::ok);
  EXPECT_EQ(store_response(completed(Kind::ping, StoreOutcome::unavailable), kRetry).result(),
            Status::service_unavailable);
}

TEST(StoreResponseTest, ReadinessNamesWhatIsDegradedAndStaysOk) {
  const auto plain = store_response(completed(Kind::ping, StoreOutcome::done), kRetry);
  EXPECT_FALSE(body_of(plain).contains("degraded"));
  auto call = completed(Kind::ping, StoreOutcome::done);
  call.degraded = "Citus nodes unreachable: 10.0.0.2:5432";
  const auto degraded = store_response(call, kRetry);
  EXPECT_EQ(degraded.result(), Status::ok);
  EXPECT_EQ(body_of(degraded)["status"], "ready");
  EXPECT_EQ(body_of(degraded)["degraded"], "Citus nodes unreachable: 10.0.0.2:5432");
}

}  // namespace
}  // namespace attempts::http
