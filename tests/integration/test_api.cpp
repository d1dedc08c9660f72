// The HTTP API end to end: a real attempts-server process, real sockets, real PostgreSQL.
// Every status code of the API, the HTTP/1.1 features (keep-alive, pipelining, chunked bodies,
// 100-continue, limits, idle timeout) and the command line's exit codes.
//
// Attempt ids used here: 1000..1999, each test its own, reset before use.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/subprocess.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kMissingId = 5'000'000;  // the seed has ids 1..100000 only
constexpr std::size_t kDefaultBodyLimit = 64 * 1024;

// A valid answers document of exactly `size` bytes (padded with an ignored field).
std::string answers_body_of_size(std::size_t size) {
  const std::string head = R"({"answers":{"1":[1]},"pad":")";
  const std::string tail = R"("})";
  return head + std::string(size - head.size() - tail.size(), 'x') + tail;
}

// A test parameter with a name for the test's name.
template <typename T>
struct Named {
  const char* name;
  T value;
};

template <typename T>
void PrintTo(const Named<T>& named, std::ostream* out) {
  *out << named.name;
}

struct ParamName {
  template <typename T>
  std::string operator()(const testing::TestParamInfo<Named<T>>& param) const {
    return param.param.name;
  }
};

// One attempts-server for the whole suite (restarted if a test killed it); each test checks
// that it is still alive at the end.
class ApiTest : public testing::Test {
 protected:
  static void TearDownTestSuite() {
    if (server_) server_->terminate(SIGTERM, seconds(10));
    server_.reset();
  }

  void SetUp() override {
    if (!server_ || !server_->running()) server_ = std::make_unique<ServerProcess>();
  }

  void TearDown() override {
    if (!server_) return;
    EXPECT_TRUE(server_->running()) << "attempts-server died during the test";
    if (HasFailure()) server_->print_log(std::cerr);
  }

  std::uint16_t port() const { return server_->port(); }
  HttpClient connect() const { return HttpClient(port()); }
  // On a new connection.
  HttpResponse send(const HttpRequest& request) const { return connect().request(request); }
  HttpResponse patch(std::int64_t id, const std::string& answers) const {
    return send(patch_request(attempt_target(id), answers_body(answers)));
  }

  // Puts `id` back to its seeded state; expect_pristine() checks that it is still in it.
  void use_pristine(std::int64_t id) { db_.reset_attempts(id, id); }
  void expect_pristine(std::int64_t id) const {
    EXPECT_EQ(db_.read_attempt(id), pristine_row()) << "attempt " << id << " was changed";
  }

  static inline std::unique_ptr<ServerProcess> server_;
  Database db_;
};

// --- PATCH /attempts/{id}: 204 -------------------------------------------------------------

TEST_F(ApiTest, PatchAnswers204AndStoresExactlyTheSentAnswers) {
  constexpr std::int64_t kId = 1001;
  use_pristine(kId);
  const std::string answers = R"({"1":[2,3],"17":[],"4":[-5,9223372036854775807]})";

  const auto response = patch(kId, answers);

  EXPECT_EQ(response.status, 204) << response;
  EXPECT_TRUE(response.body.empty()) << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, answers));
}

TEST_F(ApiTest, PatchAnswersSetsUpdatedAt) {
  constexpr std::int64_t kId = 1002;
  use_pristine(kId);

  ASSERT_EQ(patch(kId, R"({"1":[1]})").status, 204);

  const auto row = db_.read_attempt(kId);
  ASSERT_TRUE(row);
  EXPECT_TRUE(row->updated_at.has_value());
  EXPECT_FALSE(row->submitted_at.has_value());
}

TEST_F(ApiTest, PatchAnswersReplacesTheWholeSetInsteadOfMerging) {
  constexpr std::int64_t kId = 1003;
  use_pristine(kId);

  ASSERT_EQ(patch(kId, R"({"1":[1],"2":[2]})").status, 204);
  ASSERT_EQ(patch(kId, R"({"3":[3]})").status, 204);

  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"3":[3]})"));
}

