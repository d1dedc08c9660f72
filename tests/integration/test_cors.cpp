// CORS through the real server: preflights answered before the token and without the database,
// the fields of every response to an allowed origin (the session's own 408, 413 and 431 and a
// malformed request's 400 included), nothing but `Vary: Origin` for any other origin, nothing at
// all with CORS off, and preflights counted on /metrics.

#include <gtest/gtest.h>
#include <strings.h>

#include <optional>
#include <string>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

constexpr const char* kPage = "http://127.0.0.1:18700";
constexpr const char* kExposed = "Location, Retry-After, WWW-Authenticate, Idempotent-Replayed";

ServerSettings with_cors(std::vector<std::string> more = {}) {
  std::vector<std::string> flags = {"--cors-origin", kPage, "--cors-origin",
                                    "https://exam.example.org"};
  flags.insert(flags.end(), more.begin(), more.end());
  return ServerSettings::with_flags(flags);
}

HttpRequest from(HttpRequest request, const std::string& origin) {
  request.headers.emplace_back("Origin", origin);
  return request;
}

HttpRequest preflight(std::string target, const std::string& origin,
                      const std::string& method = "PATCH") {
  HttpRequest request;
  request.method = "OPTIONS";
  request.target = std::move(target);
  request.headers = {{"Origin", origin},
                     {"Access-Control-Request-Method", method},
                     {"Access-Control-Request-Headers", "authorization,content-type"}};
  return request;
}

