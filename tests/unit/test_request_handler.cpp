// Unit tests for RequestHandler against an in-memory AttemptStore: statuses, bodies, headers, and
// what reaches the store. Version and keep-alive belong to the session and are not checked here.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/request_handler.hpp"

namespace attempts::http {
namespace {

using namespace std::string_view_literals;
using testing::HasSubstr;
using Field = beast_http::field;

// An AttemptStore in a std::map. Callbacks run synchronously, unless `deferred` is set: then they
// wait in `pending` until the test runs them (as a store thread would, after handle() returned).
class FakeStore : public AttemptStore {
 public:
  enum class Mode { working, unavailable, overloaded };

  struct Attempt {
    std::int64_t exam_id = 1;
    std::string answers_json = "{}";
    std::optional<std::string> updated_at;
    std::optional<std::string> submitted_at;
  };

  void save_answers(AttemptId id, std::string answers_json, SaveCallback done) override {
    saves.emplace_back(id, answers_json);
    run([this, id, answers_json = std::move(answers_json), done = std::move(done)] {
      if (mode == Mode::unavailable) return done(SaveOutcome::unavailable);
      if (mode == Mode::overloaded) return done(SaveOutcome::overloaded);
      const auto found = attempts.find(id);
      if (found == attempts.end()) return done(SaveOutcome::not_found);
      if (submitted.count(id)) return done(SaveOutcome::already_submitted);
      found->second.answers_json = answers_json;
      found->second.updated_at = "2024-06-01T12:00:00Z";
      done(SaveOutcome::saved);
    });
  }

  void load_attempt(AttemptId id, LoadCallback done) override {
    ++loads;
    run([this, id, done = std::move(done)] {
      LoadResult result;
      if (mode == Mode::unavailable) return done(result);
      if (mode == Mode::overloaded) {
        result.outcome = LoadOutcome::overloaded;
        return done(result);
      }
      const auto found = attempts.find(id);
      if (found == attempts.end()) {
        result.outcome = LoadOutcome::not_found;
        return done(result);
      }
      result.outcome = LoadOutcome::found;
      result.record = {id, found->second.exam_id, found->second.answers_json,
                       found->second.updated_at, found->second.submitted_at};
      if (submitted.count(id)) result.record.submitted_at = "2024-06-01T13:00:00Z";
      done(result);
    });
  }

  void check_ready(ReadyCallback done) override {
    ++readiness_checks;
    run([this, done = std::move(done)] { done(mode == Mode::working && ready); });
  }

  void run_pending() {
    auto work = std::move(pending);
    pending.clear();
    for (auto& job : work) job();
  }

  std::map<AttemptId, Attempt> attempts;
  std::set<AttemptId> submitted;
  Mode mode = Mode::working;
  bool ready = true;
  bool deferred = false;

  std::vector<std::pair<AttemptId, std::string>> saves;  // every save_answers call
  int loads = 0;
  int readiness_checks = 0;
  std::vector<std::function<void()>> pending;