TEST_F(ApiTest, PatchAnswersAcceptsAnEmptyObject) {
  constexpr std::int64_t kId = 1004;
  use_pristine(kId);
  ASSERT_EQ(patch(kId, R"({"1":[1]})").status, 204);

  EXPECT_EQ(patch(kId, "{}").status, 204);

  EXPECT_TRUE(StoredAnswersAre(db_, kId, "{}"));
}

TEST_F(ApiTest, PatchAnswersIgnoresUnknownTopLevelFields) {
  constexpr std::int64_t kId = 1005;
  use_pristine(kId);
  const std::string body =
      R"({"client":{"version":[1,2],"tags":["a"]},"answers":{"2":[7]},"seq":41,"x":null})";

  EXPECT_EQ(send(patch_request(attempt_target(kId), body)).status, 204);

  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"2":[7]})"));
}

TEST_F(ApiTest, PatchAnswersAcceptsJsonWithUtf8Charset) {
  constexpr std::int64_t kId = 1006;
  use_pristine(kId);

  const auto response = send(patch_request(attempt_target(kId), answers_body(R"({"1":[6]})"),
                                           "application/json; charset=utf-8"));

  EXPECT_EQ(response.status, 204) << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[6]})"));
}

TEST_F(ApiTest, PatchAnswersIgnoresAQueryString) {
  constexpr std::int64_t kId = 1007;
  use_pristine(kId);

  const auto response =
      send(patch_request(attempt_target(kId) + "?client=web", answers_body(R"({"1":[8]})")));

  EXPECT_EQ(response.status, 204) << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[8]})"));
}

// --- GET /attempts/{id} --------------------------------------------------------------------

TEST_F(ApiTest, GetAttemptReturnsTheStoredAttempt) {
  constexpr std::int64_t kId = 1010;
  use_pristine(kId);
  const std::string answers = R"({"3":[1,2],"10":[4]})";
  ASSERT_EQ(patch(kId, answers).status, 204);

  const auto response = send(get_request(attempt_target(kId)));

  ASSERT_EQ(response.status, 200) << response;
  EXPECT_EQ(response.header("content-type").value_or("").rfind("application/json", 0), 0u);
  const auto body = json::parse(response.body);
  EXPECT_EQ(body.at("id"), kId);
  EXPECT_EQ(body.at("exam_id"), 1 + (kId - 1) % 100);  // as sql/seed.sql assigns them
  EXPECT_EQ(body.at("answers"), json::parse(answers));
  EXPECT_TRUE(body.at("updated_at").is_string()) << response;
  EXPECT_TRUE(body.at("submitted_at").is_null()) << response;
}

TEST_F(ApiTest, GetAttemptShowsNullTimestampsForANeverUpdatedAttempt) {
  constexpr std::int64_t kId = 1011;
  use_pristine(kId);

  const auto response = send(get_request(attempt_target(kId)));

  ASSERT_EQ(response.status, 200) << response;
  const auto body = json::parse(response.body);
  EXPECT_EQ(body.at("answers"), json::object());
  EXPECT_TRUE(body.at("updated_at").is_null()) << response;
  EXPECT_TRUE(body.at("submitted_at").is_null()) << response;
}

TEST_F(ApiTest, GetAttemptShowsSubmittedAt) {
  constexpr std::int64_t kId = 1012;
  use_pristine(kId);
  db_.mark_submitted(kId);

  const auto response = send(get_request(attempt_target(kId)));

  ASSERT_EQ(response.status, 200) << response;
  EXPECT_TRUE(json::parse(response.body).at("submitted_at").is_string()) << response;
}

TEST_F(ApiTest, GetUnknownAttemptIs404) {
  EXPECT_TRUE(IsJsonError(send(get_request(attempt_target(kMissingId))), 404));
}

// --- 404 and 409 from the database ---------------------------------------------------------

TEST_F(ApiTest, PatchUnknownAttemptIs404AndCreatesNothing) {
  const auto response = patch(kMissingId, R"({"1":[1]})");

  EXPECT_TRUE(IsJsonError(response, 404));
  EXPECT_FALSE(db_.attempt_exists(kMissingId));
}

