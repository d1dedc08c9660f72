// Students own their attempts: bearer tokens, ownership checked inside the write, the attempt
// lifecycle (start, save, submit, deadline) and key rotation, against a real server and
// PostgreSQL. The verifier's own rules are unit-tested (tests/unit/test_token_verifier.cpp);
// here each kind of rejection is checked once end to end.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

json body_of(const HttpResponse& response) {
  return json::parse(response.body);
}

// The server with tokens required, verifying against `jwks`.
ServerSettings with_auth(const TestJwks& jwks, std::vector<std::string> more = {}) {
  std::vector<std::string> flags = {"--auth", "jwt", "--jwks", jwks.path()};
  flags.insert(flags.end(), more.begin(), more.end());
  return ServerSettings::with_flags(flags);
}

// A student no earlier run has used, so the suite can run again on the same database.
std::int64_t fresh_student() {
  // Microseconds since the epoch: distinct across the test processes ctest starts one by one.
  static std::int64_t next = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  return next++;
}

// `token` as an unsigned JWS: its signature part removed, the dot kept.
std::string unsigned_token(const std::string& token) {
  return token.substr(0, token.rfind('.') + 1);
}

class AuthTest : public testing::Test {
 protected:
  // A new exam whose attempts last `duration_seconds`.
  std::int64_t timed_exam(int duration_seconds) const {
    pqxx::connection connection(db_.url());
    pqxx::work tx(connection);
    const auto id = tx.exec_params1(
                          "INSERT INTO exams (title, duration_seconds) VALUES ('Timed', $1) "
                          "RETURNING id",
                          duration_seconds)[0]
                        .as<std::int64_t>();
    tx.commit();
    return id;
  }

  Database db_;
  TestJwks jwks_;
};

// ---- who is calling -------------------------------------------------------------------------

TEST_F(AuthTest, WithoutATokenEveryAttemptRouteIs401WithABareBearerChallenge) {
  ServerProcess server(with_auth(jwks_));
  HttpClient client(server.port());
  const std::vector<HttpRequest> requests = {
      get_request(attempt_target(1)),
      patch_request(attempt_target(1), answers_body(R"({"1":[1]})")),
      {"POST", "/attempts/1/submit", {}, ""},
      {"POST", "/exams/1/attempts", {}, ""},
  };
  for (const auto& request : requests) {
    const auto response = client.request(request);
    EXPECT_EQ(response.status, 401) << request.method << " " << request.target << ": " << response;
    EXPECT_EQ(response.header("www-authenticate"), "Bearer") << response;
    EXPECT_TRUE(body_of(response).contains("error"));
  }
  // Probes and metrics need no token.
  EXPECT_EQ(client.request(get_request("/healthz")).status, 200);
  EXPECT_EQ(client.request(get_request("/readyz")).status, 200);
  EXPECT_EQ(client.request(get_request("/metrics")).status, 200);
  EXPECT_EQ(metric(server.port(), "attempts_auth_rejections_total{reason=\"missing\"}"), 4);
}

