// Unit tests for RequestHandler: what the header alone decides (routes, methods, ids,
// Content-Type, Idempotency-Key, authentication), what reaches the store for a complete
// request, and the response to a completed call. Version and keep-alive belong to the session.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/token_cache.hpp"
#include "attempts/http/export_format.hpp"
#include "attempts/http/request_handler.hpp"
#include "auth_test_support.hpp"

namespace attempts::http {
namespace {

using Clock = std::chrono::steady_clock;
using Field = beast_http::field;
using json = nlohmann::json;
using testing::HasSubstr;

std::int64_t fixed_clock() {
  return auth::test::kNow;
}

Request request(Verb method, std::string target, std::string body = {},
                std::optional<std::string> content_type = std::nullopt) {
  Request r;
  r.method = method;
  r.method_text = std::string(beast_http::to_string(method));
  r.target = std::move(target);
  r.body = std::move(body);
  if (content_type) {
    r.content_type = *content_type;
    r.content_type_count = 1;
  }
  return r;
}

Request patch(std::string target, std::string body,
              std::optional<std::string> content_type = "application/json") {
  return request(Verb::patch, std::move(target), std::move(body), std::move(content_type));
}

Request with_bearer(Request r, const std::string& token) {
  r.authorization = "Bearer " + token;
  ++r.authorization_count;
  return r;
}

json body_of(const Response& response) {
  return json::parse(response.body());
}

class RequestHandlerTest : public testing::Test {
 protected:
  // Authentication off unless a test turns it on.
  RequestHandler handler_{HandlerOptions{.metrics_text = [] { return std::string("m 1\n"); }}};
  const Clock::time_point deadline_ = Clock::now() + std::chrono::seconds(10);

  // judge_header, then begin: the response, or nullopt with `call_` filled.
  std::optional<Response> run(const RequestHandler& handler, const Request& r,
                              auth::TokenCache::Reader* tokens = nullptr) {
    verdict_ = handler.judge_header(r, tokens);
    call_.reset();
    return handler.begin(r, verdict_, deadline_, call_);
  }
  std::optional<Response> run(const Request& r) { return run(handler_, r); }

  HeaderVerdict verdict_;
  StoreCall call_;
};

// ---- routes the header alone refuses ----------------------------------------------------------

TEST_F(RequestHandlerTest, UnknownPathsAre404) {
  for (const char* target :
       {"/", "/attempt/1", "/attempts", "/attempts/1/", "/attempts/1/submit/", "/attempts/1/other",
        "/exams/1", "/exams/1/attempts/2", "/healthz/", "/HEALTHZ"}) {
    const auto response = run(request(Verb::get, target));
    ASSERT_TRUE(response) << target;
    EXPECT_EQ(response->result(), Status::not_found) << target;
    EXPECT_EQ(body_of(*response)["error"], "no such resource");
  }
}

TEST_F(RequestHandlerTest, OtherMethodsAre405WithTheirAllow) {
  const struct {
    Verb method;
    const char* target;
    const char* allow;
  } cases[] = {
      {Verb::delete_, "/attempts/1", "GET, HEAD, PATCH"},
      {Verb::post, "/attempts/1", "GET, HEAD, PATCH"},
      {Verb::put, "/attempts/1", "GET, HEAD, PATCH"},
      {Verb::get, "/attempts/1/submit", "POST"},
      {Verb::patch, "/attempts/1/submit", "POST"},
      {Verb::delete_, "/exams/1/attempts", "GET, HEAD, POST"},
      {Verb::post, "/healthz", "GET, HEAD"},
      {Verb::post, "/readyz", "GET, HEAD"},
      {Verb::delete_, "/metrics", "GET, HEAD"},
  };
  for (const auto& c : cases) {
    const auto response = run(request(c.method, c.target));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result(), Status::method_not_allowed) << c.target;
    EXPECT_EQ((*response)[Field::allow], c.allow) << c.target;
  }
}

TEST_F(RequestHandlerTest, MalformedIdsAre400) {
  for (const char* target : {"/attempts/0", "/attempts/-1", "/attempts/01", "/attempts/1x",
                             "/attempts/9223372036854775808", "/attempts/0/submit"}) {
    const auto response = run(request(Verb::get, target));
    if (std::string_view(target).ends_with("submit")) {
      const auto post = run(request(Verb::post, target));
      ASSERT_TRUE(post);
      EXPECT_EQ(post->result(), Status::bad_request) << target;
      continue;
    }
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result(), Status::bad_request) << target;
    EXPECT_THAT(body_of(*response)["error"].get<std::string>(), HasSubstr("attempt id"));
  }
  const auto exam = run(request(Verb::post, "/exams/abc/attempts"));
  ASSERT_TRUE(exam);
  EXPECT_EQ(exam->result(), Status::bad_request);
  EXPECT_THAT(body_of(*exam)["error"].get<std::string>(), HasSubstr("exam id"));
}

