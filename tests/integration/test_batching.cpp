// Group commit against a real PostgreSQL: what waits in a connection's queue goes out as one
// statement, same-attempt writes in it are coalesced (last one received wins), every request
// gets its own answer, a failed batch acknowledges nothing, and full queues refuse at once.
//
// What a statement actually did is read from an audit trigger on attempts (ids 5000..5999
// only) that records every row update with its transaction id, in execution order: that makes
// "which requests shared a statement" and "in which order were rows written" observable.
//
// Attempt ids used here: 5000..5999, each test its own, reset before use; plus ids above
// 100000, which do not exist.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Time for requests already sent to be read by the server and reach a worker's queue.
constexpr milliseconds kSettle{400};
// How long a request the service refuses (or fails) may take to be answered.
constexpr milliseconds kPromptAnswer{2000};
constexpr milliseconds kLockWait{5000};

// Answers that say who wrote them: question 1 holds the connection, question 2 the sequence
// number of the request on that connection.
std::string tagged_answers(int connection, int seq) {
  return R"({"1":[)" + std::to_string(connection) + R"(],"2":[)" + std::to_string(seq) + "]}";
}

struct Tag {
  int connection = -1;
  int seq = -1;
  auto operator<=>(const Tag&) const = default;
};

// The tag of a tagged_answers() document; nullopt for anything else (e.g. the seeded '{}').
std::optional<Tag> tag_of(const std::string& answers_text) {
  const auto answers = nlohmann::json::parse(answers_text, nullptr, /*allow_exceptions=*/false);
  if (!answers.is_object() || !answers.contains("1") || !answers.contains("2")) {
    return std::nullopt;
  }
  try {
    return Tag{answers.at("1").at(0).get<int>(), answers.at("2").at(0).get<int>()};
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

HttpRequest tagged_patch(std::int64_t id, int connection, int seq) {
  return patch_request(attempt_target(id), answers_body(tagged_answers(connection, seq)));
}

// One row update seen by the audit trigger.
struct AuditEntry {
  std::int64_t order = 0;  // execution order (a sequence)
  std::int64_t id = 0;
  std::string answers;
  std::int64_t txid = 0;  // one per statement: the service writes in autocommit
};

// Records every UPDATE of attempts 5000..5999 while it exists. The trigger fires inside the
// statement that updates the row, so a row's entries are in the order its writes were applied,
// and an entry of a request is in the table before that request could have been answered.
class UpdateAudit {
 public:
  explicit UpdateAudit(const Database& db) : url_(db.url()) {
    exec(kDrop);
    exec(R"sql(
CREATE UNLOGGED TABLE batching_test_audit (
  entry  bigserial PRIMARY KEY,
  id     bigint NOT NULL,
  answers text NOT NULL,
  txid   bigint NOT NULL DEFAULT txid_current());
CREATE FUNCTION batching_test_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO batching_test_audit (id, answers) VALUES (NEW.id, NEW.answers::text);
  RETURN NULL;
END $$;
CREATE TRIGGER batching_test_audit AFTER UPDATE ON attempts FOR EACH ROW
  WHEN (NEW.id BETWEEN 5000 AND 5999) EXECUTE FUNCTION batching_test_audit_row();)sql");
  }

  ~UpdateAudit() {
    try {
      exec(kDrop);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "could not drop the audit trigger on attempts: " << error.what();
    }
  }

  UpdateAudit(const UpdateAudit&) = delete;
  UpdateAudit& operator=(const UpdateAudit&) = delete;

  void clear() const { exec("TRUNCATE batching_test_audit"); }

  std::vector<AuditEntry> entries() const {
    pqxx::connection connection(url_);
    pqxx::nontransaction tx(connection);
    std::vector<AuditEntry> entries;
    for (const auto& row :
         tx.exec("SELECT entry, id, answers, txid FROM batching_test_audit ORDER BY entry")) {
      entries.push_back({row[0].as<std::int64_t>(), row[1].as<std::int64_t>(),
                         row[2].as<std::string>(), row[3].as<std::int64_t>()});
    }
    return entries;
  }

 private:
  static constexpr const char* kDrop = R"sql(
SET lock_timeout = '10s';
DROP TRIGGER IF EXISTS batching_test_audit ON attempts;
DROP FUNCTION IF EXISTS batching_test_audit_row();
DROP TABLE IF EXISTS batching_test_audit;)sql";

  void exec(const std::string& sql) const {
    pqxx::connection connection(url_);
    pqxx::nontransaction tx(connection);
    tx.exec(sql);
  }

  std::string url_;
};

// Ends the server's backend that waits for a row lock with a batch UPDATE (never our own
// sessions: the lock holders are idle in transaction, not waiting); how many were ended.
int terminate_backends_waiting_to_update(const Database& db) {
  pqxx::connection connection(db.url());
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = current_database() AND wait_event_type = 'Lock' "
      "AND pid <> pg_backend_pid() AND query LIKE '%UPDATE attempts%'");
  int terminated = 0;
  for (const auto& row : rows) terminated += row[0].as<bool>() ? 1 : 0;
  return terminated;
}

