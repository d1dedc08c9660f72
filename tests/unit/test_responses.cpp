// The bytes the server writes for a response, and the outcome -> status mapping.
#include "attempts/http/responses.hpp"

#include <gtest/gtest.h>

namespace attempts::http {
namespace {

Response prepared(Response response, unsigned version, bool keep_alive) {
  response.version(version);
  response.keep_alive(keep_alive);
  response.prepare_payload();
  return response;
}

TEST(SerializeResponseTest, NoContentIsStatusLineAndBlankLine) {
  Response response = prepared(no_content_response(), 11, true);
  response.erase(beast_http::field::content_length);
  EXPECT_EQ(serialize_response(response, false), "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST(SerializeResponseTest, JsonErrorCarriesHeadersAndBody) {
  const Response response = prepared(error_response(Status::not_found, "gone"), 11, true);
  EXPECT_EQ(serialize_response(response, false),
            "HTTP/1.1 404 Not Found\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 16\r\n"
            "\r\n"
            R"({"error":"gone"})");
}

TEST(SerializeResponseTest, HeadKeepsContentLengthButOmitsBody) {
  const Response response = prepared(json_response(Status::ok, R"({"status":"ok"})"), 11, true);
  EXPECT_EQ(serialize_response(response, true),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n");
}

TEST(SerializeResponseTest, Http10KeepAliveAndCloseAreExplicit) {
  EXPECT_EQ(serialize_response(prepared(json_response(Status::ok, "{}"), 10, true), false),
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            "Content-Length: 2\r\n\r\n{}");
  EXPECT_EQ(serialize_response(prepared(json_response(Status::ok, "{}"), 11, false), false),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            "Content-Length: 2\r\n\r\n{}");
}

TEST(SerializeResponseTest, RetryAfterAndAllowHeadersAreWritten) {
  const std::string unavailable = serialize_response(
      prepared(unavailable_response("down", std::chrono::seconds(3)), 11, true), false);
  EXPECT_NE(unavailable.find("HTTP/1.1 503 Service Unavailable\r\n"), std::string::npos);
  EXPECT_NE(unavailable.find("\r\nRetry-After: 3\r\n"), std::string::npos);
  const std::string not_allowed =
      serialize_response(prepared(method_not_allowed_response("GET, HEAD"), 11, true), false);
  EXPECT_NE(not_allowed.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
}

TEST(SaveOutcomeResponseTest, EveryOutcomeHasItsStatus) {
  const auto retry = std::chrono::seconds(1);
  EXPECT_EQ(save_outcome_response(SaveOutcome::saved, 1, retry).result(), Status::no_content);
  EXPECT_EQ(save_outcome_response(SaveOutcome::not_found, 1, retry).result(), Status::not_found);
  EXPECT_EQ(save_outcome_response(SaveOutcome::already_submitted, 1, retry).result(),
            Status::conflict);
  for (const auto outcome : {SaveOutcome::unavailable, SaveOutcome::overloaded}) {
    const Response response = save_outcome_response(outcome, 1, retry);
    EXPECT_EQ(response.result(), Status::service_unavailable);
    EXPECT_EQ(response[beast_http::field::retry_after], "1");
  }
}

}  // namespace
}  // namespace attempts::http
