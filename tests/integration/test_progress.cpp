// GET /exams/{id}/progress (issue 31) through the real server and PostgreSQL: a consumer that
// applies the snapshot and then every changes event ends with exactly the exam's rows after
// random starts, saves and submits from several clients; Last-Event-ID resumes or, too old,
// gets a snapshot; the staff rules of the export; --max-progress-streams; a client that does
// not read is skipped or ended without the server buffering for it; SIGTERM ends streams with
// a clean end of body. Waits are bounded; nothing asserts a duration.
//
// Each test makes its own exam (support/staff_exports.hpp), with students from 940001 up.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/progress_reader.hpp"
#include "support/server_process.hpp"
#include "support/staff_exports.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Answers of `questions` questions.
std::string answers_of(int questions, int value) {
  std::string answers = "{";
  for (int q = 1; q <= questions; ++q) {
    if (q > 1) answers += ',';
    answers += "\"" + std::to_string(q) + "\":[" + std::to_string(value + q) + "]";
  }
  return answers + "}";
}

HttpRequest post_request(std::string target, std::string body = "") {
  HttpRequest request;
  request.method = "POST";
  request.target = std::move(target);
  request.body = std::move(body);
  if (!request.body.empty()) request.headers.emplace_back("Content-Type", "application/json");
  return request;
}

ProgressRequest progress_request(std::string token,
                                 std::optional<std::string> last_event_id = std::nullopt,
                                 std::string accept = "", int receive_buffer = 0) {
  ProgressRequest request;
  request.token = std::move(token);
  request.last_event_id = std::move(last_event_id);
  request.accept = std::move(accept);
  request.receive_buffer = receive_buffer;
  return request;
}

class ProgressTest : public testing::Test {
 protected:
  void start(std::vector<std::string> more = {}) {
    if (std::find(more.begin(), more.end(), "--progress-interval") == more.end()) {
      more.insert(more.end(), {"--progress-interval", "200"});
    }
    server_.emplace(ServerSettings::with_flags(staff_server_flags(jwks_, std::move(more))));
  }
  std::uint16_t port() const { return server_->port(); }

  // Reads events into `table` until it equals the exam's rows, or `timeout`.
  bool catch_up(ProgressReader& reader, std::map<std::int64_t, json>& table, std::int64_t exam,
                milliseconds timeout = milliseconds(20000)) {
    const auto give_up = Clock::now() + timeout;
    while (Clock::now() < give_up) {
      if (table == progress_rows_of(db_.url(), exam)) return true;
      const auto event = reader.next(milliseconds(2000));
      if (event) apply_event(table, *event);
    }
    return table == progress_rows_of(db_.url(), exam);
  }

  Database db_;
  TestJwks jwks_;
  std::optional<ServerProcess> server_;
  const std::string teacher_ = staff_token("progress-teacher");
};