// A request sent on its own connection, whose response is read on another thread.
struct PendingResponse {
  std::int64_t id = 0;
  std::string answers;
  std::future<std::pair<HttpResponse, Clock::time_point>> response;  // and when it came
  Clock::time_point sent_at;
};

PendingResponse send_alone(std::uint16_t port, std::int64_t id, std::string answers) {
  PendingResponse pending;
  pending.id = id;
  pending.answers = std::move(answers);
  auto client = std::make_shared<HttpClient>(port);
  client->send(patch_request(attempt_target(id), answers_body(pending.answers)));
  pending.sent_at = Clock::now();
  pending.response = std::async(std::launch::async, [client] {
    auto response = client->read_response();
    return std::pair{std::move(response), Clock::now()};
  });
  return pending;
}

// The response (read with HttpClient's own 10 s timeout); a failed test if it did not come.
std::optional<HttpResponse> collect(PendingResponse& pending) {
  try {
    return pending.response.get().first;
  } catch (const std::exception& error) {
    ADD_FAILURE() << "attempt " << pending.id << ": no response: " << error.what();
    return std::nullopt;
  }
}

// Tests that hold one connection's statement on a lock and look at what queues behind it run
// the server with one event loop, one connection and --pipeline-depth 1: with a deeper pipeline
// the first writes behind the stuck statement are already sent, not queued (the default is 1;
// PipelinedBatchingTest also runs a deeper pipeline).
class BatchingTest : public testing::Test {
 protected:
  Database db_;
};

// ---- many pipelined connections over the same ids ----

struct PipelineShape {
  static constexpr int kConnections = 20;
  static constexpr int kRequestsPerConnection = 200;
  static constexpr std::int64_t kFirstId = 5000;
  static constexpr int kIds = 50;

  // Connections c, c+5, c+10, c+15 walk the ids in step, so the same id often arrives from
  // several connections while a statement is in flight and is coalesced within a batch. Each
  // connection writes every id exactly kRequestsPerConnection / kIds times.
  static std::int64_t id_of(int connection, int seq) {
    return kFirstId + (seq + (connection % 5) * 10) % kIds;
  }
};