TEST_F(AuthTest, EachKindOfBadTokenIs401InvalidTokenAndChangesNothing) {
  constexpr std::int64_t kId = 9600;
  db_.reset_attempts(kId, kId);
  ServerProcess server(with_auth(jwks_, {"--jwt-issuer", "https://id.example"}));
  const std::int64_t owner = owner_of(kId);
  const json issuer = {{"iss", "https://id.example"}};
  const std::string good = token_for(owner, "test-es256", issuer);
  std::string tampered = good;
  tampered[tampered.find('.') + 3] = tampered[tampered.find('.') + 3] == 'A' ? 'B' : 'A';
  struct Case {
    std::string name;
    std::string token;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"alg none", token_for(owner, "test-hs256", issuer, {{"alg", "none"}}), "algorithm_none"},
      {"unsigned, alg NoNe",
       unsigned_token(token_for(owner, "test-hs256", issuer, {{"alg", "NoNe"}})), "algorithm_none"},
      {"tampered payload", tampered, "bad_signature"},
      {"expired",
       token_for(owner, "test-rs256", {{"iss", "https://id.example"}, {"exp", unix_now() - 600}}),
       "expired"},
      {"unknown kid", token_for(owner, "test-hs256", issuer, {{"kid", "somebody-else"}}),
       "unknown_key"},
      {"RS256 key, HS256 token", token_for(owner, "test-hs256", issuer, {{"kid", "test-rs256"}}),
       "algorithm_mismatch"},
      {"wrong issuer", token_for(owner, "test-eddsa", {{"iss", "https://evil.example"}}),
       "wrong_issuer"},
      {"not token68", "eyJ!.eyJ.sig", "malformed"},
      {"not base64url", "a.b.c", "bad_base64url"},
      {"too large", std::string(8000, 'a') + "." + std::string(10, 'b') + ".c", "too_large"},
  };
  HttpClient client(server.port());
  std::map<std::string, int> counted;  // per reason, so far
  for (const auto& c : cases) {
    const auto response = client.request(
        with_token(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})")), c.token));
    EXPECT_EQ(response.status, 401) << c.name << ": " << response;
    const auto challenge = response.header("www-authenticate").value_or("");
    EXPECT_EQ(challenge.rfind("Bearer error=\"invalid_token\", error_description=\"", 0), 0u)
        << c.name << ": " << challenge;
    EXPECT_EQ(metric(server.port(), "attempts_auth_rejections_total{reason=\"" + c.reason + "\"}"),
              ++counted[c.reason])
        << c.name;
  }
  EXPECT_EQ(db_.read_attempt(kId)->updated_at, std::nullopt);
  // The good one works, and the second time comes from the cache.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(client
                  .request(with_token(
                      patch_request(attempt_target(kId), answers_body(R"({"1":[2]})")), good))
                  .status,
              204);
  }
  EXPECT_GE(metric(server.port(), "attempts_auth_token_cache_hits_total"), 1);
}

TEST_F(AuthTest, ARefusedTokenGetsItsAnswerInsteadOf100Continue) {
  ServerProcess server(with_auth(jwks_));
  HttpClient client(server.port());
  client.send_raw(
      "PATCH /attempts/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Expect: 100-continue\r\nContent-Length: 20\r\n\r\n");
  const auto response = client.read_response();
  EXPECT_EQ(response.status, 401) << response;
}

// ---- ownership --------------------------------------------------------------------------------

TEST_F(AuthTest, AStudentCannotReadWriteOrSubmitAnotherStudentsAttempt) {
  constexpr std::int64_t kId = 9610;
  db_.reset_attempts(kId, kId);
  const auto before = db_.read_attempt(kId);
  ServerProcess server(with_auth(jwks_));
  HttpClient client(server.port());
  const std::string intruder = token_for(owner_of(kId) + 1);

  const auto read = client.request(with_token(get_request(attempt_target(kId)), intruder));
  const auto write = client.request(
      with_token(patch_request(attempt_target(kId), answers_body(R"({"1":[9]})")), intruder));
  const auto submit =
      client.request(with_token({"POST", "/attempts/9610/submit", {}, ""}, intruder));
  const auto missing =
      client.request(with_token(get_request(attempt_target(900'000'001)), intruder));
  for (const auto& response : {read, write, submit}) {
    EXPECT_TRUE(IsJsonError(response, 404)) << response;
    // Exactly like a missing attempt, so ids cannot be probed.
    EXPECT_EQ(body_of(response)["error"], "attempt 9610 not found");
  }
  EXPECT_TRUE(IsJsonError(missing, 404));
  EXPECT_EQ(db_.read_attempt(kId), before) << "the intruder changed the attempt";

  // Its owner can.
  const std::string owner = token_for(owner_of(kId));
  EXPECT_EQ(client
                .request(with_token(
                    patch_request(attempt_target(kId), answers_body(R"({"1":[1]})")), owner))
                .status,
            204);
  const auto mine = client.request(with_token(get_request(attempt_target(kId)), owner));
  ASSERT_EQ(mine.status, 200) << mine;
  EXPECT_EQ(body_of(mine)["student_id"], owner_of(kId));
}

