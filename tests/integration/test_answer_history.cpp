// The answer history (issue 29) through the real server and PostgreSQL: a start, every save and
// a submit are on the record in order, read newest first a page at a time or as of an instant;
// writes that queued together are one record that says how many writes it stands for; only the
// attempt's student reads it; --history off writes nothing and says so; the weekly partitions
// are made ahead and old weeks dropped whole.
//
// Attempt ids used here: 9900..9949 (and attempts started in the test).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

json body_of(const HttpResponse& response) {
  return json::parse(response.body);
}

std::string history_target(std::int64_t id, const std::string& query = "") {
  return "/attempts/" + std::to_string(id) + "/history" + query;
}

std::string numbered(int value) {
  return R"({"1":[)" + std::to_string(value) + "]}";
}

class AnswerHistoryTest : public testing::Test {
 protected:
  ServerSettings with_auth(std::vector<std::string> more = {}) const {
    std::vector<std::string> flags = {"--auth", "jwt", "--jwks", jwks_.path()};
    flags.insert(flags.end(), more.begin(), more.end());
    return ServerSettings::with_flags(flags);
  }

  std::int64_t records_of(std::int64_t id) const {
    pqxx::connection connection(db_.url());
    pqxx::nontransaction tx(connection);
    return tx.exec_params1("SELECT count(*) FROM answer_history WHERE attempt_id = $1", id)[0]
        .as<std::int64_t>();
  }

  Database db_;
  TestJwks jwks_;
};

TEST_F(AnswerHistoryTest, AStartEverySaveAndTheSubmitAreOnTheRecordNewestFirst) {
  constexpr std::int64_t kStudent = 19901;
  ServerProcess server(with_auth());
  HttpClient client(server.port());
  const std::string token = token_for(kStudent);
  const auto started = client.request(with_token({"POST", "/exams/3/attempts", {}, ""}, token));
  ASSERT_EQ(started.status, 201) << started;
  const std::int64_t id = body_of(started)["id"];
  for (int value = 1; value <= 3; ++value) {
    const std::string body = R"({"answers":)" + numbered(value) +
                             (value == 2 ? std::string(R"(,"revision":7})") : std::string("}"));
    ASSERT_EQ(client.request(with_token(patch_request(attempt_target(id), body), token)).status,
              204);
  }
  ASSERT_EQ(client
                .request(with_token({"POST", "/attempts/" + std::to_string(id) + "/submit", {}, ""},
                                    token))
                .status,
            200);

  const auto read = client.request(with_token(get_request(history_target(id)), token));
  ASSERT_EQ(read.status, 200) << read;
  EXPECT_EQ(read.header("cache-control"), std::optional<std::string>("no-store"));
  const json page = body_of(read);
  EXPECT_EQ(page["id"], id);
  EXPECT_EQ(page["saves"], 3);
  EXPECT_EQ(page["next"], nullptr);
  const json& entries = page["entries"];
  ASSERT_EQ(entries.size(), 5u) << page.dump();
  const std::vector<std::string> kinds = {"submit", "save", "save", "save", "start"};
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i]["seq"], 4 - static_cast<int>(i)) << page.dump();
    EXPECT_EQ(entries[i]["kind"], kinds[i]);
    EXPECT_EQ(entries[i]["writes"], 1);
    if (i > 0) {
      EXPECT_GT(entries[i - 1]["written_at"], entries[i]["written_at"]);
    }
  }
  EXPECT_EQ(entries[0]["answers"], json::parse(numbered(3)));  // the final answers
  EXPECT_EQ(entries[1]["answers"], json::parse(numbered(3)));
  EXPECT_EQ(entries[2]["revision"], 7);
  EXPECT_EQ(entries[3]["revision"], nullptr);
  EXPECT_EQ(entries[4]["answers"], json::object());
  // HEAD: the same status, no body.
  EXPECT_EQ(client.request(with_token({"HEAD", history_target(id), {}, ""}, token)).status, 200);
}

TEST_F(AnswerHistoryTest, PagesFollowTheCursorDownToTheFirstSave) {
  constexpr std::int64_t kId = 9901;
  db_.reset_attempts(kId, kId);
  ServerProcess server(with_auth());
  HttpClient client(server.port());
  const std::string token = token_for(owner_of(kId));
  constexpr int kSaves = 120;
  for (int value = 1; value <= kSaves; ++value) {
    ASSERT_EQ(client
                  .request(with_token(
                      patch_request(attempt_target(kId), answers_body(numbered(value))), token))
                  .status,
              204);
  }
  std::vector<std::int64_t> seen;
  std::string target = history_target(kId, "?limit=50");
  for (int page = 0; page < 10 && !target.empty(); ++page) {
    const auto read = client.request(with_token(get_request(target), token));
    ASSERT_EQ(read.status, 200) << read;
    const json body = body_of(read);
    for (const auto& entry : body["entries"]) {
      seen.push_back(entry["seq"]);
      EXPECT_EQ(entry["answers"], json::parse(numbered(entry["seq"].get<int>())));
    }
    target = body["next"].is_null() ? std::string() : body["next"].get<std::string>();
  }
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kSaves));
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], kSaves - static_cast<int>(i));
}