class PipelinedBatchingTest : public BatchingTest {
 protected:
  // Runs the 20 pipelines against a server with `flags`, then checks everything the database
  // and the responses allow to check. `max_batch` is the server's limit.
  void run_and_check(const std::vector<std::string>& flags, std::size_t max_batch) {
    using S = PipelineShape;
    db_.reset_attempts(S::kFirstId, S::kFirstId + S::kIds - 1);
    const UpdateAudit audit(db_);
    ServerProcess server(ServerSettings::with_flags(flags));

    std::vector<std::vector<std::string>> errors(S::kConnections);
    std::latch start(S::kConnections);
    std::vector<std::thread> threads;
    for (int c = 0; c < S::kConnections; ++c) {
      threads.emplace_back([&, c] {
        try {
          std::string pipeline;
          for (int seq = 0; seq < S::kRequestsPerConnection; ++seq) {
            pipeline += serialize(tagged_patch(S::id_of(c, seq), c, seq));
          }
          HttpClient client(server.port());
          start.arrive_and_wait();
          client.send_raw(pipeline);  // all 200 requests at once
          for (int seq = 0; seq < S::kRequestsPerConnection; ++seq) {
            const auto response = client.read_response();
            if (response.status != 204 && errors[c].size() < 5) {
              errors[c].push_back("request " + std::to_string(seq) + " (attempt " +
                                  std::to_string(S::id_of(c, seq)) +
                                  "): " + std::to_string(response.status) + " " + response.body);
            }
          }
          if (client.buffered() != 0) errors[c].push_back("bytes after the last response");
        } catch (const std::exception& error) {
          errors[c].push_back(error.what());
        }
      });
    }
    for (auto& thread : threads) thread.join();
    for (int c = 0; c < S::kConnections; ++c) {
      ASSERT_TRUE(errors[c].empty()) << "connection " << c << ": " << errors[c].front();
    }
    EXPECT_TRUE(server.running()) << "attempts-server died";

    // What each connection sent: the id of every request, the last request per id.
    std::map<std::pair<int, std::int64_t>, int> last_seq;  // (connection, id) -> seq
    for (int c = 0; c < S::kConnections; ++c) {
      for (int seq = 0; seq < S::kRequestsPerConnection; ++seq)
        last_seq[{c, S::id_of(c, seq)}] = seq;
    }
    const auto entries = audit.entries();
    std::map<std::int64_t, const AuditEntry*> last_entry;  // id -> its last applied write
    std::map<std::int64_t, std::set<std::int64_t>> ids_of_statement;
    std::map<int, int> last_applied_seq;  // connection -> seq of its latest applied write
    for (const auto& entry : entries) {
      const auto tag = tag_of(entry.answers);
      ASSERT_TRUE(tag) << "attempt " << entry.id << " was written " << entry.answers;
      ASSERT_TRUE(tag->connection >= 0 && tag->connection < S::kConnections && tag->seq >= 0 &&
                  tag->seq < S::kRequestsPerConnection)
          << entry.answers;
      // A value lands on the attempt its request named.
      EXPECT_EQ(entry.id, S::id_of(tag->connection, tag->seq))
          << "value " << entry.answers << " was written to attempt " << entry.id;
      // A connection's requests are applied in the order it sent them, across batches and
      // workers: the next one is read only after the previous one was answered, and nothing is
      // answered before its statement ran. This also means no value is applied twice.
      const auto previous = last_applied_seq.find(tag->connection);
      if (previous != last_applied_seq.end()) {
        EXPECT_LT(previous->second, tag->seq)
            << "connection " << tag->connection << ": request " << tag->seq
            << " was applied after its request " << previous->second;
      }
      last_applied_seq[tag->connection] = tag->seq;
      // A statement updates an attempt once: same-id writes in a batch are coalesced.
      EXPECT_TRUE(ids_of_statement[entry.txid].insert(entry.id).second)
          << "attempt " << entry.id << " updated twice by transaction " << entry.txid;
      last_entry[entry.id] = &entry;
    }

    std::size_t largest_statement = 0;
    for (const auto& [txid, ids] : ids_of_statement) {
      largest_statement = std::max(largest_statement, ids.size());
    }
    EXPECT_LE(largest_statement, max_batch) << "a statement updated more rows than --max-batch";
    EXPECT_GT(largest_statement, 1u)
        << "every statement updated one row: 20 pipelined connections never shared a batch";
    RecordProperty("statements", static_cast<int>(ids_of_statement.size()));
    // Fewer rows than requests: writes were coalesced (not asserted: it depends on timing;
    // the mixed-batch test checks coalescing deterministically).
    RecordProperty("rows_updated", static_cast<int>(entries.size()));
    RecordProperty("largest_statement", static_cast<int>(largest_statement));

    for (std::int64_t id = S::kFirstId; id < S::kFirstId + S::kIds; ++id) {
      const auto row = db_.read_attempt(id);
      ASSERT_TRUE(row) << "attempt " << id;
      EXPECT_TRUE(row->updated_at) << "attempt " << id << " was never updated";
      const auto tag = tag_of(row->answers);
      ASSERT_TRUE(tag) << "attempt " << id << " holds " << row->answers;
      // The stored value is the last request that SOME connection sent for this id: a later
      // request of the same connection arrived after it had been committed, so it would have
      // replaced it.
      const auto sent = last_seq.find({tag->connection, id});
      ASSERT_NE(sent, last_seq.end())
          << "attempt " << id << " holds " << row->answers << ", which was never sent for it";
      EXPECT_EQ(tag->seq, sent->second)
          << "attempt " << id << " holds request " << tag->seq << " of connection "
          << tag->connection << ", whose last request for it was " << sent->second;
      // ... and it is the last write the database applied to the row.
      ASSERT_TRUE(last_entry.count(id)) << "no update of attempt " << id << " was recorded";
      EXPECT_EQ(tag_of(last_entry[id]->answers), tag)
          << "attempt " << id << " holds " << row->answers << " but its last applied write was "
          << last_entry[id]->answers;
    }
  }
};