TEST_F(RequestHandlerTest, PatchNeedsOneJsonContentType) {
  for (const std::optional<std::string>& type :
       {std::optional<std::string>{}, std::optional<std::string>{"text/plain"},
        std::optional<std::string>{"application/json; charset=latin1"}}) {
    const auto response = run(patch("/attempts/1", R"({"answers":{}})", type));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result(), Status::unsupported_media_type);
  }
  auto twice = patch("/attempts/1", R"({"answers":{}})");
  ++twice.content_type_count;
  const auto response = run(twice);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::unsupported_media_type);
}

// ---- what reaches the store ------------------------------------------------------------------

TEST_F(RequestHandlerTest, AValidPatchBecomesASaveWithTheCompactAnswersAndTheRevision) {
  EXPECT_FALSE(run(patch("/attempts/42?x=1",
                         R"({"revision": 7, "answers": {"2": [1, -3], "1": []}, "x": null})")));
  EXPECT_EQ(call_.kind, StoreCall::Kind::save_answers);
  EXPECT_EQ(call_.attempt_id, 42);
  EXPECT_EQ(call_.answers_json, R"({"2":[1,-3],"1":[]})");
  EXPECT_EQ(call_.revision, 7);
  EXPECT_EQ(call_.student, std::nullopt);  // authentication off
  EXPECT_EQ(call_.deadline, deadline_);

  EXPECT_FALSE(run(patch("/attempts/42", R"({"answers": {}})")));
  EXPECT_EQ(call_.revision, std::nullopt);
}

TEST_F(RequestHandlerTest, AnInvalidPatchIs400AndReachesNoStore) {
  for (const char* body :
       {"", "{", "[]", R"({"answers": []})", R"({"answers": {"x": [1]}})",
        R"({"answers": {"1": [1.5]}})", R"({"answers": {}, "revision": 0})",
        R"({"answers": {}, "revision": -2})", R"({"answers": {}, "revision": "3"})",
        R"({"answers": {}, "revision": 1, "revision": 2})", R"({"answers": {}} x)"}) {
    const auto response = run(patch("/attempts/1", body));
    ASSERT_TRUE(response) << body;
    EXPECT_EQ(response->result(), Status::bad_request) << body;
    EXPECT_FALSE(body_of(*response)["error"].get<std::string>().empty());
  }
}

TEST_F(RequestHandlerTest, ReadsSubmitsStartsAndProbesBecomeTheirCalls) {
  EXPECT_FALSE(run(request(Verb::get, "/attempts/9")));
  EXPECT_EQ(call_.kind, StoreCall::Kind::load_attempt);
  EXPECT_EQ(call_.attempt_id, 9);
  EXPECT_FALSE(run(request(Verb::head, "/attempts/9")));
  EXPECT_EQ(call_.kind, StoreCall::Kind::load_attempt);
  EXPECT_FALSE(run(request(Verb::post, "/attempts/9/submit")));
  EXPECT_EQ(call_.kind, StoreCall::Kind::submit_attempt);
  EXPECT_EQ(call_.attempt_id, 9);

  auto start = request(Verb::post, "/exams/5/attempts", R"({"student_id": 12})");
  start.idempotency_key = "abc-123";
  start.idempotency_key_count = 1;
  EXPECT_FALSE(run(start));
  EXPECT_EQ(call_.kind, StoreCall::Kind::start_attempt);
  EXPECT_EQ(call_.exam_id, 5);
  EXPECT_EQ(call_.student, 12);
  EXPECT_EQ(call_.idempotency_key, "abc-123");

  const auto before = Clock::now();
  EXPECT_FALSE(run(request(Verb::get, "/readyz")));
  EXPECT_EQ(call_.kind, StoreCall::Kind::ping);
  // Its own short deadline, not the request's 10 s.
  EXPECT_LE(call_.deadline, Clock::now() + std::chrono::milliseconds(2000));
  EXPECT_GE(call_.deadline, before + std::chrono::milliseconds(2000));

  const auto health = run(request(Verb::get, "/healthz"));
  ASSERT_TRUE(health);
  EXPECT_EQ(health->result(), Status::ok);
  const auto metrics = run(request(Verb::get, "/metrics"));
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->body(), "m 1\n");
  EXPECT_THAT(std::string((*metrics)[Field::content_type]), HasSubstr("version=0.0.4"));
}