TEST_F(ProgressTest, GeneratedStartsSavesAndSubmitsEndWithTheTablesRows) {
  start();
  const auto seed = std::random_device{}();
  std::printf("ProgressTest seed %u\n", seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const TestExam exam = make_exam(db_, 60, 940001, "progress-teacher");

  ProgressReader reader(port(), exam.id, progress_request(teacher_));
  ASSERT_EQ(reader.status(), 200);
  EXPECT_EQ(reader.header("Content-Type"), "text/event-stream; charset=utf-8");
  EXPECT_EQ(reader.header("Cache-Control"), "no-store");
  EXPECT_EQ(reader.header("X-Accel-Buffering"), "no");
  EXPECT_EQ(reader.header("Transfer-Encoding"), "chunked");
  const auto snapshot = reader.next();
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->type, "snapshot");
  EXPECT_EQ(snapshot->retry, "200");
  EXPECT_EQ(snapshot->data["exam_id"], exam.id);
  EXPECT_EQ(snapshot->data["attempts"].size(), 60u);
  std::map<std::int64_t, json> table;
  apply_event(table, *snapshot);
  // A second consumer takes gzip, as browsers do; it is read once the clients are done.
  ProgressRequest gzip_request = progress_request(teacher_);
  gzip_request.accept_encoding = "gzip, deflate, br";
  ProgressReader gzipped(port(), exam.id, gzip_request);
  ASSERT_EQ(gzipped.status(), 200);
  EXPECT_EQ(gzipped.header("Content-Encoding"), "gzip");
  std::map<std::int64_t, json> gzipped_table;

  // Three clients: saves of random question counts, submits, and starts by new students.
  std::atomic<int> finished{0};
  std::vector<std::thread> clients;
  for (int client = 0; client < 3; ++client) {
    clients.emplace_back([&, client] {
      std::mt19937 random(seed + static_cast<unsigned>(client));
      for (int step = 0; step < 120; ++step) {
        const int pick = static_cast<int>(random() % 20);
        const std::int64_t i = static_cast<std::int64_t>(random() % exam.count);
        const std::int64_t id = exam.first_attempt + i;
        const std::string token = token_for(940001 + i);
        HttpClient http(port());
        if (pick == 0) {
          http.request(with_token(post_request(attempt_target(id) + "/submit"), token));
        } else if (pick == 1) {
          const std::int64_t student = 945001 + client * 1000 + step;
          http.request(with_token(post_request("/exams/" + std::to_string(exam.id) + "/attempts"),
                                  token_for(student)));
        } else {
          const int questions = static_cast<int>(random() % 12);
          http.request(with_token(
              patch_request(attempt_target(id), answers_body(answers_of(questions, step))), token));
        }
        if (random() % 8 == 0) std::this_thread::sleep_for(milliseconds(random() % 150));
      }
      ++finished;
    });
  }
  // Events keep coming while the clients run: apply them as they come.
  while (finished < 3) {
    const auto event = reader.next(milliseconds(5000));
    if (!event) break;
    EXPECT_EQ(event->type, "changes");
    EXPECT_FALSE(event->retry);
    apply_event(table, *event);
  }
  for (auto& client : clients) client.join();
  // Quiescence: the consumer catches up with the table, and every row's answered count is
  // what its stored answers hold (no answered_mismatch in the rows read back).
  EXPECT_TRUE(catch_up(reader, table, exam.id)) << "the consumer never matched the table";
  EXPECT_TRUE(catch_up(gzipped, gzipped_table, exam.id))
      << "the gzip consumer never matched the table";
  const auto rows = progress_rows_of(db_.url(), exam.id);
  EXPECT_GE(rows.size(), 60u);
  for (const auto& [id, row] : rows) EXPECT_FALSE(row.contains("answered_mismatch")) << row;
}

TEST_F(ProgressTest, LastEventIdResumesWithTheChangesSinceOrGetsASnapshot) {
  start();
  const TestExam exam = make_exam(db_, 10, 940101, "progress-teacher");
  std::string last_id;
  {
    ProgressReader reader(port(), exam.id, progress_request(teacher_));
    const auto snapshot = reader.next();
    ASSERT_TRUE(snapshot);
    const auto changes = reader.next();
    ASSERT_TRUE(changes);
    EXPECT_EQ(changes->type, "changes");
    last_id = changes->id;
    // The stream keeps the watch alive across the reconnect below: hold it open.
    ASSERT_EQ(HttpClient(port())
                  .request(with_token(patch_request(attempt_target(exam.first_attempt + 3),
                                                    answers_body(answers_of(4, 1))),
                                      token_for(940104)))
                  .status,
              204);
    // The resumed stream must see the save even once this stream has seen it.
    ProgressReader resumed(port(), exam.id, progress_request(teacher_, last_id));
    ASSERT_EQ(resumed.status(), 200);
    std::map<std::int64_t, json> seen;
    bool found = false;
    const auto give_up = Clock::now() + milliseconds(10000);
    bool first = true;
    while (!found && Clock::now() < give_up) {
      const auto event = resumed.next();
      ASSERT_TRUE(event);
      EXPECT_EQ(event->type, "changes") << "a resume within the ring gets changes, not snapshot";
      if (first) {
        EXPECT_TRUE(event->retry);
      }
      first = false;
      for (const auto& attempt : event->data["attempts"]) {
        if (attempt["id"] == exam.first_attempt + 3 && attempt["answered"] == 4) found = true;
      }
    }
    EXPECT_TRUE(found);
  }
  // Another watch's id (or a restart's, or another instance's): a snapshot.
  ProgressReader other(port(), exam.id, progress_request(teacher_, "NotThisWatch-1"));
  const auto event = other.next();
  ASSERT_TRUE(event);
  EXPECT_EQ(event->type, "snapshot");
  ProgressReader malformed(port(), exam.id, progress_request(teacher_, "garbage"));
  const auto snapshot = malformed.next();
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->type, "snapshot");
}