TEST_F(PipelinedBatchingTest,
       TwentyPipelinedConnectionsOverFiftyIdsEndWithTheLastReceivedValuePerIdWithDefaults) {
  run_and_check({}, 256);
}

TEST_F(PipelinedBatchingTest,
       TwentyPipelinedConnectionsOverFiftyIdsEndWithTheLastReceivedValuePerIdInSmallBatches) {
  run_and_check({"--pool-size", "2", "--max-batch", "8"}, 8);
}

// Several statements in flight on one connection (libpq's pipeline mode): batches still apply in
// the order they were sent.
TEST_F(PipelinedBatchingTest,
       TwentyPipelinedConnectionsOverFiftyIdsEndWithTheLastReceivedValuePerIdWithADeepPipeline) {
  run_and_check({"--threads", "1", "--pool-size", "1", "--max-batch", "8", "--pipeline-depth", "4"},
                8);
}

// ---- one batch mixing outcomes ----

TEST_F(BatchingTest, OneBatchMixingExistingMissingAndSubmittedAttemptsAnswersEachRequestOwnStatus) {
  constexpr std::int64_t kDecoy = 5100;
  const std::vector<std::int64_t> existing = {5101, 5102, 5103, 5104};
  const std::vector<std::int64_t> submitted = {5105, 5106};
  constexpr std::int64_t kTwice = 5107;      // written by two requests of the batch
  constexpr std::int64_t kPipelined = 5108;  // first request of a pipelined connection
  constexpr std::int64_t kMissing = 105'001;
  constexpr std::int64_t kOtherMissing = 105'002;
  db_.reset_attempts(5100, 5199);
  for (const auto id : submitted) db_.mark_submitted(id);
  ASSERT_FALSE(db_.attempt_exists(kMissing));
  ASSERT_FALSE(db_.attempt_exists(kOtherMissing));
  std::map<std::int64_t, std::optional<AttemptRow>> before;
  for (const auto id : submitted) before[id] = db_.read_attempt(id);
  const UpdateAudit audit(db_);
  ServerProcess server(
      ServerSettings::with_flags({"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1"}));
  AttemptLock lock(db_, kDecoy);

  // The only connection is stuck on the decoy, so everything below waits in its queue.
  HttpClient decoy(server.port());
  decoy.send(tagged_patch(kDecoy, 0, 0));
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, kLockWait));

  struct Expectation {
    std::int64_t id;
    int status;
  };
  std::vector<Expectation> expected;
  std::vector<PendingResponse> alone;
  int connection = 1;
  const auto send = [&](std::int64_t id, int status) {
    expected.push_back({id, status});
    alone.push_back(send_alone(server.port(), id, tagged_answers(connection++, 0)));
  };
  send(kTwice, 204);
  for (const auto id : existing) send(id, 204);
  send(kMissing, 404);
  for (const auto id : submitted) send(id, 409);
  send(kMissing, 404);
  send(kOtherMissing, 404);
  // Three requests on one connection: only the first can join the batch (a connection has one
  // request in flight), the others follow it; each still gets its own status, in order.
  HttpClient pipelined(server.port());
  pipelined.send_raw(serialize(tagged_patch(kPipelined, 90, 1)) +
                     serialize(tagged_patch(kMissing, 90, 2)) +
                     serialize(tagged_patch(submitted[0], 90, 3)));
  // The second write to kTwice must be queued after the first: it is sent well after it.
  std::this_thread::sleep_for(kSettle);
  const int twice_last = connection;
  send(kTwice, 204);
  std::this_thread::sleep_for(kSettle);
  ASSERT_EQ(db_.lock_waiters(), 1) << "the decoy write is no longer blocking the connection";
  lock.release();

  EXPECT_EQ(decoy.read_response().status, 204);
  for (std::size_t i = 0; i < alone.size(); ++i) {
    const auto response = collect(alone[i]);
    if (!response) continue;
    const auto& want = expected[i];
    if (want.status == 204) {
      EXPECT_EQ(response->status, 204) << "attempt " << want.id << ": " << *response;
    } else {
      EXPECT_TRUE(IsJsonError(*response, want.status)) << "attempt " << want.id;
    }
  }
  const auto pipelined_responses = pipelined.read_responses(3);
  EXPECT_EQ(pipelined_responses[0].status, 204) << pipelined_responses[0];
  EXPECT_TRUE(IsJsonError(pipelined_responses[1], 404));
  EXPECT_TRUE(IsJsonError(pipelined_responses[2], 409));

  for (std::size_t i = 0; i < alone.size(); ++i) {
    if (expected[i].status == 204 && expected[i].id != kTwice) {
      EXPECT_TRUE(StoredAnswersAre(db_, expected[i].id, alone[i].answers));
    }
  }
  EXPECT_TRUE(StoredAnswersAre(db_, kTwice, tagged_answers(twice_last, 0)))
      << "the later of two writes in one batch must win";
  EXPECT_TRUE(StoredAnswersAre(db_, kPipelined, tagged_answers(90, 1)));
  for (const auto id : submitted) EXPECT_EQ(db_.read_attempt(id), before[id]) << "attempt " << id;
  EXPECT_FALSE(db_.attempt_exists(kMissing));
  EXPECT_FALSE(db_.attempt_exists(kOtherMissing));

  // The queued writes really went out as one statement, separate from the decoy's, and the
  // twice-written attempt was updated once in it.
  std::map<std::int64_t, std::vector<std::int64_t>> ids_of_statement;  // txid -> ids
  std::optional<std::int64_t> decoy_txid;
  std::optional<std::int64_t> batch_txid;
  for (const auto& entry : audit.entries()) {
    ids_of_statement[entry.txid].push_back(entry.id);
    if (entry.id == kDecoy) decoy_txid = entry.txid;
    if (entry.id == existing.front()) batch_txid = entry.txid;
  }
  ASSERT_TRUE(decoy_txid && batch_txid);
  EXPECT_NE(*decoy_txid, *batch_txid);
  std::vector<std::int64_t> batch_ids = existing;
  batch_ids.push_back(kTwice);
  batch_ids.push_back(kPipelined);
  std::sort(batch_ids.begin(), batch_ids.end());
  auto written = ids_of_statement[*batch_txid];
  std::sort(written.begin(), written.end());
  EXPECT_EQ(written, batch_ids) << "the queued writes did not share one statement";
  EXPECT_EQ(server.running(), true);
}

