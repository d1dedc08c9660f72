// GET /exams/{id}/attempts (issue 30) through the real server and PostgreSQL: the CSV parses
// back (libcsv, not string comparison) to what the NDJSON says; the filters; one snapshot while
// saves to the exam run (every row as of one instant); a client that leaves mid-export frees its
// staff connection, and --max-exports is held to with 429. Timing is the benchmark's
// (scripts/bench-export.sh), not these tests'.
//
// Each test makes its own exam (support/staff_exports.hpp), with students from 930001 up.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/staff_exports.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string export_target(std::int64_t exam, const std::string& query = "") {
  return "/exams/" + std::to_string(exam) + "/attempts" + query;
}

HttpResponse export_of(std::uint16_t port, const std::string& target, const std::string& token,
                       const std::string& accept = "") {
  HttpRequest request = with_token(get_request(target), token);
  if (!accept.empty()) request.headers.emplace_back("Accept", accept);
  return HttpClient(port, milliseconds(30000)).request(request);
}

std::string save_body(std::int64_t value, std::int64_t revision) {
  return R"({"answers":{"1":[)" + std::to_string(value) + R"(]},"revision":)" +
         std::to_string(revision) + "}";
}

class ExportTest : public testing::Test {
 protected:
  void start(std::vector<std::string> more = {}) {
    server_.emplace(ServerSettings::with_flags(staff_server_flags(jwks_, std::move(more))));
  }
  std::uint16_t port() const { return server_->port(); }

  Database db_;
  TestJwks jwks_;
  std::optional<ServerProcess> server_;
  const std::string teacher_ = staff_token("export-teacher");
};