TEST_F(ApiTest, PatchLargestPossibleIdIsAValidIdThatIsNotFound) {
  EXPECT_TRUE(IsJsonError(patch(9223372036854775807, R"({"1":[1]})"), 404));
}

TEST_F(ApiTest, PatchSubmittedAttemptIs409AndChangesNothing) {
  constexpr std::int64_t kId = 1020;
  use_pristine(kId);
  db_.mark_submitted(kId);
  const auto before = db_.read_attempt(kId);

  const auto response = patch(kId, R"({"1":[1]})");

  EXPECT_TRUE(IsJsonError(response, 409));
  EXPECT_EQ(db_.read_attempt(kId), before);
}

// --- 400: malformed attempt ids ------------------------------------------------------------

// Some of these would read as 1030..1034 to a lenient parser; those rows must stay untouched.
constexpr std::int64_t kLenientlyParsedFirst = 1030;
constexpr std::int64_t kLenientlyParsedLast = 1034;

class MalformedIdTest : public ApiTest, public testing::WithParamInterface<Named<std::string>> {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    db_.reset_attempts(kLenientlyParsedFirst, kLenientlyParsedLast);
  }
  void expect_nothing_written() const {
    for (auto id = kLenientlyParsedFirst; id <= kLenientlyParsedLast; ++id) expect_pristine(id);
  }
};

TEST_P(MalformedIdTest, PatchIs400AndWritesNothing) {
  const auto response =
      send(patch_request("/attempts/" + GetParam().value, answers_body(R"({"1":[1]})")));

  EXPECT_TRUE(IsJsonError(response, 400));
  expect_nothing_written();
}

TEST_P(MalformedIdTest, GetIs400) {
  EXPECT_TRUE(IsJsonError(send(get_request("/attempts/" + GetParam().value)), 400));
}

INSTANTIATE_TEST_SUITE_P(
    Ids, MalformedIdTest,
    testing::Values(Named<std::string>{"Letters", "abc"}, Named<std::string>{"Zero", "0"},
                    Named<std::string>{"Negative", "-1"},
                    Named<std::string>{"DigitsThenLetter", "1030a"},
                    Named<std::string>{"PlusSign", "+1031"},
                    Named<std::string>{"LeadingZero", "01032"},
                    Named<std::string>{"TwentyDigits", "99999999999999999999"},
                    Named<std::string>{"Int64MaxPlusOne", "9223372036854775808"},
                    Named<std::string>{"Decimal", "1033.0"}, Named<std::string>{"Hex", "0x10"},
                    Named<std::string>{"PercentEncodedDigits", "%31%30%33%34"},
                    Named<std::string>{"Exponent", "1e3"}),
    ParamName());

// --- 400: bodies that are not an acceptable answers document -------------------------------

using BadBody = Named<std::string>;

class BadBodyTest : public ApiTest, public testing::WithParamInterface<BadBody> {};