TEST_F(ProgressTest, TheStaffRulesOfTheExportAndTheFormat) {
  start();
  const TestExam exam = make_exam(db_, 3, 940201, "progress-teacher");
  const TestExam other = make_exam(db_, 3, 940211, "someone-else");
  const auto status_of = [&](std::int64_t id, const ProgressRequest& request) {
    ProgressReader reader(port(), id, request);
    const int status = reader.status();
    if (status != 200) {
      const auto body = json::parse(reader.body());
      EXPECT_TRUE(body.contains("error")) << body;
    }
    return status;
  };
  EXPECT_EQ(status_of(exam.id, progress_request("")), 401);
  EXPECT_EQ(status_of(exam.id, progress_request(token_for(940201))), 403);
  EXPECT_EQ(status_of(other.id, progress_request(teacher_)), 404);
  EXPECT_EQ(status_of(999999999, progress_request(teacher_)), 404);
  EXPECT_EQ(status_of(exam.id, progress_request(teacher_, std::nullopt, "application/json")), 406);
  EXPECT_EQ(status_of(exam.id, progress_request(teacher_, std::nullopt, "text/*")), 200);
  HttpRequest head =
      with_token(get_request("/exams/" + std::to_string(exam.id) + "/progress"), teacher_);
  head.method = "HEAD";
  const auto refused = HttpClient(port()).request(head);
  EXPECT_EQ(refused.status, 405);
  EXPECT_EQ(refused.header("Allow"), "GET");
}