TEST_F(ExportTest, CsvParsesBackToWhatNdjsonSays) {
  start();
  const TestExam exam = make_exam(db_, 300, 930001, "export-teacher", 40);
  // Variety: saves through the server (revision, updated_at, saves), a submit, a deadline.
  for (std::int64_t i = 0; i < 30; ++i) {
    const auto id = exam.first_attempt + i;
    for (int save = 1; save <= 1 + i % 3; ++save) {
      ASSERT_EQ(HttpClient(port())
                    .request(with_token(patch_request(attempt_target(id), save_body(save, save)),
                                        token_for(930001 + i)))
                    .status,
                204);
    }
  }
  db_.mark_submitted(exam.first_attempt + 1);
  {
    pqxx::connection connection(db_.url());
    pqxx::work tx(connection);
    tx.exec_params("UPDATE attempts SET deadline = now() + interval '1 hour' WHERE id = $1",
                   exam.first_attempt + 2);
    tx.commit();
  }
  const HttpResponse ndjson = export_of(port(), export_target(exam.id), teacher_);
  ASSERT_EQ(ndjson.status, 200) << ndjson.body;
  EXPECT_EQ(ndjson.header("Content-Type"), "application/x-ndjson");
  EXPECT_EQ(ndjson.header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(ndjson.header("Cache-Control"), "no-store");
  const HttpResponse csv = export_of(port(), export_target(exam.id), teacher_, "text/csv");
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_EQ(csv.header("Content-Type"), "text/csv; charset=utf-8; header=present");

  const auto rows = parse_ndjson(ndjson.body);
  const auto records = parse_csv(csv.body);
  ASSERT_EQ(rows.size(), 300u);
  ASSERT_EQ(records.size(), 301u);
  const std::vector<std::string> header = {"id",           "student_id", "answers",
                                           "revision",     "started_at", "updated_at",
                                           "submitted_at", "deadline",   "saves"};
  EXPECT_EQ(records[0], header);
  std::map<std::int64_t, json> by_id;
  for (const auto& row : rows) by_id[row["id"].get<std::int64_t>()] = row;
  ASSERT_EQ(by_id.size(), 300u);
  const auto text_or_empty = [](const json& value) {
    return value.is_null() ? std::string() : value.get<std::string>();
  };
  for (std::size_t r = 1; r < records.size(); ++r) {
    const auto& record = records[r];
    ASSERT_EQ(record.size(), header.size()) << r;
    const auto found = by_id.find(std::stoll(record[0]));
    ASSERT_NE(found, by_id.end()) << record[0];
    const json& row = found->second;
    EXPECT_EQ(std::stoll(record[1]), row["student_id"].get<std::int64_t>());
    EXPECT_EQ(json::parse(record[2]), row["answers"]) << record[2];
    EXPECT_EQ(std::stoll(record[3]), row["revision"].get<std::int64_t>());
    EXPECT_EQ(record[4], row["started_at"].get<std::string>());
    EXPECT_EQ(record[5], text_or_empty(row["updated_at"]));
    EXPECT_EQ(record[6], text_or_empty(row["submitted_at"]));
    EXPECT_EQ(record[7], text_or_empty(row["deadline"]));
    EXPECT_EQ(std::stoll(record[8]), row["saves"].get<std::int64_t>());
    by_id.erase(found);
  }
  EXPECT_TRUE(by_id.empty());
  // What the table holds, row by row.
  for (const auto& row : rows) {
    const std::int64_t i = row["id"].get<std::int64_t>() - exam.first_attempt;
    const std::int64_t saves = i < 30 ? 1 + i % 3 : 0;
    EXPECT_EQ(row["saves"], saves) << i;
    EXPECT_EQ(row["revision"], saves) << i;
    EXPECT_EQ(row["updated_at"].is_null(), saves == 0) << i;
    EXPECT_EQ(row["submitted_at"].is_null(), i != 1) << i;
    EXPECT_EQ(row["deadline"].is_null(), i != 2) << i;
    EXPECT_EQ(json::parse(db_.answers_text(row["id"].get<std::int64_t>())), row["answers"]) << i;
  }
}

TEST_F(ExportTest, FiltersBySubmittedAndUpdatedSince) {
  start();
  const TestExam exam = make_exam(db_, 20, 931001, "export-teacher");
  for (std::int64_t i = 0; i < 5; ++i) db_.mark_submitted(exam.first_attempt + i);
  std::string since;
  {
    pqxx::connection connection(db_.url());
    pqxx::nontransaction tx(connection);
    since = tx.exec1("SELECT to_jsonb(now()) #>> '{}'")[0].as<std::string>();
  }
  for (std::int64_t i = 3; i < 8; ++i) {
    ASSERT_EQ(HttpClient(port())
                  .request(with_token(
                      patch_request(attempt_target(exam.first_attempt + i), save_body(1, 1)),
                      token_for(931001 + i)))
                  .status,
              i < 5 ? 409 : 204);  // 3 and 4 are submitted
  }
  const auto count = [&](const std::string& query) {
    const HttpResponse response = export_of(port(), export_target(exam.id, query), teacher_);
    EXPECT_EQ(response.status, 200) << query << ": " << response.body;
    return parse_ndjson(response.body).size();
  };
  EXPECT_EQ(count(""), 20u);
  EXPECT_EQ(count("?submitted=true"), 5u);
  EXPECT_EQ(count("?submitted=false"), 15u);
  // The + of the offset written %2B, as a query needs.
  std::string encoded = since;
  if (const auto plus = encoded.rfind('+'); plus != std::string::npos) {
    encoded.replace(plus, 1, "%2B");
  }
  EXPECT_EQ(count("?updated_since=" + encoded), 3u);
  EXPECT_EQ(count("?updated_since=" + encoded + "&submitted=false"), 3u);
  EXPECT_EQ(count("?updated_since=" + encoded + "&submitted=true"), 0u);
  EXPECT_EQ(export_of(port(), export_target(exam.id, "?submitted=maybe"), teacher_).status, 400);
  EXPECT_EQ(export_of(port(), export_target(exam.id), teacher_, "application/json").status, 406);
}

// Writers save to their own attempts one at a time (each waits for its 204), with growing
// values, while a slow client reads the export. Commits of one writer are then ordered, and a
// snapshot holds a prefix of each writer's saves: every exported row of a writer must be the
// last save up to the highest value of that writer in the export. And one instant must lie
// after every writer's last visible save was sent and before its next was acknowledged.
TEST_F(ExportTest, AnExportWhileSavesRunIsOneSnapshot) {
  start();
  constexpr int kWriters = 4;
  constexpr int kPerWriter = 10;
  constexpr std::int64_t kFiller = 3000;
  constexpr std::int64_t kFirstStudent = 932001;
  const TestExam exam =
      make_exam(db_, kFiller + kWriters * kPerWriter, kFirstStudent, "export-teacher", 2000);
  const auto attempt_of = [&](int writer, std::int64_t value) {
    return exam.first_attempt + kFiller + writer * kPerWriter + value % kPerWriter;
  };
  struct Save {
    Clock::time_point sent;
    Clock::time_point acknowledged;
  };
  std::vector<std::vector<Save>> saves(kWriters);  // [writer][value - 1]
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      HttpClient client(port());
      const auto give_up = Clock::now() + std::chrono::seconds(60);
      for (std::int64_t value = 1; !stop && value <= 100000 && Clock::now() < give_up; ++value) {
        const std::int64_t id = attempt_of(w, value);
        const Save sent{Clock::now(), {}};
        const auto response =
            client.request(with_token(patch_request(attempt_target(id), save_body(value, value)),
                                      token_for(kFirstStudent + (id - exam.first_attempt))));
        if (response.status != 204) {
          ++failures;
          return;
        }
        saves[w].push_back({sent.sent, Clock::now()});
      }
    });
  }
  // Let every writer get going, then read the export slowly, so that it spans many saves.
  for (auto wait = Clock::now() + std::chrono::seconds(10);
       Clock::now() < wait && failures == 0 &&
       metric(port(), "attempts_db_rows_committed_total") < 200;) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  const auto export_started = Clock::now();
  const RawResponse streamed = read_slowly(
      port(), export_target(exam.id), teacher_,
      {.receive_buffer = 8192, .read_size = 8192, .pause = std::chrono::microseconds(1500)});
  const auto export_ended = Clock::now();
  stop = true;
  for (auto& writer : writers) writer.join();
  ASSERT_EQ(failures, 0);
  ASSERT_EQ(streamed.status, 200) << streamed.head;
  ASSERT_TRUE(streamed.complete);
  const auto rows = parse_ndjson(dechunk(streamed.body));
  ASSERT_EQ(static_cast<std::int64_t>(rows.size()), exam.count);

  // Saves acknowledged while the export was read: the test is not vacuous.
  int during = 0;
  for (const auto& writer : saves) {
    for (const auto& save : writer) {
      during += save.acknowledged > export_started && save.acknowledged < export_ended;
    }
  }
  EXPECT_GE(during, 40) << "too few saves ran beside the export";

  std::map<std::int64_t, json> by_id;
  for (const auto& row : rows) by_id[row["id"].get<std::int64_t>()] = row;
  Clock::time_point latest_visible_sent = Clock::time_point::min();
  Clock::time_point earliest_invisible_acknowledged = Clock::time_point::max();
  for (int w = 0; w < kWriters; ++w) {
    std::int64_t highest = 0;  // the highest value of this writer the export shows
    for (int i = 0; i < kPerWriter; ++i) {
      const json& row = by_id.at(exam.first_attempt + kFiller + w * kPerWriter + i);
      highest = std::max(highest, row["revision"].get<std::int64_t>());
    }
    for (int i = 0; i < kPerWriter; ++i) {
      const std::int64_t id = exam.first_attempt + kFiller + w * kPerWriter + i;
      const json& row = by_id.at(id);
      // The last value up to `highest` that went to this attempt, and how many did.
      std::int64_t last = 0;
      std::int64_t count = 0;
      for (std::int64_t value = 1; value <= highest; ++value) {
        if (attempt_of(w, value) == id) {
          last = value;
          ++count;
        }
      }
      EXPECT_EQ(row["revision"], last) << "writer " << w << " attempt " << id;
      EXPECT_EQ(row["saves"], count) << "writer " << w << " attempt " << id;
      if (last > 0) {
        EXPECT_EQ(row["answers"], json::parse(R"({"1":[)" + std::to_string(last) + "]}"));
      }
    }
    if (highest > 0)
      latest_visible_sent = std::max(latest_visible_sent, saves[w][highest - 1].sent);
    if (highest < static_cast<std::int64_t>(saves[w].size())) {
      earliest_invisible_acknowledged =
          std::min(earliest_invisible_acknowledged, saves[w][highest].acknowledged);
    }
  }
  // One instant: after every visible save was sent, before any invisible one was acknowledged.
  EXPECT_LT(latest_visible_sent, earliest_invisible_acknowledged);
}

