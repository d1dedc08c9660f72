// Unit tests for routing (method + target -> endpoint) and the Content-Type check.

#include <gtest/gtest.h>

#include <cctype>
#include <limits>
#include <string>
#include <string_view>

#include "attempts/http/router.hpp"

namespace attempts::http {
namespace {

constexpr std::string_view kAttemptAllow = "GET, HEAD, PATCH";
constexpr std::string_view kProbeAllow = "GET, HEAD";

// "DELETE" -> "DELETE", "<unknown>" -> "unknown": test names allow only letters, digits, '_'.
std::string test_name(Verb method) {
  std::string name;
  for (const char c : beast_http::to_string(method)) {
    if (std::isalnum(static_cast<unsigned char>(c))) name += c;
  }
  return name;
}

// --- Endpoints that are served ---------------------------------------------------------------

TEST(RouterTest, PatchAttemptSavesAnswers) {
  const RouteMatch match = match_route(Verb::patch, "/attempts/42");
  EXPECT_EQ(match.route, Route::save_answers);
  EXPECT_EQ(match.attempt_id, 42);
  EXPECT_TRUE(match.allow.empty());
}

TEST(RouterTest, GetAttemptReadsIt) {
  const RouteMatch match = match_route(Verb::get, "/attempts/7");
  EXPECT_EQ(match.route, Route::get_attempt);
  EXPECT_EQ(match.attempt_id, 7);
}

TEST(RouterTest, HeadAttemptReadsIt) {
  const RouteMatch match = match_route(Verb::head, "/attempts/7");
  EXPECT_EQ(match.route, Route::get_attempt);
  EXPECT_EQ(match.attempt_id, 7);
}

TEST(RouterTest, PostSubmitSubmitsTheAttempt) {
  const RouteMatch match = match_route(Verb::post, "/attempts/42/submit");
  EXPECT_EQ(match.route, Route::submit_attempt);
  EXPECT_EQ(match.attempt_id, 42);
  const RouteMatch other = match_route(Verb::get, "/attempts/42/submit");
  EXPECT_EQ(other.route, Route::method_not_allowed);
  EXPECT_EQ(other.allow, "POST");
  EXPECT_EQ(match_route(Verb::post, "/attempts/042/submit").route, Route::bad_attempt_id);
  EXPECT_EQ(match_route(Verb::post, "/attempts/42/submit/").route, Route::not_found);
  EXPECT_EQ(match_route(Verb::post, "/attempts/42/submitted").route, Route::not_found);
}

TEST(RouterTest, PostExamAttemptsStartsOneAndGetExportsThem) {
  const RouteMatch match = match_route(Verb::post, "/exams/7/attempts?x=1");
  EXPECT_EQ(match.route, Route::start_attempt);
  EXPECT_EQ(match.exam_id, 7);
  const RouteMatch export_match = match_route(Verb::get, "/exams/7/attempts?submitted=true");
  EXPECT_EQ(export_match.route, Route::export_attempts);
  EXPECT_EQ(export_match.exam_id, 7);
  EXPECT_EQ(match_route(Verb::head, "/exams/7/attempts").route, Route::export_attempts);
  EXPECT_EQ(match_route(Verb::get, "/exams/0/attempts").route, Route::bad_exam_id);
  EXPECT_EQ(match_route(Verb::delete_, "/exams/7/attempts").route, Route::method_not_allowed);
  EXPECT_EQ(match_route(Verb::put, "/exams/7/attempts").allow, "GET, HEAD, POST");
  EXPECT_EQ(match_route(Verb::post, "/exams/0/attempts").route, Route::bad_exam_id);
  EXPECT_EQ(match_route(Verb::post, "/exams/x/attempts").route, Route::bad_exam_id);
  EXPECT_EQ(match_route(Verb::post, "/exams/7").route, Route::not_found);
  EXPECT_EQ(match_route(Verb::post, "/exams/7/attempts/1").route, Route::not_found);
}

TEST(RouterTest, EveryPathTheRouterKnowsIsListedWithItsMethods) {
  // kPaths is what docs/openapi.yaml is checked against; each entry must route as listed.
  for (const auto& path : kPaths) {
    std::string target(path.path);
    for (const char* placeholder : {"{id}", "{exam_id}"}) {
      if (const auto at = target.find(placeholder); at != std::string::npos) {
        // A new string, appended to: GCC 12 warns of an overlapping copy (-Wrestrict, a false
        // positive) in std::string::replace.
        std::string replaced = target.substr(0, at);
        replaced.append("5").append(target, at + std::string_view(placeholder).size());
        target = std::move(replaced);
      }
    }
    EXPECT_NE(match_route(Verb::get, target).route, Route::not_found) << path.path;
    EXPECT_EQ(match_route(Verb::options, target).allow, path.methods) << path.path;
  }
}

TEST(RouterTest, LargestAttemptIdIsRouted) {
  const RouteMatch match = match_route(Verb::patch, "/attempts/9223372036854775807");
  EXPECT_EQ(match.route, Route::save_answers);
  EXPECT_EQ(match.attempt_id, std::numeric_limits<AttemptId>::max());
}

TEST(RouterTest, GetAndHeadHealthz) {
  EXPECT_EQ(match_route(Verb::get, "/healthz").route, Route::health);
  EXPECT_EQ(match_route(Verb::head, "/healthz").route, Route::health);
}

TEST(RouterTest, GetAndHeadReadyz) {
  EXPECT_EQ(match_route(Verb::get, "/readyz").route, Route::readiness);
  EXPECT_EQ(match_route(Verb::head, "/readyz").route, Route::readiness);
}

TEST(RouterTest, QueryStringIsIgnored) {
  const RouteMatch patch = match_route(Verb::patch, "/attempts/5?debug=1&x=y");
  EXPECT_EQ(patch.route, Route::save_answers);
  EXPECT_EQ(patch.attempt_id, 5);
  EXPECT_EQ(match_route(Verb::get, "/attempts/5?").route, Route::get_attempt);
  EXPECT_EQ(match_route(Verb::get, "/healthz?verbose").route, Route::health);
  EXPECT_EQ(match_route(Verb::get, "/readyz?x=1").route, Route::readiness);
}

TEST(RouterTest, SlashesInTheQueryStringDoNotAffectThePath) {
  const RouteMatch match = match_route(Verb::patch, "/attempts/5?next=/attempts/6/x");
  EXPECT_EQ(match.route, Route::save_answers);
  EXPECT_EQ(match.attempt_id, 5);
}

TEST(RouterTest, QueryStringDoesNotHideABadId) {
  EXPECT_EQ(match_route(Verb::patch, "/attempts/0?x=1").route, Route::bad_attempt_id);
}

// --- 405 with the right Allow ---------------------------------------------------------------

class AttemptMethodNotAllowedTest : public testing::TestWithParam<Verb> {};

TEST_P(AttemptMethodNotAllowedTest, AllowsGetHeadPatch) {
  const RouteMatch match = match_route(GetParam(), "/attempts/1");
  EXPECT_EQ(match.route, Route::method_not_allowed);
  EXPECT_EQ(match.allow, kAttemptAllow);
}

INSTANTIATE_TEST_SUITE_P(OtherMethods, AttemptMethodNotAllowedTest,
                         testing::Values(Verb::post, Verb::put, Verb::delete_, Verb::options,
                                         Verb::trace, Verb::connect, Verb::purge, Verb::unknown),
                         [](const auto& test) { return test_name(test.param); });

class ProbeMethodNotAllowedTest
    : public testing::TestWithParam<std::tuple<std::string_view, Verb>> {};

TEST_P(ProbeMethodNotAllowedTest, AllowsGetHead) {
  const auto [path, method] = GetParam();
  const RouteMatch match = match_route(method, path);
  EXPECT_EQ(match.route, Route::method_not_allowed);
  EXPECT_EQ(match.allow, kProbeAllow);
}

INSTANTIATE_TEST_SUITE_P(OtherMethods, ProbeMethodNotAllowedTest,
                         testing::Combine(testing::Values("/healthz", "/readyz"),
                                          testing::Values(Verb::post, Verb::put, Verb::patch,
                                                          Verb::delete_, Verb::options, Verb::trace,
                                                          Verb::unknown)));

TEST(RouterTest, MethodNotAllowedIgnoresTheQueryString) {
  const RouteMatch match = match_route(Verb::post, "/healthz?x=1");
  EXPECT_EQ(match.route, Route::method_not_allowed);
  EXPECT_EQ(match.allow, kProbeAllow);
}

TEST(RouterTest, MethodIsCheckedBeforeTheId) {
  // DELETE /attempts/abc is a method the path never accepts, whatever the segment.
  const RouteMatch match = match_route(Verb::delete_, "/attempts/abc");
  EXPECT_EQ(match.route, Route::method_not_allowed);
  EXPECT_EQ(match.allow, kAttemptAllow);
}

// --- Malformed attempt ids ------------------------------------------------------------------

class BadAttemptIdTest : public testing::TestWithParam<std::tuple<Verb, std::string_view>> {};

TEST_P(BadAttemptIdTest, IsBadAttemptId) {
  const auto [method, segment] = GetParam();
  const RouteMatch match = match_route(method, "/attempts/" + std::string(segment));
  EXPECT_EQ(match.route, Route::bad_attempt_id);
  EXPECT_EQ(match.attempt_id, 0);
}

INSTANTIATE_TEST_SUITE_P(Segments, BadAttemptIdTest,
                         testing::Combine(testing::Values(Verb::patch, Verb::get, Verb::head),
                                          testing::Values("", "0", "00", "01", "-1", "+1", "abc",
                                                          "1a", "1.0", "1e3", "9223372036854775808",
                                                          "99999999999999999999", "%31", "1%20",
                                                          " 1", "1#frag")));

// --- Unknown paths --------------------------------------------------------------------------

class NotFoundTest : public testing::TestWithParam<std::tuple<Verb, std::string_view>> {};

TEST_P(NotFoundTest, IsNotFound) {
  const auto [method, target] = GetParam();
  const RouteMatch match = match_route(method, target);
  EXPECT_EQ(match.route, Route::not_found);
  EXPECT_TRUE(match.allow.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Paths, NotFoundTest,
    testing::Combine(testing::Values(Verb::get, Verb::patch, Verb::post, Verb::delete_),
                     testing::Values("/", "", "*", "/attempts", "/attempts?x=1", "/attempts/1/x",
                                     "/attempts/1/", "/attempts//1", "/attempts/1/answers",
                                     "/healthz/", "/healthz/x", "/readyz/", "/readyz/x", "/HEALTHZ",
                                     "/Attempts/1", "//attempts/1", "attempts/1", "/attempt/1",
                                     "/attemptsx/1", "/api/attempts/1",
                                     "http://localhost/attempts/1")));

// --- Content-Type -----------------------------------------------------------------------------

class JsonContentTypeTest : public testing::TestWithParam<std::string_view> {};

TEST_P(JsonContentTypeTest, IsJson) {
  EXPECT_TRUE(is_json_content_type(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(
    Accepted, JsonContentTypeTest,
    testing::Values("application/json", "Application/JSON", "APPLICATION/JSON",
                    "application/json; charset=utf-8", "application/json;charset=UTF-8",
                    "application/json; charset=\"UTF-8\"", "application/json; CHARSET=Utf-8",
                    "application/json; charset=utf8", "application/json ; charset=utf-8",
                    "application/json;  charset = utf-8 ", "application/json; foo=bar",
                    "application/json; foo=bar; charset=utf-8; baz=\"q\"", "application/json;",
                    " application/json", "application/json\t"));

class NotJsonContentTypeTest : public testing::TestWithParam<std::string_view> {};

TEST_P(NotJsonContentTypeTest, IsNotJson) {
  EXPECT_FALSE(is_json_content_type(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(
    Rejected, NotJsonContentTypeTest,
    testing::Values("", " ", "text/plain", "text/json", "json", "application/", "application/jsonx",
                    "application/json-patch+json", "application/merge-patch+json",
                    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                    "application/json, text/plain", "application/json; charset=latin1",
                    "application/json; charset=iso-8859-1", "application/json; charset=utf-16",
                    "application/json; charset=", "application/json; charset=\"utf-8",
                    "application/json; charset=utf-8; charset=latin1"));

}  // namespace
}  // namespace attempts::http