// As identity providers issue them: sub is the provider's own id, and the student id comes from
// the claim --jwt-student-claim names (a JSON number here, a decimal string for the other).
TEST_F(AuthTest, TheStudentIdComesFromTheConfiguredClaim) {
  constexpr std::int64_t kId = 9615;
  db_.reset_attempts(kId, kId);
  const auto before = db_.read_attempt(kId);
  ServerProcess server(with_auth(jwks_, {"--jwt-student-claim", "student_id"}));
  HttpClient client(server.port());
  const auto save = [&](const std::string& token, const char* answers) {
    return client.request(
        with_token(patch_request(attempt_target(kId), answers_body(answers)), token));
  };
  const json uuid = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
  // The sub claim alone (the owner's id in it) no longer says who is calling.
  const auto sub_only = save(token_for(owner_of(kId)), R"({"1":[7]})");
  EXPECT_EQ(sub_only.status, 401) << sub_only;
  EXPECT_NE(sub_only.header("WWW-Authenticate").value_or("").find("error=\"invalid_token\""),
            std::string::npos);
  const auto intruder =
      save(token_for(0, "test-hs256", {{"sub", uuid}, {"student_id", owner_of(kId) + 1}}),
           R"({"1":[8]})");
  EXPECT_TRUE(IsJsonError(intruder, 404)) << intruder;
  EXPECT_EQ(db_.read_attempt(kId), before) << "a refused token changed the attempt";

  const auto by_number = save(
      token_for(0, "test-rs256", {{"sub", uuid}, {"student_id", owner_of(kId)}}), R"({"1":[1]})");
  EXPECT_EQ(by_number.status, 204) << by_number;
  const auto by_string = save(token_for(0, "test-hs256",
                                        {{"sub", "auth0|5f7c8ec7c33c6c004bbafe82"},
                                         {"student_id", std::to_string(owner_of(kId))}}),
                              R"({"1":[2]})");
  EXPECT_EQ(by_string.status, 204) << by_string;
  EXPECT_TRUE(db_.answers_equal(kId, R"({"1":[2]})")) << db_.answers_text(kId);
}

TEST_F(AuthTest, InOneBatchEachWriteIsCheckedAgainstItsOwnStudent) {
  constexpr std::int64_t kDecoy = 9620;
  db_.reset_attempts(kDecoy, kDecoy + 4);
  ServerProcess server(
      with_auth(jwks_, {"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1"}));
  AttemptLock lock(db_, kDecoy);
  HttpClient decoy(server.port());
  decoy.send(with_token(patch_request(attempt_target(kDecoy), answers_body("{}")),
                        token_for(owner_of(kDecoy))));
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, seconds(5)));
  // Queued together: owners and intruders interleaved.
  std::vector<std::pair<std::unique_ptr<HttpClient>, int>> clients;
  for (std::int64_t id = kDecoy + 1; id <= kDecoy + 4; ++id) {
    const bool own = id % 2 == 0;
    clients.emplace_back(std::make_unique<HttpClient>(server.port()), own ? 204 : 404);
    clients.back().first->send(
        with_token(patch_request(attempt_target(id), answers_body(R"({"1":[7]})")),
                   token_for(own ? owner_of(id) : owner_of(id) + 3)));
  }
  std::this_thread::sleep_for(milliseconds(200));
  lock.release();
  ASSERT_EQ(decoy.read_response().status, 204);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::int64_t id = kDecoy + 1 + static_cast<std::int64_t>(i);
    EXPECT_EQ(clients[i].first->read_response().status, clients[i].second) << "attempt " << id;
    EXPECT_EQ(db_.answers_equal(id, R"({"1":[7]})"), clients[i].second == 204) << id;
  }
}

// ---- the lifecycle ---------------------------------------------------------------------------

HttpRequest start_request(std::int64_t exam, std::optional<std::string> key = std::nullopt) {
  HttpRequest request{"POST", "/exams/" + std::to_string(exam) + "/attempts", {}, ""};
  if (key) request.headers.emplace_back("Idempotency-Key", *key);
  return request;
}