TEST_F(ExportTest, AClientThatLeavesMidExportFreesItsConnection) {
  start({"--staff-connections", "1", "--max-exports", "1"});
  const TestExam exam = make_exam(db_, 20000, 940001, "export-teacher", 1000);
  const std::string target = export_target(exam.id);
  std::atomic<bool> reading{false};
  RawResponse left;
  std::thread leaver([&] {
    reading = true;
    left = read_slowly(port(), target, teacher_,
                       {.receive_buffer = 4096,
                        .read_size = 4096,
                        .pause = milliseconds(10),
                        .stop_after = 256 * 1024});
  });
  // While it runs, the one export allowed is taken, on the one staff connection.
  for (const auto started = Clock::now() + std::chrono::seconds(10);
       Clock::now() < started &&
       (!reading || metric(port(), "attempts_exports_running") < 1 ||
        metric(port(), "attempts_staff_connections{state=\"busy\"}") < 1);) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(metric(port(), "attempts_staff_connections{state=\"busy\"}"), 1);
  const HttpResponse refused = export_of(port(), target, teacher_);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.header("Retry-After"), "1");
  leaver.join();
  ASSERT_EQ(left.status, 200);
  EXPECT_FALSE(left.complete);

  // Gone: the export is aborted, its transaction ended and its connection idle again.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline && (metric(port(), "attempts_exports_aborted_total") < 1 ||
                                     metric(port(), "attempts_exports_running") != 0)) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(metric(port(), "attempts_exports_aborted_total"), 1);
  EXPECT_EQ(metric(port(), "attempts_exports_running"), 0);
  EXPECT_EQ(metric(port(), "attempts_staff_connections{state=\"busy\"}"), 0);
  EXPECT_EQ(metric(port(), "attempts_staff_connections{state=\"idle\"}"), 1);
  {
    pqxx::connection connection(db_.url());
    pqxx::nontransaction tx(connection);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                       "'attempts-server staff reader' AND state <> 'idle'")[0]
                  .as<int>(),
              0);
  }
  // The next export is served whole.
  const HttpResponse next = export_of(port(), target, teacher_);
  ASSERT_EQ(next.status, 200);
  EXPECT_EQ(parse_ndjson(next.body).size(), 20000u);
  EXPECT_EQ(metric(port(), "attempts_exports_finished_total"), 1);
  EXPECT_EQ(metric(port(), "attempts_exports_refused_total"), 1);
}