TEST_P(BadBodyTest, PatchIs400WithAJsonErrorAndWritesNothing) {
  constexpr std::int64_t kId = 1040;
  use_pristine(kId);

  const auto response = send(patch_request(attempt_target(kId), GetParam().value));

  EXPECT_TRUE(IsJsonError(response, 400));
  expect_pristine(kId);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, BadBodyTest,
    testing::Values(
        // malformed JSON
        BadBody{"Empty", ""}, BadBody{"Truncated", R"({"answers":{"1":[1]})"},
        BadBody{"UnquotedKey", R"({answers:{}})"}, BadBody{"SingleQuotes", R"({'answers':{}})"},
        BadBody{"TrailingComma", R"({"answers":{"1":[1,]}})"},
        // invalid UTF-8
        BadBody{"InvalidUtf8InIgnoredString", "{\"answers\":{},\"note\":\"\xff\xfe\"}"},
        BadBody{"InvalidUtf8InKey", "{\"answers\":{\"1\":[1]},\"\xc3\x28\":1}"},
        BadBody{"OverlongUtf8", "{\"answers\":{},\"note\":\"\xc0\xaf\"}"},
        BadBody{"UnpairedSurrogateEscape", R"({"answers":{},"note":"\ud800"})"},
        // trailing garbage
        BadBody{"TrailingText", R"({"answers":{}} x)"},
        BadBody{"SecondDocument", R"({"answers":{}}{})"},
        BadBody{"TrailingNul", std::string(R"({"answers":{}})") + '\0'},
        BadBody{"NulThenGarbage", std::string(R"({"answers":{"1":[1]}})") + '\0' + "garbage"},
        // wrong shape
        BadBody{"TopLevelArray", "[]"}, BadBody{"TopLevelString", R"("answers")"},
        BadBody{"MissingAnswers", "{}"}, BadBody{"AnswersArray", R"({"answers":[]})"},
        BadBody{"AnswersNull", R"({"answers":null})"},
        BadBody{"QuestionValueNotArray", R"({"answers":{"1":5}})"},
        BadBody{"QuestionIdNotNumeric", R"({"answers":{"q":[1]}})"},
        BadBody{"QuestionIdZero", R"({"answers":{"0":[1]}})"},
        BadBody{"QuestionIdLeadingZero", R"({"answers":{"01":[1]}})"},
        BadBody{"QuestionIdNegative", R"({"answers":{"-1":[1]}})"},
        BadBody{"OptionString", R"({"answers":{"1":["a"]}})"},
        BadBody{"OptionFloat", R"({"answers":{"1":[1.5]}})"},
        BadBody{"OptionBeyond64Bits", R"({"answers":{"1":[9223372036854775808]}})"},
        BadBody{"NestedOptionArray", R"({"answers":{"1":[[1]]}})"},
        BadBody{"DuplicateQuestion", R"({"answers":{"1":[1],"1":[2]}})"},
        BadBody{"DuplicateAnswersField", R"({"answers":{},"answers":{"1":[1]}})"}),
    ParamName());

// --- 400: hostile nesting ------------------------------------------------------------------

TEST_F(ApiTest, DeeplyNestedArrayIs400AndTheServerStaysUp) {
  constexpr std::int64_t kId = 1041;
  use_pristine(kId);

  const auto response = send(patch_request(attempt_target(kId), std::string(50'000, '[')));

  EXPECT_TRUE(IsJsonError(response, 400));
  EXPECT_EQ(send(get_request("/healthz")).status, 200);
  expect_pristine(kId);
}

TEST_F(ApiTest, DeeplyNestedIgnoredFieldIs400AndTheServerStaysUp) {
  constexpr std::int64_t kId = 1042;
  use_pristine(kId);
  const std::string body =
      R"({"answers":{},"x":)" + std::string(30'000, '[') + std::string(30'000, ']') + "}";

  const auto response = send(patch_request(attempt_target(kId), body));

  EXPECT_TRUE(IsJsonError(response, 400));
  EXPECT_EQ(send(get_request("/healthz")).status, 200);
  expect_pristine(kId);
}

// --- 413: body limit -----------------------------------------------------------------------

TEST_F(ApiTest, BodyAtTheDefaultLimitIsAccepted) {
  constexpr std::int64_t kId = 1050;
  use_pristine(kId);

  const auto response =
      send(patch_request(attempt_target(kId), answers_body_of_size(kDefaultBodyLimit)));

  EXPECT_EQ(response.status, 204) << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[1]})"));
}

TEST_F(ApiTest, BodyOverTheDefaultLimitIs413AndWritesNothing) {
  constexpr std::int64_t kId = 1051;
  use_pristine(kId);

  const auto response =
      send(patch_request(attempt_target(kId), answers_body_of_size(kDefaultBodyLimit + 1)));

  EXPECT_TRUE(IsJsonError(response, 413));
  expect_pristine(kId);
}

TEST_F(ApiTest, ChunkedBodyOverTheDefaultLimitIs413AndWritesNothing) {
  constexpr std::int64_t kId = 1052;
  use_pristine(kId);
  const std::string body = answers_body_of_size(kDefaultBodyLimit + 4096);
  std::string raw = "PATCH " + attempt_target(kId) +
                    " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n";
  constexpr std::size_t kChunk = 8192;
  for (std::size_t offset = 0; offset < body.size(); offset += kChunk) {
    const std::string chunk = body.substr(offset, kChunk);
    std::ostringstream size;
    size << std::hex << chunk.size();
    raw += size.str() + "\r\n" + chunk + "\r\n";
  }
  raw += "0\r\n\r\n";
  auto client = connect();

  client.send_raw(raw);

  EXPECT_TRUE(IsJsonError(client.read_response(), 413));
  expect_pristine(kId);
}

TEST(BodyLimitFlagTest, BodyLimitIsConfigurable) {
  constexpr std::int64_t kId = 1053;
  const Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--body-limit", "1024"}));

  const auto over = HttpClient(server.port())
                        .request(patch_request(attempt_target(kId), answers_body_of_size(1025)));
  EXPECT_TRUE(IsJsonError(over, 413));
  EXPECT_EQ(db.read_attempt(kId), pristine_row());

  const auto at = HttpClient(server.port())
                      .request(patch_request(attempt_target(kId), answers_body_of_size(1024)));
  EXPECT_EQ(at.status, 204) << at;
  EXPECT_TRUE(server.running());
}

// --- 415: content type ---------------------------------------------------------------------

TEST_F(ApiTest, TextPlainIs415AndWritesNothing) {
  constexpr std::int64_t kId = 1060;
  use_pristine(kId);

  const auto response =
      send(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})"), "text/plain"));

  EXPECT_TRUE(IsJsonError(response, 415));
  expect_pristine(kId);
}

TEST_F(ApiTest, MissingContentTypeIs415AndWritesNothing) {
  constexpr std::int64_t kId = 1061;
  use_pristine(kId);

  const auto response =
      send(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})"), std::nullopt));

  EXPECT_TRUE(IsJsonError(response, 415));
  expect_pristine(kId);
}

TEST_F(ApiTest, JsonInANonUtf8CharsetIs415AndWritesNothing) {
  constexpr std::int64_t kId = 1062;
  use_pristine(kId);

  const auto response = send(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})"),
                                           "application/json; charset=iso-8859-1"));

  EXPECT_TRUE(IsJsonError(response, 415));
  expect_pristine(kId);
}