TEST_F(AuthTest, StartSaveSubmitThenSaveIs201_204_200_409) {
  const std::int64_t kStudent = fresh_student();
  ServerProcess server(with_auth(jwks_));
  HttpClient client(server.port());
  const std::string token = token_for(kStudent, "test-eddsa");

  const auto started = client.request(with_token(start_request(7), token));
  ASSERT_EQ(started.status, 201) << started;
  const json attempt = body_of(started);
  const std::int64_t id = attempt["id"];
  EXPECT_EQ(started.header("location"), "/attempts/" + std::to_string(id));
  EXPECT_EQ(attempt["exam_id"], 7);
  EXPECT_EQ(attempt["student_id"], kStudent);
  EXPECT_EQ(attempt["answers"], json::object());
  EXPECT_TRUE(attempt["deadline"].is_null());  // the seeded exams have no time limit
  EXPECT_TRUE(attempt["submitted_at"].is_null());

  for (int i = 1; i <= 3; ++i) {
    const auto saved = client.request(with_token(
        patch_request(attempt_target(id), R"({"revision":)" + std::to_string(i) +
                                              R"(,"answers":{"1":[)" + std::to_string(i) + "]}}"),
        token));
    EXPECT_EQ(saved.status, 204) << saved;
  }
  const auto submitted = client.request(
      with_token({"POST", "/attempts/" + std::to_string(id) + "/submit", {}, ""}, token));
  ASSERT_EQ(submitted.status, 200) << submitted;
  const std::string submitted_at = body_of(submitted)["submitted_at"];
  EXPECT_EQ(body_of(submitted)["answers"], json::parse(R"({"1":[3]})"));
  EXPECT_EQ(body_of(submitted)["revision"], 3);

  const auto late = client.request(
      with_token(patch_request(attempt_target(id), answers_body(R"({"1":[4]})")), token));
  EXPECT_TRUE(IsJsonError(late, 409)) << late;
  EXPECT_EQ(body_of(late)["submitted_at"], submitted_at);

  std::this_thread::sleep_for(milliseconds(20));
  const auto again = client.request(
      with_token({"POST", "/attempts/" + std::to_string(id) + "/submit", {}, ""}, token));
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(body_of(again)["submitted_at"], submitted_at) << "submitting again moved the time";
  const auto read = client.request(with_token(get_request(attempt_target(id)), token));
  EXPECT_EQ(body_of(read)["answers"], json::parse(R"({"1":[3]})"));
}