TEST_F(ProgressTest, AStreamIsAConnectionOfMaxConnections) {
  start({"--max-connections", "2"});
  const TestExam exam = make_exam(db_, 3, 940351, "progress-teacher");
  auto first = std::make_unique<ProgressReader>(port(), exam.id, progress_request(teacher_));
  ProgressReader second(port(), exam.id, progress_request(teacher_));
  ASSERT_TRUE(first->next());
  ASSERT_TRUE(second.next());
  // Two streams hold both connections: a third connection is closed at once, unserved.
  HttpClient third(port());
  EXPECT_TRUE(third.wait_for_close(milliseconds(2000)));
  // A stream that ends gives its connection back (the server sees it gone at its next write).
  first.reset();
  const auto give_up = Clock::now() + milliseconds(10000);
  int status = 0;
  while (status != 200 && Clock::now() < give_up) {
    try {
      status = HttpClient(port()).request(get_request("/healthz")).status;
    } catch (const std::exception&) {
      status = 0;
    }
    if (status != 200) std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(second.next());  // the other stream goes on
}

TEST_F(ProgressTest, MaxProgressStreamsGives503WithRetryAfter) {
  start({"--max-progress-streams", "1"});
  const TestExam exam = make_exam(db_, 3, 940301, "progress-teacher");
  ProgressReader first(port(), exam.id, progress_request(teacher_));
  ASSERT_TRUE(first.next());
  ProgressReader second(port(), exam.id, progress_request(teacher_));
  ASSERT_EQ(second.status(), 503);
  EXPECT_FALSE(second.header("Retry-After").empty());
  first.close();
  // The first stream's place is free once the server has seen it go (bounded wait).
  const auto give_up = Clock::now() + milliseconds(10000);
  int status = 0;
  while (Clock::now() < give_up) {
    ProgressReader third(port(), exam.id, progress_request(teacher_));
    status = third.status();
    if (status == 200) break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(status, 200);
}

TEST_F(ProgressTest, SigtermEndsStreamsWithACleanEndOfBody) {
  start({"--shutdown-timeout", "5"});
  const TestExam exam = make_exam(db_, 3, 940401, "progress-teacher");
  ProgressReader reader(port(), exam.id, progress_request(teacher_));
  ASSERT_TRUE(reader.next());
  server_->signal(SIGTERM);
  const auto give_up = Clock::now() + milliseconds(10000);
  while (!reader.ended_cleanly() && Clock::now() < give_up) reader.next(milliseconds(500));
  EXPECT_TRUE(reader.ended_cleanly());
  EXPECT_EQ(server_->wait_for_exit(milliseconds(10000)), ExitStatus::exit_code(0));
}

TEST_F(ProgressTest, AGzipStreamCarriesTheSameEventsAndHeartbeatsAndEndsWithItsTrailer) {
  start({"--progress-interval", "2500", "--progress-heartbeat", "1", "--shutdown-timeout", "5"});
  const TestExam exam = make_exam(db_, 5, 940601, "progress-teacher");
  const auto reader_with = [&](std::string accept_encoding) {
    ProgressRequest request = progress_request(teacher_);
    request.accept_encoding = std::move(accept_encoding);
    return std::make_unique<ProgressReader>(port(), exam.id, request);
  };
  const auto save = [&](int questions) {
    HttpClient http(port());
    const auto response =
        http.request(with_token(patch_request(attempt_target(exam.first_attempt + 2),
                                              answers_body(answers_of(questions, 40))),
                                token_for(940603)));
    EXPECT_EQ(response.status, 204);
  };
  // The gzip stream first, alone: the exam's events are built deflated only.
  auto gzipped = reader_with("br;q=1.0, gzip;q=0.8, *;q=0.1");
  ASSERT_EQ(gzipped->status(), 200);
  EXPECT_EQ(gzipped->header("Content-Encoding"), "gzip");
  EXPECT_EQ(gzipped->header("Vary"), "Accept-Encoding");
  EXPECT_EQ(gzipped->header("Content-Type"), "text/event-stream; charset=utf-8");
  const auto first = gzipped->next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->type, "snapshot");
  EXPECT_EQ(first->retry, "2500");  // the retry field is in the compressed body too
  std::map<std::int64_t, json> gzipped_table;
  apply_event(gzipped_table, *first);
  // A save after the snapshot reaches the table's state only through a changes event.
  save(7);
  EXPECT_TRUE(catch_up(*gzipped, gzipped_table, exam.id));
  EXPECT_EQ(gzipped_table.at(exam.first_attempt + 2)["answered"], 7);

  // Streams that take no gzip join: from then on the events carry the text too.
  auto plain = reader_with("");
  auto refused = reader_with("gzip;q=0, identity");
  ASSERT_EQ(plain->status(), 200);
  ASSERT_EQ(refused->status(), 200);
  EXPECT_EQ(plain->header("Content-Encoding"), "");
  EXPECT_EQ(refused->header("Content-Encoding"), "");
  std::map<std::int64_t, json> plain_table;
  std::map<std::int64_t, json> refused_table;
  ASSERT_TRUE(catch_up(*plain, plain_table, exam.id));  // the snapshot
  save(9);
  EXPECT_TRUE(catch_up(*gzipped, gzipped_table, exam.id));
  EXPECT_TRUE(catch_up(*plain, plain_table, exam.id));
  EXPECT_TRUE(catch_up(*refused, refused_table, exam.id));
  EXPECT_EQ(gzipped_table.at(exam.first_attempt + 2)["answered"], 9);
  EXPECT_EQ(plain_table, gzipped_table);

  // Between events (every 2.5 s), heartbeats (every 1 s of silence) come compressed too.
  const auto give_up = Clock::now() + milliseconds(15000);
  while (gzipped->heartbeats() == 0 && Clock::now() < give_up) gzipped->next(milliseconds(1000));
  EXPECT_GT(gzipped->heartbeats(), 0u);

  // SIGTERM: the gzip body ends with its last block and trailer (zlib checks the CRC-32 and
  // the length of everything the stream carried), then the chunked body's end.
  server_->signal(SIGTERM);
  const auto end_by = Clock::now() + milliseconds(10000);
  while ((!gzipped->ended_cleanly() || !plain->ended_cleanly()) && Clock::now() < end_by) {
    if (!gzipped->ended_cleanly()) gzipped->next(milliseconds(200));
    if (!plain->ended_cleanly()) plain->next(milliseconds(200));
  }
  EXPECT_TRUE(gzipped->ended_cleanly());
  EXPECT_TRUE(plain->ended_cleanly());
  EXPECT_EQ(server_->wait_for_exit(milliseconds(10000)), ExitStatus::exit_code(0));
}

TEST_F(ProgressTest, AClientThatDoesNotReadIsSkippedOrEndedNotBufferedFor) {
  // Events of ~200 KB (1,000 attempts all saved between two reads), a queue bound of 64 KiB:
  // a client that never reads falls behind at once.
  start({"--progress-queue-bytes", "65536", "--idle-timeout", "3"});
  const TestExam exam = make_exam(db_, 1000, 941001, "progress-teacher");
  ProgressReader stuck(port(), exam.id, progress_request(teacher_, std::nullopt, "", 4096));
  ASSERT_EQ(stuck.status(), 200);
  const auto metric = [&](const std::string& name) {
    return std::max(0.0, integration::metric(port(), name));
  };
  const auto give_up = Clock::now() + milliseconds(30000);
  int round = 0;
  while (Clock::now() < give_up &&
         metric("attempts_progress_slow_consumers_closed_total") +
                 metric("attempts_progress_snapshots_total{reason=\"slow_consumer\"}") <
             1) {
    // Every attempt saved: the next changes event holds them all.
    pqxx::connection connection(db_.url());
    pqxx::work tx(connection);
    tx.exec_params(
        "UPDATE attempts SET updated_at = clock_timestamp(), answered = $2 "
        "WHERE exam_id = $1",
        exam.id, ++round);
    tx.commit();
    std::this_thread::sleep_for(milliseconds(300));
  }
  EXPECT_GE(metric("attempts_progress_slow_consumers_closed_total") +
                metric("attempts_progress_snapshots_total{reason=\"slow_consumer\"}"),
            1);
  // A reader that reads from here on still gets whole events (a snapshot first, if skipped).
  EXPECT_TRUE(server_->running());
}

TEST_F(ProgressTest, AStreamOutlivesTheRequestTimeoutOnHeartbeats) {
  start({"--request-timeout", "1", "--progress-heartbeat", "1", "--progress-interval", "2500"});
  const TestExam exam = make_exam(db_, 3, 940501, "progress-teacher");
  ProgressReader reader(port(), exam.id, progress_request(teacher_));
  const auto snapshot = reader.next();
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->retry, "2500");
  // Two intervals: far past the request timeout, with heartbeats between the events.
  for (int i = 0; i < 2; ++i) {
    const auto changes = reader.next(milliseconds(10000));
    ASSERT_TRUE(changes) << "the stream ended after " << i << " changes events";
    EXPECT_EQ(changes->type, "changes");
  }
  EXPECT_GE(reader.heartbeats(), 1u);
  EXPECT_FALSE(reader.closed());
}

}  // namespace
}  // namespace attempts::integration