TEST_F(AnswerHistoryTest, AnInstantGivesTheAnswersInForceThen) {
  constexpr std::int64_t kId = 9902;
  db_.reset_attempts(kId, kId);
  ServerProcess server(with_auth());
  HttpClient client(server.port());
  const std::string token = token_for(owner_of(kId));
  for (int value = 1; value <= 3; ++value) {
    ASSERT_EQ(client
                  .request(with_token(
                      patch_request(attempt_target(kId), answers_body(numbered(value))), token))
                  .status,
              204);
    std::this_thread::sleep_for(milliseconds(20));
  }
  const json page = body_of(client.request(with_token(get_request(history_target(kId)), token)));
  ASSERT_EQ(page["entries"].size(), 3u);
  // Each entry's own time, and a time between two writes, as RFC 3339 with a + offset.
  const std::string second = page["entries"][1]["written_at"];  // seq 2
  const auto at = [&](const std::string& instant) {
    std::string encoded;
    for (const char c : instant) encoded += c == '+' ? std::string("%2B") : std::string(1, c);
    return body_of(
        client.request(with_token(get_request(history_target(kId, "?at=" + encoded)), token)));
  };
  EXPECT_EQ(at(second)["entry"]["seq"], 2);
  EXPECT_EQ(at(second)["answers"], json::parse(numbered(2)));
  EXPECT_EQ(at(page["entries"][0]["written_at"])["entry"]["seq"], 3);
  const json before_all = at("2001-01-01T00:00:00Z");
  EXPECT_EQ(before_all["entry"], nullptr);
  EXPECT_EQ(before_all["answers"], json::object());
  EXPECT_EQ(at("2999-01-01T00:00:00+01:00")["entry"]["seq"], 3);
}

TEST_F(AnswerHistoryTest, OnlyItsStudentReadsItAndBadQueriesAre400) {
  constexpr std::int64_t kId = 9903;
  db_.reset_attempts(kId, kId);
  ServerProcess server(with_auth());
  HttpClient client(server.port());
  const std::string owner = token_for(owner_of(kId));
  ASSERT_EQ(
      client
          .request(with_token(patch_request(attempt_target(kId), answers_body(numbered(1))), owner))
          .status,
      204);
  const auto other =
      client.request(with_token(get_request(history_target(kId)), token_for(owner_of(kId) + 1)));
  EXPECT_TRUE(IsJsonError(other, 404)) << other;
  EXPECT_EQ(other.body.find("answers"), std::string::npos) << "a 404 reveals nothing of it";
  EXPECT_TRUE(
      IsJsonError(client.request(with_token(get_request(history_target(5'000'000)), owner)), 404));
  EXPECT_EQ(client.request(get_request(history_target(kId))).status, 401);
  for (const std::string query : {"?limit=0", "?limit=201", "?before=x", "?page=2",
                                  "?at=2026-12-07", "?at=2026-12-07T10:00:00Z&limit=3"}) {
    const auto response =
        client.request(with_token(get_request(history_target(kId, query)), owner));
    EXPECT_TRUE(IsJsonError(response, 400)) << query << ": " << response;
  }
  const auto patch = client.request(with_token(patch_request(history_target(kId), "{}"), owner));
  EXPECT_EQ(patch.status, 405);
  EXPECT_EQ(patch.header("allow"), std::optional<std::string>("GET, HEAD"));
}