// --- 405 and 404: routing ------------------------------------------------------------------

class OtherMethodTest : public ApiTest, public testing::WithParamInterface<std::string> {};

TEST_P(OtherMethodTest, OnAnAttemptIs405WithAllowAndWritesNothing) {
  constexpr std::int64_t kId = 1070;
  use_pristine(kId);
  HttpRequest request{GetParam(),
                      attempt_target(kId),
                      {{"Content-Type", "application/json"}},
                      answers_body(R"({"1":[1]})")};

  const auto response = send(request);

  EXPECT_TRUE(IsJsonError(response, 405));
  const auto allow = response.header("allow");
  ASSERT_TRUE(allow) << response;
  EXPECT_NE(allow->find("PATCH"), std::string::npos) << *allow;
  EXPECT_NE(allow->find("GET"), std::string::npos) << *allow;
  expect_pristine(kId);
}

INSTANTIATE_TEST_SUITE_P(Methods, OtherMethodTest, testing::Values("DELETE", "POST", "PUT"),
                         [](const auto& param) { return param.param; });

TEST_F(ApiTest, PostToHealthzIs405WithAllow) {
  const auto response = send({"POST", "/healthz", {}, {}});

  EXPECT_TRUE(IsJsonError(response, 405));
  EXPECT_NE(response.header("allow").value_or("").find("GET"), std::string::npos) << response;
}

class UnknownPathTest : public ApiTest, public testing::WithParamInterface<Named<std::string>> {};

TEST_P(UnknownPathTest, GetIs404) {
  EXPECT_TRUE(IsJsonError(send(get_request(GetParam().value)), 404));
}

INSTANTIATE_TEST_SUITE_P(Paths, UnknownPathTest,
                         testing::Values(Named<std::string>{"Root", "/"},
                                         Named<std::string>{"AttemptsWithoutId", "/attempts"},
                                         Named<std::string>{"AttemptSubresource",
                                                            "/attempts/1/answers"},
                                         Named<std::string>{"Unknown", "/nope"},
                                         Named<std::string>{"HealthzSubpath", "/healthz/extra"},
                                         Named<std::string>{"WrongCase", "/Attempts/1"}),
                         ParamName());