TEST_F(AuthTest, ARetriedStartWithTheSameIdempotencyKeyReturnsTheSameAttempt) {
  const std::int64_t kStudent = fresh_student();
  ServerProcess server(with_auth(jwks_));
  HttpClient client(server.port());
  const std::string token = token_for(kStudent);
  const auto first = client.request(with_token(start_request(8, "key-1"), token));
  ASSERT_EQ(first.status, 201) << first;
  EXPECT_FALSE(first.header("idempotent-replayed"));
  const auto retry = client.request(with_token(start_request(8, "key-1"), token));
  ASSERT_EQ(retry.status, 201) << retry;
  EXPECT_EQ(retry.header("idempotent-replayed"), "true");
  EXPECT_EQ(body_of(retry)["id"], body_of(first)["id"]);
  EXPECT_EQ(retry.header("location"), first.header("location"));

  const auto other_key = client.request(with_token(start_request(8, "key-2"), token));
  EXPECT_NE(body_of(other_key)["id"], body_of(first)["id"]);
  const auto no_key = client.request(with_token(start_request(8), token));
  EXPECT_NE(body_of(no_key)["id"], body_of(other_key)["id"]);
  // Another student's key of the same name is theirs alone. (A fresh student of their own:
  // kStudent + 1 is the next test's, when the tests share one process.)
  const std::int64_t kOther = fresh_student();
  const auto someone_else =
      client.request(with_token(start_request(8, "key-1"), token_for(kOther)));
  ASSERT_EQ(someone_else.status, 201);
  EXPECT_NE(body_of(someone_else)["id"], body_of(first)["id"]);
  EXPECT_EQ(body_of(someone_else)["student_id"], kOther);
  // The same key for another exam is a client error.
  const auto reused = client.request(with_token(start_request(9, "key-1"), token));
  EXPECT_TRUE(IsJsonError(reused, 422)) << reused;
  // Keys are one header of visible ASCII.
  EXPECT_TRUE(
      IsJsonError(client.request(with_token(start_request(8, std::string(256, 'k')), token)), 400));
  EXPECT_TRUE(IsJsonError(client.request(with_token(start_request(8, "has space"), token)), 400));
  // An unknown exam.
  EXPECT_TRUE(IsJsonError(client.request(with_token(start_request(999'999), token)), 404));
}

TEST_F(AuthTest, ConcurrentStartsWithOneKeyCreateOneAttempt) {
  const std::int64_t kStudent = fresh_student();
  constexpr int kClients = 8;
  ServerProcess server(with_auth(jwks_));
  const std::string token = token_for(kStudent);
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<HttpClient>(server.port()));
    clients.back()->send(with_token(start_request(10, "same-key"), token));
  }
  std::set<std::int64_t> ids;
  for (auto& client : clients) {
    const auto response = client->read_response();
    ASSERT_EQ(response.status, 201) << response;
    ids.insert(body_of(response)["id"].get<std::int64_t>());
  }
  EXPECT_EQ(ids.size(), 1u);
  pqxx::connection connection(db_.url());
  pqxx::nontransaction tx(connection);
  EXPECT_EQ(
      tx.exec_params1("SELECT count(*) FROM attempts WHERE student_id = $1", kStudent)[0].as<int>(),
      1);
}

TEST_F(AuthTest, AfterItsDeadlineAnAttemptRefusesWritesInTheStatementItself) {
  const std::int64_t kStudent = fresh_student();
  const std::int64_t exam = timed_exam(1);
  ServerProcess server(with_auth(jwks_));
  HttpClient client(server.port());
  const std::string token = token_for(kStudent);
  const auto started = client.request(with_token(start_request(exam), token));
  ASSERT_EQ(started.status, 201) << started;
  const std::int64_t id = body_of(started)["id"];
  const std::string deadline = body_of(started)["deadline"];
  EXPECT_EQ(client
                .request(with_token(patch_request(attempt_target(id), answers_body(R"({"1":[1]})")),
                                    token))
                .status,
            204);
  std::this_thread::sleep_for(milliseconds(1300));
  const auto late = client.request(
      with_token(patch_request(attempt_target(id), answers_body(R"({"1":[2]})")), token));
  EXPECT_TRUE(IsJsonError(late, 409)) << late;
  EXPECT_EQ(body_of(late)["deadline"], deadline);
  EXPECT_NE(body_of(late)["error"].get<std::string>().find(deadline), std::string::npos);
  EXPECT_TRUE(db_.answers_equal(id, R"({"1":[1]})"));
  const auto read = client.request(with_token(get_request(attempt_target(id)), token));
  EXPECT_EQ(body_of(read)["deadline"], deadline);
  // Submitting after the deadline makes final what was saved in time.
  EXPECT_EQ(client
                .request(with_token({"POST", "/attempts/" + std::to_string(id) + "/submit", {}, ""},
                                    token))
                .status,
            200);
}

// A write that waits on a row lock past the attempt's deadline is judged when it gets the row,
// not when its statement started: 409, nothing stored, and updated_at never earlier than the
// decision.
TEST_F(AuthTest, AWriteThatWaitedOnALockPastTheDeadlineIsRefused) {
  const std::int64_t kStudent = fresh_student();
  const std::int64_t exam = timed_exam(2);
  ServerProcess server(with_auth(jwks_));
  HttpClient client(server.port());
  const std::string token = token_for(kStudent);
  const auto started = client.request(with_token(start_request(exam), token));
  ASSERT_EQ(started.status, 201) << started;
  const std::int64_t id = body_of(started)["id"];
  const std::string deadline = body_of(started)["deadline"];
  ASSERT_EQ(client
                .request(with_token(patch_request(attempt_target(id), answers_body(R"({"1":[1]})")),
                                    token))
                .status,
            204);
  const auto saved = db_.read_attempt(id);

  {
    // Held (SELECT ... FOR UPDATE) until after the deadline, while the write waits for it.
    AttemptLock lock(db_, id);
    client.send(with_token(patch_request(attempt_target(id), answers_body(R"({"1":[2]})")), token));
    ASSERT_TRUE(db_.wait_for_lock_waiters(1, seconds(5)));
    std::this_thread::sleep_for(milliseconds(2500));
  }
  const auto late = client.read_response();
  EXPECT_TRUE(IsJsonError(late, 409)) << late;
  if (late.status == 409) {
    EXPECT_EQ(body_of(late)["deadline"], deadline);
  }
  EXPECT_EQ(db_.read_attempt(id), saved) << "the late write changed the attempt";
}

// ---- keys --------------------------------------------------------------------------------------

TEST_F(AuthTest, SighupRotatesKeysAndABadFileKeepsTheOldOnes) {
  constexpr std::int64_t kId = 9630;
  db_.reset_attempts(kId, kId);
  TestJwks jwks({"test-hs256"});
  ServerProcess server(with_auth(jwks));
  HttpClient client(server.port());
  const std::string old_token = token_for(owner_of(kId), "test-hs256");
  const std::string new_token = token_for(owner_of(kId), "test-rs256");
  const auto read = [&](const std::string& token) {
    return client.request(with_token(get_request(attempt_target(kId)), token)).status;
  };
  ASSERT_EQ(read(old_token), 200);
  ASSERT_EQ(read(new_token), 401);

  const auto reload = [&](const std::string& expected_log, std::size_t times) {
    server.signal(SIGHUP);
    const auto deadline = Clock::now() + seconds(5);
    std::size_t seen = 0;
    while (Clock::now() < deadline) {
      const std::string log = server.log();
      seen = 0;
      for (auto at = log.find(expected_log); at != std::string::npos;
           at = log.find(expected_log, at + 1)) {
        ++seen;
      }
      if (seen >= times) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  };
  jwks.write({"test-hs256", "test-rs256"});
  ASSERT_TRUE(reload("reloaded", 1)) << server.log();
  EXPECT_EQ(read(new_token), 200);
  EXPECT_EQ(read(old_token), 200);

  // The old key is retired: its token is refused although it was verified (and cached) before.
  jwks.write({"test-rs256"});
  ASSERT_TRUE(reload("reloaded", 2)) << server.log();
  EXPECT_EQ(read(old_token), 401);
  EXPECT_EQ(read(new_token), 200);

  // A broken file changes nothing.
  jwks.write_raw("{\"keys\": [");
  ASSERT_TRUE(reload("keeping the keys in force", 1)) << server.log();
  EXPECT_EQ(read(new_token), 200);
  EXPECT_EQ(read(old_token), 401);
  EXPECT_TRUE(server.running());
}

// ---- start-up ----------------------------------------------------------------------------------

CommandResult run_server_once(std::vector<std::string> flags) {
  SpawnOptions options;
  options.argv = {server_binary(), "--listen", "127.0.0.1:0"};
  options.argv.insert(options.argv.end(), flags.begin(), flags.end());
  for (const char* name : {"AUTH", "JWKS", "DATABASE_URL", "CONFIG"}) {
    options.env.emplace_back(name, std::nullopt);
  }
  return run_command(options, seconds(20));
}

TEST_F(AuthTest, WithoutAKeyFileTheServerRefusesToStart) {
  const auto missing = run_server_once({});
  EXPECT_EQ(missing.status, ExitStatus::exit_code(2));
  EXPECT_NE(missing.output.find("--jwks"), std::string::npos) << missing.output;
  EXPECT_NE(missing.output.find("--auth none"), std::string::npos) << missing.output;

  const auto unreadable = run_server_once({"--jwks", "/nonexistent/jwks.json"});
  EXPECT_EQ(unreadable.status, ExitStatus::exit_code(2));
  EXPECT_NE(unreadable.output.find("/nonexistent/jwks.json"), std::string::npos)
      << unreadable.output;

  TestJwks broken;
  broken.write_raw(R"({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]})");  // a 5-byte secret
  const auto weak = run_server_once({"--jwks", broken.path()});
  EXPECT_EQ(weak.status, ExitStatus::exit_code(2)) << weak.output;
}

TEST_F(AuthTest, AuthNoneMustBeChosenAndSaysSo) {
  constexpr std::int64_t kId = 9640;
  db_.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--auth", "none"}));
  EXPECT_NE(server.log().find("authentication is off"), std::string::npos) << server.log();
  HttpClient client(server.port());
  EXPECT_EQ(client.request(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})"))).status,
            204);
  // Starting an attempt then needs the student in the body.
  EXPECT_TRUE(IsJsonError(client.request(start_request(5)), 400));
  auto start = start_request(5);
  start.body = R"({"student_id": 77})";
  start.headers.emplace_back("Content-Type", "application/json");
  const auto started = client.request(start);
  ASSERT_EQ(started.status, 201) << started;
  EXPECT_EQ(body_of(started)["student_id"], 77);
}

}  // namespace
}  // namespace attempts::integration