 private:
  void run(std::function<void()> job) {
    if (deferred) {
      pending.push_back(std::move(job));
    } else {
      job();
    }
  }
};

Request make_request(Verb method, std::string_view target, std::string body = {},
                     std::optional<std::string_view> content_type = std::nullopt) {
  Request request{method, target, 11};
  if (content_type) request.set(Field::content_type, *content_type);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

Request patch(std::string_view target, std::string body,
              std::optional<std::string_view> content_type = "application/json") {
  return make_request(Verb::patch, target, std::move(body), content_type);
}

Request get(std::string_view target) {
  return make_request(Verb::get, target);
}

constexpr std::string_view kAnswers = R"({"answers": {"2": [3, 1], "10": []}})";
constexpr std::string_view kCanonicalAnswers = R"({"2":[3,1],"10":[]})";
constexpr std::string_view kStoredAnswers = R"({"1": [1]})";

class RequestHandlerTest : public testing::Test {
 protected:
  RequestHandlerTest() {
    store_.attempts[1] = {};
    store_.attempts[2] = {7, std::string(kStoredAnswers), "2024-05-01T10:00:00Z", std::nullopt};
    store_.attempts[3] = {7, std::string(kStoredAnswers), "2024-05-01T10:00:00Z", std::nullopt};
    store_.submitted.insert(3);
  }

  // The one response the handler gives; records a failure if it gives none or several.
  Response handle(Request request, const RequestHandler* handler = nullptr) {
    std::vector<Response> responses;
    (handler ? *handler : handler_).handle(std::move(request), [&responses](Response response) {
      responses.push_back(std::move(response));
    });
    EXPECT_EQ(responses.size(), 1u) << "respond must be called exactly once";
    return responses.empty() ? Response{} : std::move(responses.front());
  }

  // Checks the body is `{"error": "<non-empty message>"}` and returns the message.
  static std::string error_message(const Response& response) {
    EXPECT_EQ(response[Field::content_type], "application/json");
    const auto body = nlohmann::json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("error") || !body["error"].is_string()) {
      ADD_FAILURE() << "not an error document: " << response.body();
      return {};
    }
    EXPECT_EQ(body.size(), 1u) << response.body();
    const auto message = body["error"].get<std::string>();
    EXPECT_FALSE(message.empty());
    return message;
  }

  const std::string& stored_answers(AttemptId id) { return store_.attempts.at(id).answers_json; }

  FakeStore store_;
  RequestHandler handler_{store_, HandlerOptions{}};
};

// --- PATCH /attempts/{id} ---------------------------------------------------------------------

TEST_F(RequestHandlerTest, PatchReturns204AndStoresTheCanonicalJson) {
  const Response response = handle(patch("/attempts/1", std::string(kAnswers)));
  EXPECT_EQ(response.result(), Status::no_content);
  EXPECT_TRUE(response.body().empty());
  ASSERT_EQ(store_.saves.size(), 1u);
  EXPECT_EQ(store_.saves[0].first, 1);
  EXPECT_EQ(store_.saves[0].second, kCanonicalAnswers);
  EXPECT_EQ(stored_answers(1), kCanonicalAnswers);
}

TEST_F(RequestHandlerTest, PatchWithEmptyAnswersIsSaved) {
  EXPECT_EQ(handle(patch("/attempts/2", R"({"answers": {}})")).result(), Status::no_content);
  EXPECT_EQ(stored_answers(2), "{}");
}

TEST_F(RequestHandlerTest, PatchAcceptsCharsetParameter) {
  const Response response =
      handle(patch("/attempts/1", std::string(kAnswers), "Application/JSON; charset=\"UTF-8\""));
  EXPECT_EQ(response.result(), Status::no_content);
  EXPECT_EQ(stored_answers(1), kCanonicalAnswers);
}

TEST_F(RequestHandlerTest, PatchIgnoresTheQueryString) {
  EXPECT_EQ(handle(patch("/attempts/1?x=1", std::string(kAnswers))).result(), Status::no_content);
  EXPECT_EQ(stored_answers(1), kCanonicalAnswers);
}

TEST_F(RequestHandlerTest, PatchOfAHugeFlatDocumentIsSaved) {
  std::string body = R"({"answers": {)";
  for (int question = 1; question <= 5000; ++question) {
    body += (question > 1 ? ",\"" : "\"") + std::to_string(question) + "\": [1, 2]";
  }
  body += "}}";
  EXPECT_EQ(handle(patch("/attempts/1", body)).result(), Status::no_content);
  EXPECT_EQ(nlohmann::json::parse(stored_answers(1)).size(), 5000u);
}

TEST_F(RequestHandlerTest, PatchUnknownAttemptIs404) {
  const Response response = handle(patch("/attempts/999", std::string(kAnswers)));
  EXPECT_EQ(response.result(), Status::not_found);
  EXPECT_THAT(error_message(response), HasSubstr("999"));
  EXPECT_EQ(store_.attempts.count(999), 0u);
}

TEST_F(RequestHandlerTest, PatchSubmittedAttemptIs409AndChangesNothing) {
  const Response response = handle(patch("/attempts/3", std::string(kAnswers)));
  EXPECT_EQ(response.result(), Status::conflict);
  EXPECT_THAT(error_message(response), HasSubstr("submitted"));
  EXPECT_EQ(stored_answers(3), kStoredAnswers);
}

TEST_F(RequestHandlerTest, PatchWhileStoreUnavailableIs503WithRetryAfter) {
  store_.mode = FakeStore::Mode::unavailable;
  const Response response = handle(patch("/attempts/2", std::string(kAnswers)));
  EXPECT_EQ(response.result(), Status::service_unavailable);
  EXPECT_EQ(response[Field::retry_after], "1");
  error_message(response);
  EXPECT_EQ(stored_answers(2), kStoredAnswers);
}

TEST_F(RequestHandlerTest, PatchWhileStoreOverloadedIs503WithRetryAfter) {
  store_.mode = FakeStore::Mode::overloaded;
  const Response response = handle(patch("/attempts/2", std::string(kAnswers)));
  EXPECT_EQ(response.result(), Status::service_unavailable);
  EXPECT_EQ(response[Field::retry_after], "1");
  error_message(response);
  EXPECT_EQ(stored_answers(2), kStoredAnswers);
}

TEST_F(RequestHandlerTest, RetryAfterComesFromTheOptions) {
  store_.mode = FakeStore::Mode::unavailable;
  const RequestHandler handler(store_, HandlerOptions{{}, std::chrono::seconds(7)});
  EXPECT_EQ(handle(patch("/attempts/1", std::string(kAnswers)), &handler)[Field::retry_after], "7");
  EXPECT_EQ(handle(get("/attempts/1"), &handler)[Field::retry_after], "7");
  EXPECT_EQ(handle(get("/readyz"), &handler)[Field::retry_after], "7");
}

class PatchBadIdTest : public RequestHandlerTest,
                       public testing::WithParamInterface<std::string_view> {};

TEST_P(PatchBadIdTest, Is400AndNeverReachesTheStore) {
  const Response response =
      handle(patch(std::string("/attempts/") + std::string(GetParam()), std::string(kAnswers)));
  EXPECT_EQ(response.result(), Status::bad_request);
  EXPECT_THAT(error_message(response), HasSubstr("attempt id"));
  EXPECT_TRUE(store_.saves.empty());
}

INSTANTIATE_TEST_SUITE_P(Ids, PatchBadIdTest,
                         testing::Values("", "0", "01", "-1", "+1", "abc", "1a", "1.0",
                                         "9223372036854775808", "99999999999999999999"));

struct BadBodyCase {
  const char* name;
  std::string_view body;
  std::string_view message_part;
};

void PrintTo(const BadBodyCase& test_case, std::ostream* out) {
  *out << test_case.name;
}

class PatchBadBodyTest : public RequestHandlerTest,
                         public testing::WithParamInterface<BadBodyCase> {};

TEST_P(PatchBadBodyTest, Is400WithTheValidatorMessageAndNeverReachesTheStore) {
  const Response response = handle(patch("/attempts/2", std::string(GetParam().body)));
  EXPECT_EQ(response.result(), Status::bad_request);
  EXPECT_THAT(error_message(response), HasSubstr(std::string(GetParam().message_part)));
  EXPECT_TRUE(store_.saves.empty());
  EXPECT_EQ(stored_answers(2), kStoredAnswers);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, PatchBadBodyTest,
    testing::Values(
        BadBodyCase{"Empty", "", "malformed JSON"},
        BadBodyCase{"Truncated", R"({"answers": {"1": [1)", "malformed JSON"},
        BadBodyCase{"TrailingGarbage", R"({"answers": {}} x)", "malformed JSON"},
        BadBodyCase{"NulThenTrailingGarbage", "{\"answers\": {}}\0garbage"sv, "malformed JSON"},
        BadBodyCase{"InvalidUtf8", "{\"x\": \"\xff\", \"answers\": {}}", "malformed JSON"},
        BadBodyCase{"NotAnObject", "[1]", "must be a JSON object"},
        BadBodyCase{"MissingAnswers", R"({"answer": {}})", "answers"},
        BadBodyCase{"AnswersArray", R"({"answers": []})", "\"answers\" must be an object"},
        BadBodyCase{"BadQuestionId", R"({"answers": {"0": []}})", "question id \"0\""},
        BadBodyCase{"DuplicateQuestion", R"({"answers": {"1": [], "1": []}})", "more than once"},
        BadBodyCase{"ValueNotArray", R"({"answers": {"1": 1}})", "must be an array"},
        BadBodyCase{"FloatOption", R"({"answers": {"1": [1.5]}})", "must be integers"},
        BadBodyCase{"HugeOption", R"({"answers": {"1": [9223372036854775808]}})", "64-bit range"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST_F(RequestHandlerTest, DeeplyNestedBodyIs400) {
  const Response response =
      handle(patch("/attempts/2", R"({"x":)" + std::string(100000, '[') + "}"));
  EXPECT_EQ(response.result(), Status::bad_request);
  EXPECT_THAT(error_message(response), HasSubstr("nesting"));
  EXPECT_TRUE(store_.saves.empty());
}

TEST_F(RequestHandlerTest, AnswersLimitsComeFromTheOptions) {
  const RequestHandler handler(store_, HandlerOptions{AnswersLimits{2}, std::chrono::seconds(1)});
  const Response response = handle(patch("/attempts/2", R"({"answers": {"1": []}})"), &handler);
  EXPECT_EQ(response.result(), Status::bad_request);
  EXPECT_TRUE(store_.saves.empty());
}

TEST_F(RequestHandlerTest, ErrorBodyStaysValidJsonWhenTheMessageQuotesBrokenUtf8) {
  // The validator shows the first 32 bytes of a bad question id, which cuts this 'é' in half.
  const std::string id = std::string(31, 'a') + "\xc3\xa9";
  const Response response = handle(patch("/attempts/2", R"({"answers": {")" + id + R"(": []}})"));
  EXPECT_EQ(response.result(), Status::bad_request);
  EXPECT_THAT(error_message(response), HasSubstr(std::string(31, 'a')));
}

class PatchContentTypeTest : public RequestHandlerTest,
                             public testing::WithParamInterface<std::optional<std::string_view>> {};

TEST_P(PatchContentTypeTest, Is415AndNeverReachesTheStore) {
  const Response response = handle(patch("/attempts/2", std::string(kAnswers), GetParam()));
  EXPECT_EQ(response.result(), Status::unsupported_media_type);
  EXPECT_THAT(error_message(response), HasSubstr("Content-Type"));
  EXPECT_TRUE(store_.saves.empty());
  EXPECT_EQ(stored_answers(2), kStoredAnswers);
}

INSTANTIATE_TEST_SUITE_P(
    ContentTypes, PatchContentTypeTest,
    testing::Values(std::nullopt, std::optional<std::string_view>(""),
                    std::optional<std::string_view>("text/plain"),
                    std::optional<std::string_view>("application/jsonx"),
                    std::optional<std::string_view>("application/json-patch+json"),
                    std::optional<std::string_view>("application/x-www-form-urlencoded"),
                    std::optional<std::string_view>("application/json; charset=latin1")));

TEST_F(RequestHandlerTest, ContentTypeIsCheckedBeforeTheBody) {
  EXPECT_EQ(handle(patch("/attempts/2", "not json", "text/plain")).result(),
            Status::unsupported_media_type);
}

TEST_F(RequestHandlerTest, AttemptIdIsCheckedBeforeTheContentType) {
  EXPECT_EQ(handle(patch("/attempts/abc", std::string(kAnswers), "text/plain")).result(),
            Status::bad_request);
}

TEST_F(RequestHandlerTest, DeferredSaveRespondsOnlyWhenTheStoreCompletes) {
  store_.deferred = true;
  std::vector<Response> responses;
  {
    Request request = patch("/attempts/1", std::string(kAnswers));
    handler_.handle(std::move(request),
                    [&responses](Response response) { responses.push_back(std::move(response)); });
  }  // the request is gone before the store answers
  EXPECT_TRUE(responses.empty());
  store_.run_pending();
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].result(), Status::no_content);
  EXPECT_EQ(stored_answers(1), kCanonicalAnswers);
}

TEST_F(RequestHandlerTest, DeferredLoadRespondsOnlyWhenTheStoreCompletes) {
  store_.deferred = true;
  std::vector<Response> responses;
  handler_.handle(get("/attempts/2"),
                  [&responses](Response response) { responses.push_back(std::move(response)); });
  EXPECT_TRUE(responses.empty());
  store_.run_pending();
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].result(), Status::ok);
}

// --- Methods and paths ------------------------------------------------------------------------

TEST_F(RequestHandlerTest, OtherMethodOnAttemptIs405WithAllow) {
  for (const Verb method : {Verb::post, Verb::put, Verb::delete_, Verb::options}) {
    const Response response = handle(make_request(method, "/attempts/1", "{}", "application/json"));
    EXPECT_EQ(response.result(), Status::method_not_allowed) << method;
    EXPECT_EQ(response[Field::allow], "GET, HEAD, PATCH") << method;
    error_message(response);
  }
  EXPECT_TRUE(store_.saves.empty());
  EXPECT_EQ(store_.loads, 0);
}

TEST_F(RequestHandlerTest, OtherMethodOnProbesIs405WithAllow) {
  for (const std::string_view path : {"/healthz", "/readyz"}) {
    const Response response = handle(make_request(Verb::post, path));
    EXPECT_EQ(response.result(), Status::method_not_allowed) << path;
    EXPECT_EQ(response[Field::allow], "GET, HEAD") << path;
    error_message(response);
  }
  EXPECT_EQ(store_.readiness_checks, 0);
}

TEST_F(RequestHandlerTest, UnknownPathIs404) {
  for (const std::string_view path : {"/", "/attempts", "/attempts/1/x", "/healthz/x"}) {
    const Response response = handle(make_request(Verb::get, path));
    EXPECT_EQ(response.result(), Status::not_found) << path;
    error_message(response);
  }
  EXPECT_EQ(store_.loads, 0);
}

TEST_F(RequestHandlerTest, UnknownPathIs404ForPatchToo) {
  const Response response = handle(patch("/attempt/1", std::string(kAnswers)));
  EXPECT_EQ(response.result(), Status::not_found);
  EXPECT_TRUE(store_.saves.empty());
}

// --- GET /attempts/{id} -----------------------------------------------------------------------

TEST_F(RequestHandlerTest, GetReturnsTheAttemptAsJson) {
  const Response response = handle(get("/attempts/2"));
  ASSERT_EQ(response.result(), Status::ok);
  EXPECT_EQ(response[Field::content_type], "application/json");
  const auto body = nlohmann::json::parse(response.body());
  EXPECT_EQ(body["id"], 2);
  EXPECT_EQ(body["exam_id"], 7);
  EXPECT_EQ(body["answers"], nlohmann::json::parse(kStoredAnswers));
  EXPECT_EQ(body["updated_at"], "2024-05-01T10:00:00Z");
  EXPECT_TRUE(body["submitted_at"].is_null());
  EXPECT_EQ(body.size(), 5u);
}

TEST_F(RequestHandlerTest, GetOfANeverUpdatedAttemptHasNullTimestamps) {
  const auto body = nlohmann::json::parse(handle(get("/attempts/1")).body());
  EXPECT_EQ(body["answers"], nlohmann::json::object());
  ASSERT_TRUE(body.contains("updated_at"));
  EXPECT_TRUE(body["updated_at"].is_null());
  ASSERT_TRUE(body.contains("submitted_at"));
  EXPECT_TRUE(body["submitted_at"].is_null());
}

TEST_F(RequestHandlerTest, GetOfASubmittedAttemptShowsSubmittedAt) {
  const auto body = nlohmann::json::parse(handle(get("/attempts/3")).body());
  EXPECT_EQ(body["submitted_at"], "2024-06-01T13:00:00Z");
}

TEST_F(RequestHandlerTest, GetAfterPatchReadsTheSavedAnswers) {
  ASSERT_EQ(handle(patch("/attempts/1", std::string(kAnswers))).result(), Status::no_content);
  const auto body = nlohmann::json::parse(handle(get("/attempts/1")).body());
  EXPECT_EQ(body["answers"], nlohmann::json::parse(kCanonicalAnswers));
  EXPECT_TRUE(body["updated_at"].is_string());
}

TEST_F(RequestHandlerTest, HeadIsAnsweredLikeGet) {
  const Response response = handle(make_request(Verb::head, "/attempts/2"));
  EXPECT_EQ(response.result(), Status::ok);
  EXPECT_EQ(response[Field::content_type], "application/json");
}

TEST_F(RequestHandlerTest, GetUnknownAttemptIs404) {
  const Response response = handle(get("/attempts/999"));
  EXPECT_EQ(response.result(), Status::not_found);
  EXPECT_THAT(error_message(response), HasSubstr("999"));
}

TEST_F(RequestHandlerTest, GetBadIdIs400WithoutLoading) {
  const Response response = handle(get("/attempts/0"));
  EXPECT_EQ(response.result(), Status::bad_request);
  error_message(response);
  EXPECT_EQ(store_.loads, 0);
}

TEST_F(RequestHandlerTest, GetWhileStoreUnavailableIs503WithRetryAfter) {
  store_.mode = FakeStore::Mode::unavailable;
  const Response response = handle(get("/attempts/2"));
  EXPECT_EQ(response.result(), Status::service_unavailable);
  EXPECT_EQ(response[Field::retry_after], "1");
  error_message(response);
}

TEST_F(RequestHandlerTest, GetWhileStoreOverloadedIs503WithRetryAfter) {
  store_.mode = FakeStore::Mode::overloaded;
  const Response response = handle(get("/attempts/2"));
  EXPECT_EQ(response.result(), Status::service_unavailable);
  EXPECT_EQ(response[Field::retry_after], "1");
  error_message(response);
}

// --- Probes -----------------------------------------------------------------------------------

TEST_F(RequestHandlerTest, HealthzIs200WithoutAskingTheStore) {
  store_.mode = FakeStore::Mode::unavailable;
  const Response response = handle(get("/healthz"));
  EXPECT_EQ(response.result(), Status::ok);
  EXPECT_EQ(response[Field::content_type], "application/json");
  EXPECT_EQ(nlohmann::json::parse(response.body())["status"], "ok");
  EXPECT_EQ(store_.readiness_checks, 0);
}

TEST_F(RequestHandlerTest, HeadHealthzIs200) {
  EXPECT_EQ(handle(make_request(Verb::head, "/healthz")).result(), Status::ok);
}

TEST_F(RequestHandlerTest, ReadyzIs200WhenTheStoreIsReady) {
  const Response response = handle(get("/readyz"));
  EXPECT_EQ(response.result(), Status::ok);
  EXPECT_EQ(nlohmann::json::parse(response.body())["status"], "ready");
  EXPECT_EQ(store_.readiness_checks, 1);
}

TEST_F(RequestHandlerTest, ReadyzIs503WithRetryAfterWhenTheStoreIsNotReady) {
  store_.ready = false;
  const Response response = handle(get("/readyz"));
  EXPECT_EQ(response.result(), Status::service_unavailable);
  EXPECT_EQ(response[Field::retry_after], "1");
  EXPECT_THAT(error_message(response), HasSubstr("database"));
}

// --- Every error is {"error": "..."} -------------------------------------------------------------

struct ErrorCase {
  const char* name;
  std::function<Request()> request;
  FakeStore::Mode mode;
  Status status;
};

void PrintTo(const ErrorCase& test_case, std::ostream* out) {
  *out << test_case.name;
}

class ErrorBodyTest : public RequestHandlerTest, public testing::WithParamInterface<ErrorCase> {};

TEST_P(ErrorBodyTest, IsAJsonObjectWithANonEmptyErrorMessage) {
  store_.mode = GetParam().mode;
  const Response response = handle(GetParam().request());
  EXPECT_EQ(response.result(), GetParam().status);
  EXPECT_FALSE(error_message(response).empty());
}

using Mode = FakeStore::Mode;

INSTANTIATE_TEST_SUITE_P(
    Errors, ErrorBodyTest,
    testing::Values(
        ErrorCase{"BadId", [] { return patch("/attempts/x", "{}"); }, Mode::working,
                  Status::bad_request},
        ErrorCase{"BadJson", [] { return patch("/attempts/1", "{"); }, Mode::working,
                  Status::bad_request},
        ErrorCase{"WrongShape", [] { return patch("/attempts/1", "{\"answers\": 1}"); },
                  Mode::working, Status::bad_request},
        ErrorCase{"UnsupportedMediaType", [] { return patch("/attempts/1", "{}", "text/plain"); },
                  Mode::working, Status::unsupported_media_type},
        ErrorCase{"MethodNotAllowed", [] { return make_request(Verb::delete_, "/attempts/1"); },
                  Mode::working, Status::method_not_allowed},
        ErrorCase{"UnknownPath", [] { return get("/nope"); }, Mode::working, Status::not_found},
        ErrorCase{"PatchNotFound", [] { return patch("/attempts/999", std::string(kAnswers)); },
                  Mode::working, Status::not_found},
        ErrorCase{"PatchSubmitted", [] { return patch("/attempts/3", std::string(kAnswers)); },
                  Mode::working, Status::conflict},
        ErrorCase{"PatchUnavailable", [] { return patch("/attempts/1", std::string(kAnswers)); },
                  Mode::unavailable, Status::service_unavailable},
        ErrorCase{"PatchOverloaded", [] { return patch("/attempts/1", std::string(kAnswers)); },
                  Mode::overloaded, Status::service_unavailable},
        ErrorCase{"GetNotFound", [] { return get("/attempts/999"); }, Mode::working,
                  Status::not_found},
        ErrorCase{"GetUnavailable", [] { return get("/attempts/1"); }, Mode::unavailable,
                  Status::service_unavailable},
        ErrorCase{"GetOverloaded", [] { return get("/attempts/1"); }, Mode::overloaded,
                  Status::service_unavailable},
        ErrorCase{"ReadyzUnavailable", [] { return get("/readyz"); }, Mode::unavailable,
                  Status::service_unavailable}),
    [](const auto& test) { return std::string(test.param.name); });

// --- reject_early: the header alone
// ---------------------------------------------------------------

RequestHeader header(Verb method, std::string_view target,
                     std::optional<std::string_view> content_type = std::nullopt) {
  RequestHeader result;
  result.method(method);
  result.target(target);
  result.version(11);
  if (content_type) result.set(Field::content_type, *content_type);
  return result;
}

TEST_F(RequestHandlerTest, RejectEarlyAcceptsAJsonPatchToAValidId) {
  EXPECT_FALSE(handler_.reject_early(header(Verb::patch, "/attempts/1", "application/json")));
  EXPECT_FALSE(
      handler_.reject_early(header(Verb::patch, "/attempts/1", "application/json; charset=utf-8")));
}

TEST_F(RequestHandlerTest, RejectEarlyAcceptsReads) {
  EXPECT_FALSE(handler_.reject_early(header(Verb::get, "/attempts/1")));
  EXPECT_FALSE(handler_.reject_early(header(Verb::head, "/attempts/1")));
  EXPECT_FALSE(handler_.reject_early(header(Verb::get, "/healthz")));
  EXPECT_FALSE(handler_.reject_early(header(Verb::get, "/readyz")));
}

TEST_F(RequestHandlerTest, RejectEarlyRefusesAWrongContentType) {
  const auto response = handler_.reject_early(header(Verb::patch, "/attempts/1", "text/plain"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::unsupported_media_type);
  error_message(*response);
}

TEST_F(RequestHandlerTest, RejectEarlyRefusesAMissingContentType) {
  const auto response = handler_.reject_early(header(Verb::patch, "/attempts/1"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::unsupported_media_type);
}

TEST_F(RequestHandlerTest, RejectEarlyRefusesABadId) {
  const auto response =
      handler_.reject_early(header(Verb::patch, "/attempts/0", "application/json"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::bad_request);
  error_message(*response);
}

TEST_F(RequestHandlerTest, RejectEarlyRefusesAnUnknownPath) {
  const auto response = handler_.reject_early(header(Verb::patch, "/nope", "application/json"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::not_found);
}

TEST_F(RequestHandlerTest, RejectEarlyRefusesAnOtherMethodWithAllow) {
  const auto response = handler_.reject_early(header(Verb::put, "/attempts/1", "application/json"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), Status::method_not_allowed);
  EXPECT_EQ((*response)[Field::allow], "GET, HEAD, PATCH");
}

TEST_F(RequestHandlerTest, RejectEarlyNeverCallsTheStore) {
  handler_.reject_early(header(Verb::patch, "/attempts/1", "application/json"));
  handler_.reject_early(header(Verb::get, "/attempts/1"));
  handler_.reject_early(header(Verb::get, "/readyz"));
  EXPECT_TRUE(store_.saves.empty());
  EXPECT_EQ(store_.loads, 0);
  EXPECT_EQ(store_.readiness_checks, 0);
}

}  // namespace
}  // namespace attempts::http