// --- probes --------------------------------------------------------------------------------

TEST_F(ApiTest, HealthzIs200) {
  EXPECT_EQ(send(get_request("/healthz")).status, 200);
}

TEST_F(ApiTest, ReadyzIs200WhileTheDatabaseIsUp) {
  EXPECT_EQ(send(get_request("/readyz")).status, 200);
}

// --- HTTP/1.1 connection handling ----------------------------------------------------------

TEST_F(ApiTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  constexpr std::int64_t kId = 1080;
  use_pristine(kId);
  auto client = connect();

  for (int value = 1; value <= 3; ++value) {
    const std::string answers = R"({"1":[)" + std::to_string(value) + "]}";
    const auto written = client.request(patch_request(attempt_target(kId), answers_body(answers)));
    ASSERT_EQ(written.status, 204) << written;
    EXPECT_NE(written.header("connection").value_or(""), "close") << written;
    const auto read = client.request(get_request(attempt_target(kId)));
    ASSERT_EQ(read.status, 200) << read;
    EXPECT_EQ(json::parse(read.body).at("answers"), json::parse(answers));
  }
}

TEST_F(ApiTest, PipelinedRequestsAreAnsweredInOrder) {
  constexpr std::int64_t kId = 1081;
  use_pristine(kId);
  const std::string answers = R"({"5":[5]})";
  auto client = connect();

  client.send_raw(serialize(patch_request(attempt_target(kId), answers_body(answers))) +
                  serialize(get_request(attempt_target(kId))) +
                  serialize(get_request("/no-such-path")));
  const auto responses = client.read_responses(3);

  EXPECT_EQ(responses[0].status, 204) << responses[0];
  ASSERT_EQ(responses[1].status, 200) << responses[1];
  EXPECT_EQ(json::parse(responses[1].body).at("answers"), json::parse(answers));
  EXPECT_EQ(responses[2].status, 404) << responses[2];
}

TEST_F(ApiTest, ChunkedRequestBodyIsAccepted) {
  constexpr std::int64_t kId = 1082;
  use_pristine(kId);
  auto client = connect();

  client.send_raw("PATCH " + attempt_target(kId) +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"
                  "b\r\n{\"answers\":\r\n"
                  "8\r\n{\"9\":[1,\r\n"
                  "4\r\n2]}}\r\n"
                  "0\r\n\r\n");
  const auto response = client.read_response();

  EXPECT_EQ(response.status, 204) << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"9":[1,2]})"));
}

TEST_F(ApiTest, ExpectContinueGets100ThenTheFinalResponseAfterTheBody) {
  constexpr std::int64_t kId = 1083;
  use_pristine(kId);
  const std::string body = answers_body(R"({"2":[3]})");
  auto client = connect();

  client.send_raw("PATCH " + attempt_target(kId) +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Expect: 100-continue\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n");
  const auto interim = client.read_response();
  ASSERT_EQ(interim.status, 100) << interim;
  EXPECT_EQ(interim.version, "HTTP/1.1");
  client.send_raw(body);
  const auto final_response = client.read_response();

  EXPECT_EQ(final_response.status, 204) << final_response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"2":[3]})"));
}

TEST_F(ApiTest, ExpectContinueWithABadContentTypeGets415Without100) {
  constexpr std::int64_t kId = 1084;
  use_pristine(kId);
  auto client = connect();

  client.send_raw("PATCH " + attempt_target(kId) +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                  "Expect: 100-continue\r\nContent-Length: 20\r\n\r\n");
  const auto response = client.read_response();

  EXPECT_TRUE(IsJsonError(response, 415));
  expect_pristine(kId);
}