TEST_F(RequestHandlerTest, IdempotencyKeysAreOneHeaderOfVisibleAscii) {
  const auto start_with = [&](std::string key, unsigned count) {
    auto start = request(Verb::post, "/exams/5/attempts", R"({"student_id": 1})");
    start.idempotency_key = std::move(key);
    start.idempotency_key_count = count;
    return run(start);
  };
  EXPECT_FALSE(start_with(std::string(255, 'k'), 1));
  for (const auto& bad : {std::string(256, 'k'), std::string(""), std::string("a b"),
                          std::string("\x7f"), std::string("caf\xc3\xa9")}) {
    const auto response = start_with(bad, 1);
    ASSERT_TRUE(response) << bad;
    EXPECT_EQ(response->result(), Status::bad_request) << bad;
  }
  const auto twice = start_with("k", 2);
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->result(), Status::bad_request);
}

TEST_F(RequestHandlerTest, WithAuthenticationOffAStartNamesItsStudentInTheBody) {
  for (const char* body : {"", "{}", R"({"student_id": 0})", R"({"student_id": "3"})", "[]"}) {
    const auto response = run(request(Verb::post, "/exams/5/attempts", body));
    ASSERT_TRUE(response) << body;
    EXPECT_EQ(response->result(), Status::bad_request) << body;
  }
}

TEST_F(RequestHandlerTest, MetricsWithoutAPageAre404) {
  const RequestHandler without(HandlerOptions{});
  const auto response = run(without, request(Verb::get, "/metrics"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::not_found);
}

TEST_F(RequestHandlerTest, TheStoresOutcomeBecomesTheResponse) {
  StoreCall call;
  call.kind = StoreCall::Kind::save_answers;
  call.outcome = StoreOutcome::done;
  EXPECT_EQ(handler_.respond(call).result(), Status::no_content);
  call.outcome = StoreOutcome::unknown;
  EXPECT_EQ(handler_.respond(call).result(), Status::gateway_timeout);
  call.kind = StoreCall::Kind::ping;
  call.outcome = StoreOutcome::unavailable;
  const auto response = handler_.respond(call);
  EXPECT_EQ(response.result(), Status::service_unavailable);
  EXPECT_EQ(response[Field::retry_after], "1");
}

// ---- authentication --------------------------------------------------------------------------

// A token of student 5 that expired an hour ago.
std::string expired_token() {
  return auth::test::make_token(
      "test-hs256", json::object(),
      {{"sub", "5"}, {"iat", auth::test::kNow - 7200}, {"exp", auth::test::kNow - 3600}});
}

class AuthenticatedHandlerTest : public RequestHandlerTest {
 protected:
  auth::Authenticator authenticator_{std::make_shared<const auth::TokenVerifier>(
      auth::test::test_key_set(), auth::VerifierOptions{})};
  auth::TokenCache tokens_{{.capacity = 64}};
  RequestHandler handler_{HandlerOptions{.authenticator = &authenticator_, .clock = &fixed_clock}};

  std::optional<Response> run(const Request& r) {
    return RequestHandlerTest::run(handler_, r, &tokens_.reader());
  }
};

TEST_F(AuthenticatedHandlerTest, WithoutATokenEveryAttemptRouteIs401WithABareChallenge) {
  for (const auto& r :
       {request(Verb::get, "/attempts/1"), patch("/attempts/1", R"({"answers":{}})"),
        request(Verb::post, "/attempts/1/submit"), request(Verb::post, "/exams/1/attempts")}) {
    const auto response = run(r);
    ASSERT_TRUE(response) << r.target;
    EXPECT_EQ(response->result(), Status::unauthorized) << r.target;
    EXPECT_EQ((*response)[Field::www_authenticate], "Bearer");
    EXPECT_THAT(body_of(*response)["error"].get<std::string>(), HasSubstr("bearer token"));
  }
  EXPECT_EQ(authenticator_.rejections(auth::TokenError::missing), 4u);
}

TEST_F(AuthenticatedHandlerTest, ProbesUnknownPathsAndWrongMethodsNeedNoToken) {
  EXPECT_EQ(run(request(Verb::get, "/healthz"))->result(), Status::ok);
  EXPECT_FALSE(run(request(Verb::get, "/readyz")));
  EXPECT_EQ(run(request(Verb::get, "/nowhere"))->result(), Status::not_found);
  EXPECT_EQ(run(request(Verb::delete_, "/attempts/1"))->result(), Status::method_not_allowed);
  EXPECT_EQ(run(request(Verb::get, "/attempts/0"))->result(), Status::bad_request);
}

TEST_F(AuthenticatedHandlerTest, ABadTokenIs401InvalidTokenWithItsReason) {
  const auto expired = expired_token();
  const auto response = run(with_bearer(request(Verb::get, "/attempts/5"), expired));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::unauthorized);
  EXPECT_EQ((*response)[Field::www_authenticate],
            auth::www_authenticate(auth::TokenError::expired));
  EXPECT_THAT(std::string((*response)[Field::www_authenticate]),
              HasSubstr("error=\"invalid_token\""));
  EXPECT_THAT(body_of(*response)["error"].get<std::string>(), HasSubstr("invalid token"));
}