// ---- a batch whose connection dies ----

TEST_F(BatchingTest, BatchWhoseConnectionIsKilledMidFlightAcknowledgesNothingAndTheNextSucceeds) {
  constexpr std::int64_t kDecoy = 5200;
  const std::vector<std::int64_t> batch = {5201, 5202, 5203};
  constexpr std::int64_t kBlocked = 5209;  // the batch's highest id: the others are updated
                                           // (uncommitted) by the time it waits for this one
  const std::vector<std::int64_t> behind = {5204, 5205};
  db_.reset_attempts(5200, 5299);
  ServerProcess server(
      ServerSettings::with_flags({"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1"}));
  const pid_t pid = server.pid();
  std::map<std::int64_t, std::optional<AttemptRow>> before;
  for (std::int64_t id = 5200; id <= 5209; ++id) before[id] = db_.read_attempt(id);
  AttemptLock decoy_lock(db_, kDecoy);
  AttemptLock blocked_lock(db_, kBlocked);

  // 1. The connection is stuck on the decoy while the batch gathers in its queue.
  HttpClient decoy(server.port());
  decoy.send(tagged_patch(kDecoy, 0, 0));
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, kLockWait));
  std::vector<PendingResponse> killed;
  int connection = 1;
  for (const auto id : batch)
    killed.push_back(send_alone(server.port(), id, tagged_answers(connection++, 0)));
  killed.push_back(send_alone(server.port(), kBlocked, tagged_answers(connection++, 0)));
  std::this_thread::sleep_for(kSettle);

  // 2. The batch goes out as one statement and waits for kBlocked's row lock.
  decoy_lock.release();
  ASSERT_EQ(decoy.read_response().status, 204);
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, kLockWait)) << "the batch is not waiting for a lock";

  // 3. More writes queue up behind it.
  std::vector<PendingResponse> queued;
  for (const auto id : behind)
    queued.push_back(send_alone(server.port(), id, tagged_answers(connection++, 0)));
  std::this_thread::sleep_for(kSettle);

  // 4. Its connection dies mid-statement.
  ASSERT_EQ(terminate_backends_waiting_to_update(db_), 1);
  blocked_lock.release();

  for (auto& pending : killed) {
    const auto response = collect(pending);
    if (!response) continue;
    EXPECT_TRUE(IsUnavailable(*response)) << "attempt " << pending.id << " of the killed batch";
    EXPECT_EQ(db_.read_attempt(pending.id), before[pending.id])
        << "attempt " << pending.id << " of the killed batch was stored";
  }
  for (auto& pending : queued) {
    const auto response = collect(pending);
    if (!response) continue;
    if (response->status == 204) {
      EXPECT_TRUE(StoredAnswersAre(db_, pending.id, pending.answers));
    } else {
      EXPECT_TRUE(IsUnavailable(*response)) << "attempt " << pending.id << " queued behind";
      EXPECT_EQ(db_.read_attempt(pending.id), before[pending.id])
          << "attempt " << pending.id << " was answered 503 but stored";
    }
  }

  // 5. The service recovers by itself: a new write succeeds within a few seconds.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  std::optional<HttpResponse> response;
  int attempt = 0;
  do {
    if (attempt > 0) std::this_thread::sleep_for(milliseconds(100));
    ++attempt;
    response = HttpClient(server.port()).request(tagged_patch(batch.front(), 99, attempt));
  } while (response->status != 204 && Clock::now() < deadline);
  EXPECT_EQ(response->status, 204) << "no write succeeded within 5 s of the kill: " << *response;
  EXPECT_TRUE(StoredAnswersAre(db_, batch.front(), tagged_answers(99, attempt)));
  const auto retried = HttpClient(server.port()).request(tagged_patch(kBlocked, 99, 0));
  EXPECT_EQ(retried.status, 204) << retried;
  EXPECT_TRUE(StoredAnswersAre(db_, kBlocked, tagged_answers(99, 0)));
  EXPECT_EQ(server.pid(), pid);
  EXPECT_TRUE(server.running());
}