TEST_F(ApiTest, ExpectContinueWithAnOversizedBodyGets413Without100) {
  constexpr std::int64_t kId = 1085;
  use_pristine(kId);
  auto client = connect();

  client.send_raw("PATCH " + attempt_target(kId) +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Expect: 100-continue\r\nContent-Length: " +
                  std::to_string(kDefaultBodyLimit + 1) + "\r\n\r\n");
  const auto response = client.read_response();

  EXPECT_TRUE(IsJsonError(response, 413));
  expect_pristine(kId);
}

TEST_F(ApiTest, NonChunkedTransferEncodingIs400AndWhatFollowsIsNotServedAsARequest) {
  // RFC 9112 section 6.3: a request whose Transfer-Encoding does not end in chunked has no
  // determinable length; the server must answer 400 and close. If it read the bytes that follow
  // as the next request, a proxy in front could be used to smuggle requests past it.
  constexpr std::int64_t kId = 1086;
  use_pristine(kId);
  HttpClient client(port(), milliseconds(3000));

  client.send_raw("PATCH " + attempt_target(kId) +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: gzip\r\n\r\n" +
                  serialize(get_request("/healthz")));
  const auto response = client.read_response();

  EXPECT_EQ(response.status, 400) << response;
  try {
    const auto smuggled = client.read_response();
    ADD_FAILURE() << "the body was served as a second request: " << smuggled;
  } catch (const ConnectionClosed&) {
    // expected: closed after the 400
  } catch (const HttpError& error) {
    ADD_FAILURE() << "the connection was not closed after the 400: " << error.what();
  }
  expect_pristine(kId);
}

TEST_F(ApiTest, HeaderLargerThan8KiBIs431Or400) {
  HttpRequest request = get_request("/healthz");
  request.headers.emplace_back("X-Padding", std::string(9000, 'a'));

  const auto response = send(request);

  EXPECT_TRUE(response.status == 431 || response.status == 400) << response;
}

TEST_F(ApiTest, MalformedRequestLineIs400) {
  auto client = connect();

  client.send_raw("THIS IS NOT HTTP\r\n\r\n");

  EXPECT_TRUE(IsJsonError(client.read_response(), 400));
}

// --- idle connections ----------------------------------------------------------------------

class IdleTimeoutTest : public testing::Test {
 protected:
  // Far above the 1 s idle and request timeouts, far below the suite's patience.
  static constexpr milliseconds kCloseWithin{5000};
  ServerProcess server_{
      ServerSettings::with_flags({"--idle-timeout", "1", "--request-timeout", "1"})};
};

TEST_F(IdleTimeoutTest, SilentConnectionIsClosedByTheServer) {
  HttpClient client(server_.port());

  EXPECT_TRUE(client.wait_for_close(kCloseWithin));
  EXPECT_TRUE(server_.running());
}

TEST_F(IdleTimeoutTest, IdleKeepAliveConnectionIsClosedAfterAResponse) {
  HttpClient client(server_.port());
  ASSERT_EQ(client.request(get_request("/healthz")).status, 200);

  EXPECT_TRUE(client.wait_for_close(kCloseWithin));
  EXPECT_TRUE(server_.running());
}

TEST_F(IdleTimeoutTest, SlowlyTricklingHeaderIsCutOff) {
  // One byte every 100 ms would take 20 s for this header: the request's deadline runs from its
  // first byte.
  const std::string header =
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(150, 'a') + "\r\n\r\n";
  HttpClient client(server_.port());
  const auto deadline = std::chrono::steady_clock::now() + kCloseWithin;
  bool closed = false;

  for (std::size_t i = 0; i < header.size() && !closed; ++i) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    try {
      client.send_raw(header.substr(i, 1));
      closed = client.wait_for_close(milliseconds(100));
    } catch (const HttpError&) {
      closed = true;  // the server reset the connection
    }
  }

  EXPECT_TRUE(closed) << "still open after " << kCloseWithin.count() << " ms of trickling";
  EXPECT_TRUE(server_.running());
}

TEST_F(IdleTimeoutTest, HalfSentRequestIsClosedByTheServer) {
  HttpClient client(server_.port());
  client.send_raw("PATCH /attempts/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n");

  EXPECT_TRUE(client.wait_for_close(kCloseWithin));
  EXPECT_TRUE(server_.running());
}