TEST_F(AuthenticatedHandlerTest, TwoAuthorizationHeadersAreRefused) {
  const auto token = auth::test::make_token("test-hs256");
  auto twice = with_bearer(with_bearer(request(Verb::get, "/attempts/5"), token), token);
  const auto response = run(twice);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::unauthorized);
}

TEST_F(AuthenticatedHandlerTest, AValidTokenNamesTheStudentOfEveryCall) {
  const auto token =
      auth::test::make_token("test-eddsa", json::object(), auth::test::claims_for(77));
  EXPECT_FALSE(run(with_bearer(patch("/attempts/3", R"({"answers":{}})"), token)));
  EXPECT_EQ(verdict_.student, 77);
  EXPECT_EQ(call_.student, 77);
  EXPECT_FALSE(run(with_bearer(request(Verb::get, "/attempts/3"), token)));
  EXPECT_EQ(call_.student, 77);
  // The token, not the body, says who starts an attempt.
  EXPECT_FALSE(
      run(with_bearer(request(Verb::post, "/exams/2/attempts", R"({"student_id": 1})"), token)));
  EXPECT_EQ(call_.student, 77);
  EXPECT_EQ(tokens_.hits(), 2u);
  EXPECT_EQ(tokens_.misses(), 1u);
}

TEST_F(AuthenticatedHandlerTest, WithoutACacheAuthenticationFailsClosed) {
  const auto token = auth::test::make_token("test-hs256");
  const auto response = RequestHandlerTest::run(
      handler_, with_bearer(request(Verb::get, "/attempts/5"), token), nullptr);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::unauthorized);
}

// ---- keys from an identity provider -------------------------------------------------------

class KeysFromAProviderTest : public RequestHandlerTest {
 protected:
  auth::Authenticator authenticator_;  // no keys yet: the first fetch has not succeeded
  auth::TokenCache tokens_{{.capacity = 64}};
  auth::KeySourceStatus keys_{.source = "https://id.example/jwks"};
  RequestHandler handler_{HandlerOptions{.authenticator = &authenticator_,
                                         .key_status = [this] { return keys_; },
                                         .clock = &fixed_clock}};

  std::optional<Response> run(const Request& r) {
    return RequestHandlerTest::run(handler_, r, &tokens_.reader());
  }
};

TEST_F(KeysFromAProviderTest, UntilTheKeysAreKnownATokenGets503AndNoTokenStill401) {
  const auto token = auth::test::make_token("test-hs256");
  for (const auto& r :
       {request(Verb::get, "/attempts/1"), patch("/attempts/1", R"({"answers":{}})"),
        request(Verb::post, "/attempts/1/submit"), request(Verb::post, "/exams/1/attempts")}) {
    const auto waiting = run(with_bearer(r, token));
    ASSERT_TRUE(waiting) << r.target;
    EXPECT_EQ(waiting->result(), Status::service_unavailable) << r.target;
    EXPECT_EQ((*waiting)[Field::retry_after], "1");
    EXPECT_THAT(body_of(*waiting)["error"].get<std::string>(), HasSubstr("signing keys"));
    const auto anonymous = run(r);
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->result(), Status::unauthorized) << r.target;
  }
  // Two Authorization headers are malformed whatever the keys.
  const auto twice = run(with_bearer(with_bearer(request(Verb::get, "/attempts/1"), token), token));
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->result(), Status::unauthorized);
  // Nothing was judged: no token was counted as refused.
  EXPECT_EQ(authenticator_.rejections(auth::TokenError::unknown_key), 0u);
}