TEST_F(ExportTest, HeadSaysWhatAGetWouldStreamAndTheConnectionGoesOn) {
  start();
  const TestExam exam = make_exam(db_, 5, 945001, "export-teacher");
  HttpClient client(port());
  HttpRequest head = with_token(get_request(export_target(exam.id)), teacher_);
  head.method = "HEAD";
  head.headers.emplace_back("Accept", "text/csv");
  client.send(head);
  const HttpResponse response = client.read_response(/*head_request=*/true);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.header("Content-Type"), "text/csv; charset=utf-8; header=present");
  EXPECT_EQ(response.body, "");
  // The same connection answers the next request.
  const auto next = client.request(with_token(get_request(export_target(exam.id)), teacher_));
  EXPECT_EQ(parse_ndjson(next.body).size(), 5u);
}

TEST_F(ExportTest, WithoutHistoryTheSavesCountStaysZero) {
  start({"--history", "off"});
  const TestExam exam = make_exam(db_, 2, 946001, "export-teacher");
  ASSERT_EQ(
      HttpClient(port())
          .request(with_token(patch_request(attempt_target(exam.first_attempt), save_body(3, 3)),
                              token_for(946001)))
          .status,
      204);
  const auto rows = parse_ndjson(export_of(port(), export_target(exam.id), teacher_).body);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) EXPECT_EQ(row["saves"], 0);
}

}  // namespace
}  // namespace attempts::integration
