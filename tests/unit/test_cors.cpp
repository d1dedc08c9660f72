// Unit tests for CORS: which origins the configuration accepts, the fields each response gets,
// preflights (in the policy and through the request handler: before the token, without the
// store), and how a response is written with them.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/token_cache.hpp"
#include "attempts/http/cors.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/responses.hpp"
#include "auth_test_support.hpp"

namespace attempts::http {
namespace {

using Field = beast_http::field;
using testing::HasSubstr;
using testing::Not;

constexpr std::string_view kPage = "http://127.0.0.1:18700";
constexpr std::string_view kOtherPage = "https://exam.example.org";
constexpr std::string_view kAllowedFields =
    "Access-Control-Allow-Origin: http://127.0.0.1:18700\r\n"
    "Access-Control-Expose-Headers: Location, Retry-After, WWW-Authenticate, "
    "Idempotent-Replayed\r\n"
    "Vary: Origin\r\n";

const CorsPolicy& policy() {
  static const CorsPolicy cors({std::string(kPage), std::string(kOtherPage)});
  return cors;
}

Request preflight(std::string target, std::string_view origin, std::string method = "PATCH") {
  Request r;
  r.method = Verb::options;
  r.method_text = "OPTIONS";
  r.target = std::move(target);
  r.origin = origin;
  r.origin_count = 1;
  r.access_control_request_method = std::move(method);
  r.access_control_request_method_count = 1;
  return r;
}

// The response as the session writes it, with the CORS fields of its request.
std::string wire(const Response& response, const CorsPolicy& cors, const Request& request) {
  std::string out;
  serialize_response(response, false, out,
                     cors.response_fields(request.origin, request.origin_count));
  return out;
}

// --- origins as the configuration accepts them -------------------------------------------------

TEST(OriginTest, AcceptsOriginsAsBrowsersSendThem) {
  for (const char* origin :
       {"http://127.0.0.1:18700", "https://exam.example.org", "http://localhost:3000",
        "http://localhost", "https://a-b.c.d:8443", "http://[::1]:8080", "http://[::1]",
        "http://10.0.0.1:65535", "http://x:1"}) {
    EXPECT_EQ(origin_error(origin), std::nullopt) << origin;
  }
}

TEST(OriginTest, RefusesWhatNoBrowserSendsWithTheReason) {
  const struct {
    const char* text;
    const char* reason;
  } cases[] = {
      {"*", "name each origin"},
      {"null", "never allowed"},
      {"", "scheme"},
      {"example.org", "scheme"},
      {"ftp://example.org", "scheme"},
      {"HTTP://example.org", "scheme"},
      {"http://Example.org", "lower case"},
      {"http://example.org/", "no path"},
      {"http://example.org/exam", "no path"},
      {"http://example.org?x=1", "no path"},
      {"http://example.org#top", "no path"},
      {"http://user@example.org", "user name"},
      {"http://", "domain name or an IP address"},
      {"http://.example.org", "domain name or an IP address"},
      {"http://exa_mple.org", "domain name or an IP address"},
      {"http://example.org:", "port"},
      {"http://example.org:0", "port"},
      {"http://example.org:080", "port"},
      {"http://example.org:65536", "port"},
      {"http://example.org:123456", "port"},
      {"http://example.org:8x", "port"},
      {"http://example.org:80", "write http://example.org"},
      {"https://example.org:443", "write https://example.org"},
      {"http://[::1", "closing ']'"},
      {"http://[]", "IPv6"},
      {"http://[::G]", "IPv6"},
      {"http://[::1]x", "only ':' and a port"},
  };
  for (const auto& c : cases) {
    const auto error = origin_error(c.text);
    ASSERT_TRUE(error.has_value()) << c.text;
    EXPECT_THAT(*error, HasSubstr(c.reason)) << c.text;
  }
}

TEST(OriginTest, APolicyRefusesWhatIsNotAnOriginAndKeepsDuplicatesOnce) {
  EXPECT_THROW(CorsPolicy({"*"}), std::invalid_argument);
  EXPECT_THROW(CorsPolicy({"http://a.example", "http://a.example/"}), std::invalid_argument);
  const CorsPolicy twice({"http://a.example", "http://a.example"});
  EXPECT_EQ(twice.origins(), std::vector<std::string>{"http://a.example"});
}

// --- an Origin line in a header the parser could not finish -----------------------------------

TEST(FindOriginFieldTest, ReadsTheFirstOriginLineOfTheHeader) {
  EXPECT_EQ(find_origin_field("GET / HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n\r\n"),
            "http://a.example");
  EXPECT_EQ(find_origin_field("GET / HTTP/1.1\r\noRiGiN:\t http://a.example \r\nX: 1\r\n"),
            "http://a.example");
  EXPECT_EQ(find_origin_field("GET / HTTP/1.1\nOrigin: http://a.example\nOrigin: http://b\n"),
            "http://a.example");
}

TEST(FindOriginFieldTest, ReadsAnOriginLineTheParserLeftFirst) {
  // The parser handed over the request line and Host, and kept Origin: it waits for the next
  // line to know whether Origin's value goes on (obsolete line folding).
  EXPECT_EQ(find_origin_field("Origin: http://a.example\r\n"), "http://a.example");
  EXPECT_EQ(find_origin_field("X-Padding: pppp\r\nOrigin: http://a.example\r\n"),
            "http://a.example");
}

TEST(FindOriginFieldTest, FindsNothingOutsideTheFieldsOrInACutOffLine) {
  EXPECT_EQ(find_origin_field(""), "");
  EXPECT_EQ(find_origin_field("GET /origin: HTTP/1.1\r\n\r\n"), "");
  EXPECT_EQ(find_origin_field("GET / HTTP/1.1\r\nHost: x\r\n\r\nOrigin: http://body\r\n"), "");
  EXPECT_EQ(find_origin_field("GET / HTTP/1.1\r\nOrigin: http://a.exa"), "");
  EXPECT_EQ(find_origin_field("GET / HTTP/1.1\r\nX-Origin: http://a.example\r\n"), "");
}

// --- the fields of every response --------------------------------------------------------------

TEST(CorsPolicyTest, OffAddsNothing) {
  const CorsPolicy off;
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(off.response_fields(kPage, 1), "");
  EXPECT_EQ(off.response_fields("", 0), "");
}

TEST(CorsPolicyTest, AnAllowedOriginGetsItselfTheExposedFieldsAndVary) {
  EXPECT_TRUE(policy().enabled());
  EXPECT_TRUE(policy().allows(kPage));
  EXPECT_EQ(policy().response_fields(kPage, 1), kAllowedFields);
  EXPECT_THAT(std::string(policy().response_fields(kOtherPage, 1)),
              HasSubstr("Access-Control-Allow-Origin: https://exam.example.org\r\n"));
}

TEST(CorsPolicyTest, ExposeHeadersOnlyWhereTheResponseHasAFieldItNames) {
  EXPECT_EQ(policy().response_fields(kPage, 1, /*expose=*/false),
            "Access-Control-Allow-Origin: http://127.0.0.1:18700\r\nVary: Origin\r\n");
  EXPECT_EQ(policy().response_fields("http://evil.example", 1, false), "Vary: Origin\r\n");
  EXPECT_FALSE(CorsPolicy::needs_expose(no_content_response()));
  EXPECT_FALSE(CorsPolicy::needs_expose(error_response(Status::conflict, "final")));
  EXPECT_TRUE(CorsPolicy::needs_expose(unavailable_response("down", std::chrono::seconds(1))));
  Response started = json_response(Status::created, "{}");
  started.set(Field::location, "/attempts/1");
  EXPECT_TRUE(CorsPolicy::needs_expose(started));
  Response challenge = error_response(Status::unauthorized, "token");
  challenge.set(Field::www_authenticate, "Bearer");
  EXPECT_TRUE(CorsPolicy::needs_expose(challenge));
  Response replayed = no_content_response();
  replayed.set("Idempotent-Replayed", "true");
  EXPECT_TRUE(CorsPolicy::needs_expose(replayed));
}

TEST(CorsPolicyTest, AnyOtherOriginGetsVaryAloneAndIsNeverReflected) {
  for (const char* origin :
       {"http://evil.example", "http://127.0.0.1:18701", "http://127.0.0.1:18700/",
        "HTTP://127.0.0.1:18700", "http://127.0.0.1:18700 ", "null", "*", ""}) {
    EXPECT_FALSE(policy().allows(origin)) << origin;
    EXPECT_EQ(policy().response_fields(origin, 1), "Vary: Origin\r\n") << origin;
  }
  EXPECT_EQ(policy().response_fields("", 0), "Vary: Origin\r\n");
  // Two Origin fields name no one origin.
  EXPECT_EQ(policy().response_fields(kPage, 2), "Vary: Origin\r\n");
}

TEST(CorsPolicyTest, TheFieldsAreWrittenBeforeTheBlankLine) {
  std::string out;
  serialize_response(error_response(Status::conflict, "final"), false, out,
                     policy().response_fields(kPage, 1));
  const auto blank = out.find("\r\n\r\n");
  ASSERT_NE(blank, std::string::npos);
  EXPECT_EQ(out.substr(blank - kAllowedFields.size() + 2, kAllowedFields.size()), kAllowedFields);
  EXPECT_EQ(out.substr(blank + 4), R"({"error":"final"})");
}

// --- preflights ---------------------------------------------------------------------------------

TEST(CorsPreflightTest, IsOptionsWithOriginAndAccessControlRequestMethod) {
  EXPECT_TRUE(CorsPolicy::is_preflight(preflight("/attempts/1", kPage)));
  auto no_method = preflight("/attempts/1", kPage);
  no_method.access_control_request_method_count = 0;
  EXPECT_FALSE(CorsPolicy::is_preflight(no_method));
  auto no_origin = preflight("/attempts/1", kPage);
  no_origin.origin_count = 0;
  EXPECT_FALSE(CorsPolicy::is_preflight(no_origin));
  auto get = preflight("/attempts/1", kPage);
  get.method = Verb::get;
  EXPECT_FALSE(CorsPolicy::is_preflight(get));
}

TEST(CorsPreflightTest, AnAllowedOriginGets204WithThePathsMethodsTheFieldsAndMaxAge) {
  const auto request = preflight("/attempts/1", kPage);
  const Response response = policy().preflight_response(request, "GET, HEAD, PATCH");
  EXPECT_EQ(response.result(), Status::no_content);
  EXPECT_EQ(response[Field::access_control_allow_methods], "GET, HEAD, PATCH");
  EXPECT_EQ(response[Field::access_control_allow_headers],
            "authorization, content-type, idempotency-key, last-event-id");
  EXPECT_EQ(response[Field::access_control_max_age], "7200");
  EXPECT_TRUE(response.body().empty());
  const std::string sent = wire(response, policy(), request);
  EXPECT_THAT(sent, HasSubstr("Access-Control-Allow-Origin: http://127.0.0.1:18700\r\n"));
  EXPECT_THAT(sent, HasSubstr("Vary: Origin\r\n"));
}

TEST(CorsPreflightTest, AnyOtherOriginGets403WithoutAnyAllowField) {
  for (const char* origin : {"http://evil.example", "null", "http://127.0.0.1:18700/"}) {
    const auto request = preflight("/attempts/1", origin);
    const Response response = policy().preflight_response(request, "GET, HEAD, PATCH");
    EXPECT_EQ(response.result(), Status::forbidden) << origin;
    const std::string sent = wire(response, policy(), request);
    EXPECT_THAT(sent, Not(HasSubstr("Access-Control-Allow"))) << origin;
    EXPECT_THAT(sent, Not(HasSubstr(origin))) << origin;
    EXPECT_THAT(sent, HasSubstr("Vary: Origin\r\n"));
    EXPECT_THAT(response.body(), HasSubstr("--cors-origin"));
  }
}

TEST(CorsPreflightTest, AMalformedPreflightIs400) {
  auto two_origins = preflight("/attempts/1", kPage);
  two_origins.origin_count = 2;
  auto two_methods = preflight("/attempts/1", kPage);
  two_methods.access_control_request_method_count = 2;
  for (const auto& request : {two_origins, two_methods, preflight("/attempts/1", kPage, ""),
                              preflight("/attempts/1", kPage, "PAT CH")}) {
    const Response response = policy().preflight_response(request, "GET, HEAD, PATCH");
    EXPECT_EQ(response.result(), Status::bad_request);
    EXPECT_THAT(response.body(), HasSubstr("preflight"));
  }
}

// --- through the request handler ---------------------------------------------------------------

class CorsHandlerTest : public testing::Test {
 protected:
  auth::Authenticator authenticator_{std::make_shared<const auth::TokenVerifier>(
      auth::test::test_key_set(), auth::VerifierOptions{})};
  auth::TokenCache tokens_{{.capacity = 64}};
  RequestHandler with_cors_{HandlerOptions{.authenticator = &authenticator_, .cors = policy()}};
  RequestHandler without_cors_{HandlerOptions{.authenticator = &authenticator_}};
};

TEST_F(CorsHandlerTest, APreflightIsAnsweredFromTheHeaderWithoutAToken) {
  const struct {
    const char* target;
    const char* methods;
  } paths[] = {{"/attempts/7", "GET, HEAD, PATCH"},
               {"/attempts/7/submit", "POST"},
               {"/exams/3/attempts", "GET, HEAD, POST"},
               {"/attempts/abc", "GET, HEAD, PATCH"},
               {"/healthz?x", "GET, HEAD"},
               {"/metrics", "GET, HEAD"}};
  for (const auto& path : paths) {
    const HeaderVerdict verdict =
        with_cors_.judge_header(preflight(path.target, kPage), &tokens_.reader());
    EXPECT_EQ(verdict.match.route, Route::preflight) << path.target;
    ASSERT_TRUE(verdict.rejection) << path.target;
    EXPECT_EQ(verdict.rejection->result(), Status::no_content) << path.target;
    EXPECT_EQ((*verdict.rejection)[Field::access_control_allow_methods], path.methods);
    EXPECT_FALSE(verdict.student);
  }
  // No token was looked at.
  EXPECT_EQ(authenticator_.rejections(auth::TokenError::missing), 0u);
  EXPECT_EQ(tokens_.hits() + tokens_.misses(), 0u);
}

TEST_F(CorsHandlerTest, APreflightFromAnotherOriginIs403) {
  const HeaderVerdict verdict =
      with_cors_.judge_header(preflight("/attempts/7", "http://evil.example"), &tokens_.reader());
  EXPECT_EQ(verdict.match.route, Route::preflight);
  ASSERT_TRUE(verdict.rejection);
  EXPECT_EQ(verdict.rejection->result(), Status::forbidden);
}

TEST_F(CorsHandlerTest, AnUnknownPathIs404AndOptionsWithoutPreflightFieldsIs405) {
  const HeaderVerdict unknown =
      with_cors_.judge_header(preflight("/nowhere", kPage), &tokens_.reader());
  EXPECT_EQ(unknown.match.route, Route::not_found);
  EXPECT_EQ(unknown.rejection->result(), Status::not_found);
  auto plain = preflight("/attempts/7", kPage);
  plain.access_control_request_method_count = 0;
  const HeaderVerdict options = with_cors_.judge_header(plain, &tokens_.reader());
  EXPECT_EQ(options.match.route, Route::method_not_allowed);
  EXPECT_EQ(options.rejection->result(), Status::method_not_allowed);
}

TEST_F(CorsHandlerTest, WithCorsOffAPreflightIs405AsAnyOptions) {
  const HeaderVerdict verdict =
      without_cors_.judge_header(preflight("/attempts/7", kPage), &tokens_.reader());
  EXPECT_EQ(verdict.match.route, Route::method_not_allowed);
  ASSERT_TRUE(verdict.rejection);
  EXPECT_EQ(verdict.rejection->result(), Status::method_not_allowed);
  EXPECT_EQ((*verdict.rejection)[Field::allow], "GET, HEAD, PATCH");
  EXPECT_FALSE(without_cors_.cors().enabled());
}

TEST_F(CorsHandlerTest, AnActualRequestStillNeedsItsToken) {
  Request patch = preflight("/attempts/7", kPage);
  patch.method = Verb::patch;
  patch.access_control_request_method_count = 0;
  const HeaderVerdict verdict = with_cors_.judge_header(patch, &tokens_.reader());
  EXPECT_EQ(verdict.match.route, Route::save_answers);
  ASSERT_TRUE(verdict.rejection);
  EXPECT_EQ(verdict.rejection->result(), Status::unauthorized);
  // ... and its 401 reaches the page, whose script can read WWW-Authenticate.
  const std::string sent = wire(*verdict.rejection, with_cors_.cors(), patch);
  EXPECT_THAT(sent, HasSubstr(std::string(kAllowedFields)));
  EXPECT_THAT(sent, HasSubstr("WWW-Authenticate: Bearer\r\n"));
}

}  // namespace
}  // namespace attempts::http