TEST_F(KeysFromAProviderTest, ReadinessWaitsForTheKeysThenShowsTheirAge) {
  keys_.last_error = "JWKS: connect to id.example: Connection refused";
  const auto waiting = run(request(Verb::get, "/readyz"));
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->result(), Status::service_unavailable);
  EXPECT_THAT(body_of(*waiting)["error"].get<std::string>(), HasSubstr("Connection refused"));

  authenticator_.replace(std::make_shared<const auth::TokenVerifier>(auth::test::test_key_set(),
                                                                     auth::VerifierOptions{}));
  keys_.keys_known = true;
  keys_.keys = 4;
  keys_.fetched_at = auth::test::kNow - 90;
  EXPECT_FALSE(run(request(Verb::get, "/readyz")));  // the database is asked next
  call_.outcome = StoreOutcome::done;
  const auto ready = handler_.respond(call_);
  EXPECT_EQ(ready.result(), Status::ok);
  const auto body = body_of(ready);
  EXPECT_EQ(body["status"], "ready");
  EXPECT_EQ(body["keys"]["source"], "https://id.example/jwks");
  EXPECT_EQ(body["keys"]["count"], 4);
  EXPECT_EQ(body["keys"]["age_seconds"], 90);
  EXPECT_EQ(body["keys"]["last_fetch"], keys_.last_error);
  // The database away: 503 as always, keys or not.
  call_.outcome = StoreOutcome::unavailable;
  EXPECT_EQ(handler_.respond(call_).result(), Status::service_unavailable);
}

TEST_F(KeysFromAProviderTest, OnceTheKeysArriveTokensAreJudged) {
  authenticator_.replace(std::make_shared<const auth::TokenVerifier>(auth::test::test_key_set(),
                                                                     auth::VerifierOptions{}));
  const auto token =
      auth::test::make_token("test-rs256", json::object(), auth::test::claims_for(12));
  EXPECT_FALSE(run(with_bearer(request(Verb::get, "/attempts/3"), token)));
  EXPECT_EQ(call_.student, 12);
}

TEST_F(KeysFromAProviderTest, WhileNewKeysAreFetchedA401SaysWhenToTryAgain) {
  authenticator_.replace(std::make_shared<const auth::TokenVerifier>(auth::test::test_key_set(),
                                                                     auth::VerifierOptions{}));
  authenticator_.on_key_miss([](auth::TokenError) { return std::chrono::seconds(4); });
  const auto rotated = auth::test::make_token("test-hs256", {{"kid", "rotated-in"}});
  const auto response = run(with_bearer(patch("/attempts/3", R"({"answers":{}})"), rotated));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::unauthorized);
  EXPECT_EQ((*response)[Field::retry_after], "4");
  EXPECT_EQ((*response)[Field::www_authenticate],
            auth::www_authenticate(auth::TokenError::unknown_key));
  // A refusal no new key can change says nothing of retrying.
  const auto expired = expired_token();
  const auto refused = run(with_bearer(request(Verb::get, "/attempts/5"), expired));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->result(), Status::unauthorized);
  EXPECT_EQ(refused->count(Field::retry_after), 0u);
}

}  // namespace
}  // namespace attempts::http

namespace attempts::http {
namespace {

// ---- staff ------------------------------------------------------------------------------------

class StaffHandlerTest : public RequestHandlerTest {
 protected:
  static auth::VerifierOptions staff_options() {
    auth::VerifierOptions options;
    options.staff = {"roles", "teacher", "sub"};
    return options;
  }
  auth::Authenticator authenticator_{
      std::make_shared<const auth::TokenVerifier>(auth::test::test_key_set(), staff_options())};
  auth::TokenCache tokens_{{.capacity = 64}};
  RequestHandler handler_{HandlerOptions{.authenticator = &authenticator_, .clock = &fixed_clock}};
  const std::string teacher_ = auth::test::make_token("test-hs256", json::object(),
                                                      {{"sub", "t-1"},
                                                       {"roles", {"teacher"}},
                                                       {"iat", auth::test::kNow},
                                                       {"exp", auth::test::kExpiry}});
  const std::string student_ = auth::test::make_token("test-hs256");