// ---- no timer ----

TEST_F(BatchingTest, LoneRequestOnAnIdleServerIsAnsweredPromptly) {
  constexpr std::int64_t kId = 5300;
  constexpr int kSamples = 5;
  constexpr milliseconds kBound{200};
  db_.reset_attempts(kId, kId);
  ServerProcess server;
  HttpClient client(server.port());
  // Warm up: the worker for kId has connected and prepared its statements.
  const auto warm_until = Clock::now() + std::chrono::seconds(5);
  int status = 0;
  for (;;) {
    status = client.request(tagged_patch(kId, 0, 0)).status;
    if (status == 204 || Clock::now() >= warm_until) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ(status, 204);

  std::vector<milliseconds> latencies;
  for (int sample = 1; sample <= kSamples; ++sample) {
    std::this_thread::sleep_for(milliseconds(100));  // idle: nothing queued, nothing in flight
    const auto started = Clock::now();
    const auto response = client.request(tagged_patch(kId, 0, sample));
    latencies.push_back(std::chrono::duration_cast<milliseconds>(Clock::now() - started));
    EXPECT_EQ(response.status, 204) << response;
  }

  EXPECT_TRUE(StoredAnswersAre(db_, kId, tagged_answers(0, kSamples)));
  std::sort(latencies.begin(), latencies.end());
  // The median, so that one hiccup of a loaded machine does not fail it; a batching timer of
  // that size would delay every sample.
  EXPECT_LT(latencies[kSamples / 2], kBound)
      << "fastest " << latencies.front().count() << " ms, slowest " << latencies.back().count()
      << " ms";
  RecordProperty("median_ms", static_cast<int>(latencies[kSamples / 2].count()));
}

// ---- bounded queue ----

TEST_F(BatchingTest, FullQueueRefusesWith503PromptlyAndTheAcceptedWritesAreStoredAfterwards) {
  constexpr std::int64_t kStuck = 5400;
  constexpr std::int64_t kFirst = 5401;
  constexpr int kRequests = 20;
  constexpr int kCapacity = 4;
  db_.reset_attempts(kStuck, kFirst + kRequests - 1);
  ServerProcess server(
      ServerSettings::with_flags({"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1",
                                  "--queue-capacity", std::to_string(kCapacity)}));
  AttemptLock lock(db_, kStuck);
  HttpClient stuck(server.port());
  stuck.send(tagged_patch(kStuck, 0, 0));
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, kLockWait));

  std::vector<PendingResponse> pending;
  for (int i = 0; i < kRequests; ++i) {
    pending.push_back(send_alone(server.port(), kFirst + i, tagged_answers(i + 1, 0)));
  }
  // The refusals come while the lock is still held; the accepted ones cannot be answered yet.
  const auto wait_until = Clock::now() + kPromptAnswer;
  const auto answered = [&] {
    return std::count_if(pending.begin(), pending.end(), [](const PendingResponse& p) {
      return p.response.wait_for(milliseconds(0)) == std::future_status::ready;
    });
  };
  while (answered() < kRequests - kCapacity && Clock::now() < wait_until) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(db_.lock_waiters(), 1) << "the stuck write is no longer blocking the connection";
  const auto released_at = Clock::now();
  lock.release();

  EXPECT_EQ(stuck.read_response().status, 204);
  EXPECT_TRUE(StoredAnswersAre(db_, kStuck, tagged_answers(0, 0)));
  int accepted = 0;
  int refused = 0;
  for (auto& request : pending) {
    std::pair<HttpResponse, Clock::time_point> result;
    try {
      result = request.response.get();
    } catch (const std::exception& error) {
      ADD_FAILURE() << "attempt " << request.id << ": no response: " << error.what();
      continue;
    }
    const auto& [response, answered_at] = result;
    if (response.status == 204) {
      ++accepted;
      EXPECT_TRUE(StoredAnswersAre(db_, request.id, request.answers));
    } else {
      ++refused;
      EXPECT_TRUE(IsUnavailable(response)) << "attempt " << request.id;
      EXPECT_LT(answered_at, released_at)
          << "attempt " << request.id << ": refused only after the lock was released";
      EXPECT_LT(answered_at - request.sent_at, kPromptAnswer) << "attempt " << request.id;
      EXPECT_EQ(db_.read_attempt(request.id), pristine_row())
          << "attempt " << request.id << " was refused but stored";
    }
  }
  // The connection holds the stuck write; exactly `capacity` more fit in its queue.
  EXPECT_EQ(accepted, kCapacity);
  EXPECT_EQ(refused, kRequests - kCapacity);
  EXPECT_TRUE(server.running());
}