// --- connection limit ----------------------------------------------------------------------

// A connection that has been served once. The start-up probe's connection may still be counted
// for a moment after it closed, so a refusal is retried for a short while.
HttpClient served_connection(std::uint16_t port) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(5);
  for (;;) {
    try {
      HttpClient client(port);
      if (client.request(get_request("/healthz")).status == 200) return client;
    } catch (const HttpError&) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

TEST(ConnectionLimitTest, ConnectionsBeyondMaxConnectionsAreClosedAtOnce) {
  ServerProcess server(ServerSettings::with_flags({"--max-connections", "2"}));
  auto first = served_connection(server.port());
  auto second = served_connection(server.port());

  HttpClient third(server.port());

  EXPECT_TRUE(third.wait_for_close(milliseconds(2000)));
  EXPECT_EQ(second.request(get_request("/healthz")).status, 200);
  first.close();
  EXPECT_NO_THROW(served_connection(server.port())) << "a freed slot was not reused";
  EXPECT_TRUE(server.running());
}

// --- command line --------------------------------------------------------------------------

// Runs attempts-server with `args` (and none of its settings in the environment) to completion.
// Unless the arguments are about --listen, it gets a loopback address, so that a value wrongly
// accepted never makes it listen on every interface.
CommandResult run_server(std::vector<std::string> args,
                         std::vector<std::pair<std::string, std::optional<std::string>>> env = {}) {
  SpawnOptions options;
  options.argv = {server_binary()};
  if (std::find(args.begin(), args.end(), "--listen") == args.end()) {
    options.argv.insert(options.argv.end(), {"--listen", "127.0.0.1:0"});
  }
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  for (const char* name : {"LISTEN", "DATABASE_URL", "THREADS", "POOL_SIZE", "BODY_LIMIT",
                           "LOG_LEVEL", "IDLE_TIMEOUT"}) {
    options.env.emplace_back(name, std::nullopt);
  }
  options.env.insert(options.env.end(), env.begin(), env.end());
  return run_command(std::move(options), seconds(10));
}

TEST(CommandLineTest, HelpExits0AndListsTheFlags) {
  const auto result = run_server({"--help"});

  EXPECT_EQ(result.status, ExitStatus::exit_code(0)) << result.output;
  for (const char* flag :
       {"--listen", "--database-url", "--threads", "--pool-size", "--body-limit", "--log-level"}) {
    EXPECT_NE(result.output.find(flag), std::string::npos) << flag << " missing:\n"
                                                           << result.output;
  }
}

using Flags = Named<std::vector<std::string>>;

class InvalidFlagTest : public testing::TestWithParam<Flags> {};

TEST_P(InvalidFlagTest, ExitsWithCode2AndAMessage) {
  const auto result = run_server(GetParam().value);

  EXPECT_EQ(result.status, ExitStatus::exit_code(2)) << result.output;
  EXPECT_FALSE(result.output.empty());
}

INSTANTIATE_TEST_SUITE_P(Values, InvalidFlagTest,
                         testing::Values(Flags{"ThreadsZero", {"--threads", "0"}},
                                         Flags{"ListenNonsense", {"--listen", "nonsense"}},
                                         Flags{"ListenPortTooLarge",
                                               {"--listen", "127.0.0.1:70000"}},
                                         Flags{"PoolSizeNotANumber", {"--pool-size", "abc"}},
                                         Flags{"BodyLimitNegative", {"--body-limit", "-1"}},
                                         Flags{"LogLevelUnknown", {"--log-level", "loud"}},
                                         Flags{"IdleTimeoutZero", {"--idle-timeout", "0"}},
                                         Flags{"DatabaseUrlEmpty", {"--database-url", ""}},
                                         Flags{"UnknownFlag", {"--no-such-flag"}}),
                         ParamName());

TEST(CommandLineTest, InvalidValueFromTheEnvironmentExitsWithCode2) {
  const auto result = run_server({}, {{"THREADS", "0"}});

  EXPECT_EQ(result.status, ExitStatus::exit_code(2)) << result.output;
  EXPECT_NE(result.output.find("THREADS"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace attempts::integration