  std::optional<Response> run(const Request& r) {
    return RequestHandlerTest::run(handler_, r, &tokens_.reader());
  }
  std::optional<Response> begin_export(const Request& r, ExportCall& call, Response& head) {
    verdict_ = handler_.judge_header(r, &tokens_.reader());
    return handler_.begin_export(r, verdict_, deadline_, call, head);
  }
};

TEST_F(StaffHandlerTest, StaffNeverWriteAnswers) {
  for (const auto& r :
       {patch("/attempts/1", R"({"answers":{}})"), request(Verb::post, "/attempts/1/submit"),
        request(Verb::post, "/exams/1/attempts")}) {
    const auto response = run(with_bearer(r, teacher_));
    ASSERT_TRUE(response) << r.target;
    EXPECT_EQ(response->result(), Status::forbidden) << r.target;
  }
}

TEST_F(StaffHandlerTest, StaffReadsGoToTheStaffStoreWithTheirId) {
  EXPECT_FALSE(run(with_bearer(request(Verb::get, "/attempts/3"), teacher_)));
  EXPECT_EQ(call_.staff_id, "t-1");
  EXPECT_FALSE(call_.student);
  EXPECT_FALSE(run(with_bearer(request(Verb::get, "/attempts/3/history?limit=5"), teacher_)));
  EXPECT_EQ(call_.kind, StoreCall::Kind::load_history);
  EXPECT_EQ(call_.staff_id, "t-1");
  // A student's read stays theirs, on the write pool.
  EXPECT_FALSE(run(with_bearer(request(Verb::get, "/attempts/3"), student_)));
  EXPECT_FALSE(call_.staff_id);
  EXPECT_EQ(call_.student, 42);
}

TEST_F(StaffHandlerTest, AStudentOnTheExportIs403AndStaffGetTheirCall) {
  const auto refused = run(with_bearer(request(Verb::get, "/exams/7/attempts"), student_));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->result(), Status::forbidden);
  EXPECT_EQ(run(request(Verb::get, "/exams/7/attempts"))->result(), Status::unauthorized);

  ExportCall call;
  Response head;
  Request csv = with_bearer(request(Verb::get, "/exams/7/attempts?submitted=false"), teacher_);
  csv.accept = "text/csv";
  EXPECT_FALSE(begin_export(csv, call, head));
  EXPECT_EQ(call.exam_id, 7);
  EXPECT_EQ(call.staff_id, "t-1");
  EXPECT_EQ(call.filter.submitted, false);
  EXPECT_EQ(call.encoder, &export_encoder(ExportFormat::csv));
  EXPECT_EQ(head.result(), Status::ok);
  EXPECT_EQ(head[Field::content_type], "text/csv; charset=utf-8; header=present");
  EXPECT_EQ(head[Field::content_disposition], "attachment; filename=\"exam-7-attempts.csv\"");

  Request json_only = with_bearer(request(Verb::get, "/exams/7/attempts"), teacher_);
  json_only.accept = "application/json";
  const auto not_acceptable = begin_export(json_only, call, head);
  ASSERT_TRUE(not_acceptable);
  EXPECT_EQ(not_acceptable->result(), Status::not_acceptable);
  const auto bad_query =
      begin_export(with_bearer(request(Verb::get, "/exams/7/attempts?x=1"), teacher_), call, head);
  ASSERT_TRUE(bad_query);
  EXPECT_EQ(bad_query->result(), Status::bad_request);
}

TEST_F(StaffHandlerTest, RefusedExportsAre404Or429Or503) {
  ExportCall call;
  call.exam_id = 9;
  call.outcome = ExportOutcome::not_found;
  EXPECT_EQ(handler_.refuse_export(call).result(), Status::not_found);
  call.outcome = ExportOutcome::busy;
  EXPECT_EQ(handler_.refuse_export(call).result(), Status::too_many_requests);
  EXPECT_EQ(handler_.refuse_export(call)[Field::retry_after], "1");
  call.outcome = ExportOutcome::unavailable;
  EXPECT_EQ(handler_.refuse_export(call).result(), Status::service_unavailable);
  EXPECT_EQ(handler_.refuse_export(call)[Field::retry_after], "1");
}

}  // namespace
}  // namespace attempts::http