// ---- transient failures: sent again, answered once ----

// Makes the UPDATEs of attempts 5900..5909 fail with a deadlock error (SQLSTATE 40P01, what
// Citus's distributed deadlock detection raises) the first `failures` times a row is updated,
// counted across rows and statements with a sequence, which no rollback undoes.
class InjectedDeadlocks {
 public:
  InjectedDeadlocks(const Database& db, int failures) : url_(db.url()) {
    exec(kDrop);
    exec(R"sql(
CREATE SEQUENCE batching_test_failures;
CREATE FUNCTION batching_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('batching_test_failures') <= )sql" +
         std::to_string(failures) + R"sql( THEN
    RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER batching_test_fail BEFORE UPDATE ON attempts FOR EACH ROW
  WHEN (NEW.id BETWEEN 5900 AND 5909) EXECUTE FUNCTION batching_test_fail();)sql");
  }

  ~InjectedDeadlocks() {
    try {
      exec(kDrop);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "could not drop the failing trigger on attempts: " << error.what();
    }
  }

  InjectedDeadlocks(const InjectedDeadlocks&) = delete;
  InjectedDeadlocks& operator=(const InjectedDeadlocks&) = delete;

  // How many row updates the trigger has seen (failed or not).
  std::int64_t updates_seen() const {
    pqxx::connection connection(url_);
    pqxx::nontransaction tx(connection);
    return tx
        .exec(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
            "FROM batching_test_failures")[0][0]
        .as<std::int64_t>();
  }

 private:
  static constexpr const char* kDrop = R"sql(
SET lock_timeout = '10s';
DROP TRIGGER IF EXISTS batching_test_fail ON attempts;
DROP FUNCTION IF EXISTS batching_test_fail();
DROP SEQUENCE IF EXISTS batching_test_failures;)sql";

  void exec(const std::string& sql) const {
    pqxx::connection connection(url_);
    pqxx::nontransaction tx(connection);
    tx.exec(sql);
  }

  std::string url_;
};

class TransientFailureTest : public BatchingTest {};

TEST_F(TransientFailureTest, AWriteRolledBackByADeadlockIsSentAgainAndAnsweredOnce) {
  constexpr std::int64_t kId = 5900;
  db_.reset_attempts(kId, kId);
  const InjectedDeadlocks deadlocks(db_, 2);
  ServerProcess server;
  HttpClient client(server.port());
  const auto response = client.request(tagged_patch(kId, 1, 1));
  EXPECT_EQ(response.status, 204) << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, tagged_answers(1, 1)));
  EXPECT_EQ(deadlocks.updates_seen(), 3);  // failed twice, applied the third time
  EXPECT_EQ(metric(server.port(), "attempts_db_writes_retried_total"), 2);
  // Nothing more arrives on the connection: one request, one answer.
  EXPECT_EQ(client.request(get_request("/healthz")).status, 200);
}