// Writes of one student to one attempt that queue while its statement waits (here for a row lock
// another session holds) go out as one row: one record, standing for all of them, with the last
// one's answers. Each was told 204.
TEST_F(AnswerHistoryTest, WritesThatQueuedTogetherAreOneRecordThatSaysHowManyItStandsFor) {
  constexpr std::int64_t kId = 9904;
  constexpr int kQueued = 5;
  db_.reset_attempts(kId, kId);
  ServerProcess server(with_auth({"--threads", "1", "--pool-size", "1"}));
  const std::string token = token_for(owner_of(kId));
  std::vector<std::unique_ptr<HttpClient>> clients;
  {
    AttemptLock lock(db_, kId);
    clients.push_back(std::make_unique<HttpClient>(server.port(), seconds(20)));
    clients.back()->send(
        with_token(patch_request(attempt_target(kId), answers_body(numbered(0))), token));
    ASSERT_TRUE(db_.wait_for_lock_waiters(1, seconds(5)));
    for (int i = 1; i <= kQueued; ++i) {
      clients.push_back(std::make_unique<HttpClient>(server.port(), seconds(20)));
      clients.back()->send(
          with_token(patch_request(attempt_target(kId), answers_body(numbered(i))), token));
    }
    const auto until = std::chrono::steady_clock::now() + seconds(5);
    while (std::chrono::steady_clock::now() < until &&
           metric(server.port(), "attempts_db_queue_depth{connection=\"0\"}") < kQueued) {
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  for (auto& client : clients) EXPECT_EQ(client->read_response().status, 204);
  HttpClient reader(server.port());
  const json page = body_of(reader.request(with_token(get_request(history_target(kId)), token)));
  ASSERT_EQ(page["entries"].size(), 2u) << page.dump();
  EXPECT_EQ(page["entries"][0]["writes"], kQueued);
  EXPECT_EQ(page["entries"][0]["answers"], json::parse(numbered(kQueued)));
  EXPECT_EQ(page["entries"][1]["writes"], 1);
  EXPECT_EQ(page["saves"], 2);
}

TEST_F(AnswerHistoryTest, WithHistoryOffNothingIsRecordedAndTheRouteSaysSo) {
  constexpr std::int64_t kStudent = 19905;
  ServerProcess server(with_auth({"--history", "off"}));
  HttpClient client(server.port());
  const std::string token = token_for(kStudent);
  const auto started = client.request(with_token({"POST", "/exams/3/attempts", {}, ""}, token));
  ASSERT_EQ(started.status, 201);
  const std::int64_t id = body_of(started)["id"];
  ASSERT_EQ(
      client
          .request(with_token(patch_request(attempt_target(id), answers_body(numbered(1))), token))
          .status,
      204);
  ASSERT_EQ(client
                .request(with_token({"POST", "/attempts/" + std::to_string(id) + "/submit", {}, ""},
                                    token))
                .status,
            200);
  EXPECT_EQ(records_of(id), 0);
  const auto read = client.request(with_token(get_request(history_target(id)), token));
  EXPECT_TRUE(IsJsonError(read, 404)) << read;
  EXPECT_NE(read.body.find("--history off"), std::string::npos) << read;
  EXPECT_EQ(server.log().find("answer history"), std::string::npos)
      << "maintenance ran with history off";
}

// answer_history_maintain(): the weeks ahead are made, and a week that ended past the retention
// is dropped whole, with its rows; the current weeks stay.
TEST_F(AnswerHistoryTest, MaintenanceMakesTheWeeksAheadAndDropsOldWeeksWhole) {
  pqxx::connection connection(db_.url());
  pqxx::nontransaction tx(connection);
  tx.exec(
      "CREATE TABLE IF NOT EXISTS answer_history_2001w01 PARTITION OF answer_history "
      "FOR VALUES FROM ('2001-01-01 00:00+00') TO ('2001-01-08 00:00+00')");
  tx.exec(
      "INSERT INTO answer_history (attempt_id, seq, written_at, kind, student_id, answers) "
      "VALUES (9906, 1, '2001-01-02 10:00+00', 's', 9906, '{}')");
  const auto ahead = tx.exec1("SELECT answer_history_maintain(30, 6)")[0].as<int>();
  EXPECT_EQ(ahead, 6);
  EXPECT_TRUE(tx.exec1("SELECT to_regclass('answer_history_2001w01') IS NULL")[0].as<bool>())
      << "the old week was kept";
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM answer_history WHERE attempt_id = 9906")[0].as<int>(),
            0);
  // This week and the six after it have their partition, as attempts' persistence has it.
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                     "WHERE i.inhparent = 'answer_history'::regclass AND c.relpersistence = "
                     "(SELECT relpersistence FROM pg_class WHERE oid = 'attempts'::regclass)")[0]
                .as<int>(),
            tx.exec1("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                     "'answer_history'::regclass")[0]
                .as<int>());
  ServerProcess server(with_auth());
  const auto until = std::chrono::steady_clock::now() + seconds(10);
  while (std::chrono::steady_clock::now() < until &&
         metric(server.port(), "attempts_history_maintenance_runs_total") < 1) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(metric(server.port(), "attempts_history_maintenance_failures_total"), 0);
  EXPECT_GE(metric(server.port(), "attempts_history_partitions_ahead"), 4);
}

}  // namespace
}  // namespace attempts::integration