// The fields a page on an allowed origin needs to read a response: Access-Control-Allow-Origin
// and Vary, and Access-Control-Expose-Headers exactly when the response has a field it names.
::testing::AssertionResult ReadableByThePage(const HttpResponse& response) {
  bool exposable = false;
  for (const char* name : {"location", "retry-after", "www-authenticate", "idempotent-replayed"}) {
    exposable = exposable || response.header(name).has_value();
  }
  const auto expose = response.header("access-control-expose-headers");
  if (response.header("access-control-allow-origin") != kPage ||
      expose != (exposable ? std::optional<std::string>(kExposed) : std::nullopt) ||
      response.header("vary") != "Origin") {
    return ::testing::AssertionFailure()
           << "without the CORS fields of " << kPage << ": " << response;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult NoAllowFields(const HttpResponse& response) {
  for (const auto& [name, value] : response.headers) {
    if (name.size() >= 20 && strncasecmp(name.c_str(), "access-control-allow", 20) == 0) {
      return ::testing::AssertionFailure() << name << ": " << value << " in " << response;
    }
  }
  return ::testing::AssertionSuccess();
}

// One request on its own connection, written as raw bytes, and the response it gets.
HttpResponse raw_exchange(std::uint16_t port, std::string_view bytes) {
  HttpClient client(port);
  client.send_raw(bytes);
  return client.read_response();
}

TEST(CorsTest, APreflightNeedsNeitherTokenNorDatabase) {
  TestJwks jwks;
  // No PostgreSQL listens at this address: anything that needed the database would be 503.
  ServerSettings settings = with_cors({"--auth", "jwt", "--jwks", jwks.path()});
  settings.database_url =
      "postgresql://postgres@127.0.0.1:" + std::to_string(pick_free_port()) + "/attempts";
  ServerProcess server(settings);
  const struct {
    const char* target;
    const char* methods;
  } paths[] = {{"/attempts/42", "GET, HEAD, PATCH"},
               {"/attempts/42/submit", "POST"},
               {"/exams/1/attempts", "GET, HEAD, POST"},
               {"/exams/1/progress", "GET"},
               {"/healthz", "GET, HEAD"}};
  for (const auto& path : paths) {
    const auto response = HttpClient(server.port()).request(preflight(path.target, kPage));
    EXPECT_EQ(response.status, 204) << response;
    EXPECT_EQ(response.header("access-control-allow-origin"), kPage);
    EXPECT_EQ(response.header("access-control-allow-methods"), path.methods);
    EXPECT_EQ(response.header("access-control-allow-headers"),
              "authorization, content-type, idempotency-key, last-event-id");
    EXPECT_EQ(response.header("access-control-max-age"), "7200");
    EXPECT_EQ(response.header("vary"), "Origin");
    EXPECT_EQ(response.header("content-length"), std::nullopt);
    EXPECT_TRUE(response.body.empty());
  }
  // The actual request needs the database, and says so, readably.
  const auto save =
      HttpClient(server.port())
          .request(from(
              with_token(patch_request("/attempts/42", answers_body("{}")), token_for(42)), kPage));
  EXPECT_TRUE(IsUnavailable(save));
  EXPECT_TRUE(ReadableByThePage(save));
}

TEST(CorsTest, APreflightFromAnyOtherOriginIs403WithoutAllowFields) {
  ServerProcess server(with_cors());
  for (const std::string origin : {"http://evil.example", "http://127.0.0.1:18701",
                                   "http://127.0.0.1:18700/", "HTTP://127.0.0.1:18700", "null"}) {
    const auto response = HttpClient(server.port()).request(preflight("/attempts/42", origin));
    EXPECT_TRUE(IsJsonError(response, 403)) << origin;
    EXPECT_TRUE(NoAllowFields(response)) << origin;
    EXPECT_EQ(response.header("vary"), "Origin");
    EXPECT_EQ(response.body.find(origin), std::string::npos) << "the origin is reflected";
  }
  // A second Origin field, or a malformed Access-Control-Request-Method: 400.
  auto two_origins = preflight("/attempts/42", kPage);
  two_origins.headers.emplace_back("Origin", kPage);
  EXPECT_TRUE(IsJsonError(HttpClient(server.port()).request(two_origins), 400));
  EXPECT_TRUE(IsJsonError(
      HttpClient(server.port()).request(preflight("/attempts/42", kPage, "PAT(CH")), 400));
  // No such path: 404, and an OPTIONS that is no preflight: 405, both readable by the page.
  const auto unknown = HttpClient(server.port()).request(preflight("/nowhere", kPage));
  EXPECT_TRUE(IsJsonError(unknown, 404));
  EXPECT_TRUE(ReadableByThePage(unknown));
  HttpRequest options;
  options.method = "OPTIONS";
  options.target = "/attempts/42";
  const auto plain = HttpClient(server.port()).request(from(options, kPage));
  EXPECT_TRUE(IsJsonError(plain, 405));
  EXPECT_EQ(plain.header("allow"), "GET, HEAD, PATCH");
  EXPECT_TRUE(ReadableByThePage(plain));
}

TEST(CorsTest, EveryActualResponseToAnAllowedOriginIsReadableErrorsIncluded) {
  TestJwks jwks;
  ServerProcess server(with_cors({"--auth", "jwt", "--jwks", jwks.path()}));
  const auto port = server.port();
  // 401 with its challenge, 404, 400, 415, and a probe.
  const auto no_token =
      HttpClient(port).request(from(patch_request("/attempts/42", answers_body("{}")), kPage));
  EXPECT_TRUE(IsJsonError(no_token, 401));
  EXPECT_TRUE(ReadableByThePage(no_token));
  EXPECT_EQ(no_token.header("www-authenticate"), "Bearer");
  const auto missing = HttpClient(port).request(
      from(with_token(get_request("/attempts/9223372036854775807"), token_for(7)), kPage));
  EXPECT_TRUE(IsJsonError(missing, 404));
  EXPECT_TRUE(ReadableByThePage(missing));
  const auto bad_id = HttpClient(port).request(from(get_request("/attempts/0"), kPage));
  EXPECT_TRUE(IsJsonError(bad_id, 400));
  EXPECT_TRUE(ReadableByThePage(bad_id));
  auto text = with_token(patch_request("/attempts/42", answers_body("{}")), token_for(42));
  for (auto& [name, value] : text.headers) {
    if (name == "Content-Type") value = "text/plain";
  }
  EXPECT_TRUE(ReadableByThePage(HttpClient(port).request(from(text, kPage))));
  EXPECT_TRUE(ReadableByThePage(HttpClient(port).request(from(get_request("/healthz"), kPage))));
  // The other allowed origin gets its own name back.
  const auto other =
      HttpClient(port).request(from(get_request("/healthz"), "https://exam.example.org"));
  EXPECT_EQ(other.header("access-control-allow-origin"), "https://exam.example.org");
  // Any other origin, or none: the same answer without the fields, but Vary.
  for (const auto& request :
       {from(get_request("/healthz"), "http://evil.example"), get_request("/healthz")}) {
    const auto response = HttpClient(port).request(request);
    EXPECT_EQ(response.status, 200);
    EXPECT_TRUE(NoAllowFields(response));
    EXPECT_EQ(response.header("access-control-expose-headers"), std::nullopt);
    EXPECT_EQ(response.header("vary"), "Origin");
  }
}

TEST(CorsTest, TheSessionsOwnErrorsAreReadableToo) {
  ServerProcess server(with_cors({"--request-timeout", "1", "--body-limit", "1024"}));
  const auto port = server.port();
  const std::string origin_line = std::string("Origin: ") + kPage + "\r\n";
  // 413: a body over --body-limit, refused on its Content-Length.
  const auto too_large =
      raw_exchange(port, "PATCH /attempts/42 HTTP/1.1\r\nHost: x\r\n" + origin_line +
                             "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n");
  EXPECT_TRUE(IsJsonError(too_large, 413));
  EXPECT_TRUE(ReadableByThePage(too_large));
  // 431: a header block over 8 KiB, which the parser never finishes: the Origin line is read
  // from the bytes as they arrived, before or after the padding.
  const std::string padding = "X-Padding: " + std::string(9000, 'p') + "\r\n";
  for (const auto& fields : {origin_line + padding, padding + origin_line}) {
    const auto large = raw_exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
    EXPECT_TRUE(IsJsonError(large, 431));
    EXPECT_TRUE(ReadableByThePage(large));
  }
  // 408: a header that never ends.
  const auto slow = raw_exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n" + origin_line);
  EXPECT_TRUE(IsJsonError(slow, 408));
  EXPECT_TRUE(ReadableByThePage(slow));
  // 400: a Transfer-Encoding the server cannot frame.
  const auto malformed = raw_exchange(port, "PATCH /attempts/42 HTTP/1.1\r\nHost: x\r\n" +
                                                origin_line + "Transfer-Encoding: gzip\r\n\r\n");
  EXPECT_TRUE(IsJsonError(malformed, 400));
  EXPECT_TRUE(ReadableByThePage(malformed));
  // The same errors for another origin: no fields of an allowed one.
  const auto other =
      raw_exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n" +
                             padding + "\r\n");
  EXPECT_TRUE(IsJsonError(other, 431));
  EXPECT_TRUE(NoAllowFields(other));
}

TEST(CorsTest, PreflightsAreCountedByResult) {
  ServerProcess server(with_cors());
  for (int i = 0; i < 3; ++i) HttpClient(server.port()).request(preflight("/attempts/42", kPage));
  HttpClient(server.port()).request(preflight("/attempts/42", "http://evil.example"));
  const auto page = HttpClient(server.port()).request(get_request("/metrics")).body;
  EXPECT_NE(page.find("attempts_http_requests_total{route=\"OPTIONS (CORS preflight)\","
                      "code=\"204\"} 3\n"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("attempts_http_requests_total{route=\"OPTIONS (CORS preflight)\","
                      "code=\"403\"} 1\n"),
            std::string::npos)
      << page;
}

TEST(CorsTest, WithCorsOffNothingChanges) {
  ServerProcess server;
  const auto options = HttpClient(server.port()).request(preflight("/attempts/42", kPage));
  EXPECT_TRUE(IsJsonError(options, 405));
  EXPECT_EQ(options.header("allow"), "GET, HEAD, PATCH");
  const auto probe = HttpClient(server.port()).request(from(get_request("/healthz"), kPage));
  EXPECT_TRUE(NoAllowFields(probe));
  EXPECT_EQ(probe.header("vary"), std::nullopt);
  EXPECT_EQ(probe.header("access-control-expose-headers"), std::nullopt);
}

}  // namespace
}  // namespace attempts::integration