TEST_F(TransientFailureTest, AWriteThatKeepsFailingIsRefusedAfterThreeRetriesAndChangesNothing) {
  constexpr std::int64_t kId = 5901;
  db_.reset_attempts(kId, kId);
  const auto before = db_.read_attempt(kId);
  const InjectedDeadlocks deadlocks(db_, 1000);
  ServerProcess server;
  const auto response = HttpClient(server.port()).request(tagged_patch(kId, 1, 1));
  EXPECT_TRUE(IsUnavailable(response)) << response;
  EXPECT_EQ(db_.read_attempt(kId), before);
  EXPECT_EQ(deadlocks.updates_seen(), 4);  // the first try and three more
  EXPECT_EQ(metric(server.port(), "attempts_db_writes_retried_total"), 3);
}

TEST_F(TransientFailureTest, AFailedWriteIsSentAgainBeforeTheLaterWriteToItsAttempt) {
  // Two writes to one attempt queued together cannot share a statement (a write with a
  // revision after one without), and the second is not sent while the first's statement is in
  // flight. The first fails with a transient error and is sent again, ahead of the second; then
  // the second applies over it: both are saved, in the order they arrived.
  constexpr std::int64_t kId = 5902;
  constexpr std::int64_t kDecoy = 5950;
  db_.reset_attempts(kId, kId);
  db_.reset_attempts(kDecoy, kDecoy);
  const InjectedDeadlocks deadlocks(db_, 1);
  ServerProcess server(
      ServerSettings::with_flags({"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1"}));
  AttemptLock lock(db_, kDecoy);
  HttpClient decoy(server.port());
  decoy.send(tagged_patch(kDecoy, 0, 0));
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, kLockWait));

  auto plain = send_alone(server.port(), kId, tagged_answers(1, 1));
  std::this_thread::sleep_for(kSettle);  // queued first
  HttpClient revised(server.port());
  revised.send(patch_request(attempt_target(kId),
                             R"({"revision":1,"answers":)" + tagged_answers(2, 1) + "}"));
  std::this_thread::sleep_for(kSettle);
  ASSERT_EQ(db_.lock_waiters(), 1) << "the decoy write is no longer blocking the connection";
  lock.release();

  EXPECT_EQ(decoy.read_response().status, 204);
  const auto first = collect(plain);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 204) << *first;
  const auto second = revised.read_response();
  EXPECT_EQ(second.status, 204) << second;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, tagged_answers(2, 1)));
  EXPECT_EQ(metric(server.port(), "attempts_db_writes_retried_total"), 1);
}

TEST_F(TransientFailureTest, ConcurrentWritesAllLandOnceThroughInjectedFailures) {
  constexpr std::int64_t kFirst = 5900;
  constexpr int kIds = 10;
  constexpr int kClients = 10;
  constexpr int kRounds = 20;
  db_.reset_attempts(kFirst, kFirst + kIds - 1);
  // Three failures in all: even if one batch met all three, its writes would still be within
  // their retries.
  const InjectedDeadlocks deadlocks(db_, 3);
  ServerProcess server(ServerSettings::with_flags({"--pool-size", "2"}));
  // Client c writes attempt kFirst + c, round after round; each write must be answered 204
  // exactly once, and the last one must be what is stored.
  std::vector<std::thread> threads;
  std::vector<int> ok(kClients, 0);
  std::vector<std::string> errors(kClients);
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      try {
        HttpClient client(server.port());
        for (int round = 0; round < kRounds; ++round) {
          const auto response = client.request(tagged_patch(kFirst + c, c, round));
          if (response.status == 204)
            ++ok[c];
          else if (errors[c].empty())
            errors[c] = std::to_string(response.status) + " " + response.body;
        }
      } catch (const std::exception& error) {
        errors[c] = error.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int c = 0; c < kClients; ++c) {
    EXPECT_EQ(ok[c], kRounds) << "client " << c << ": " << errors[c];
    EXPECT_TRUE(StoredAnswersAre(db_, kFirst + c, tagged_answers(c, kRounds - 1)));
  }
  // Every write of a failed statement is sent again: at least one per failure.
  EXPECT_GE(metric(server.port(), "attempts_db_writes_retried_total"), 3);
  // Each write applied once (a client has one write in flight, so none is coalesced), plus
  // the three failed row updates.
  EXPECT_EQ(deadlocks.updates_seen(), 3 + kClients * kRounds);
}

}  // namespace
}  // namespace attempts::integration
