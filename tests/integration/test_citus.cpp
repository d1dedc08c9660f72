// The schema on a real Citus cluster (a coordinator and two workers that CitusCluster starts for
// each test): sql/citus.sql distributes it, the client-side shard map agrees with Citus for every
// seeded attempt, the batched UPDATE is routed to one shard when it names its ids, the service's
// other statements and functions work through the coordinator, the service itself answers as on
// one PostgreSQL, and a worker crash empties its UNLOGGED shards but not LOGGED ones.
//
// Skipped, with the reason, when Citus is not installed in the test PostgreSQL (CI has none).
// Figures are printed as "[  FIGURE  ] name = value" lines.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "attempts/db/pg_binary.hpp"
#include "attempts/db/shard_map.hpp"
#include "db/sql.hpp"
#include "support/assertions.hpp"
#include "support/citus_cluster.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

using db::ShardMap;
using std::chrono::milliseconds;
using std::chrono::seconds;

void report_figure(const std::string& name, const std::string& value) {
  std::cout << "[  FIGURE  ] " << name << " = " << value << std::endl;
  testing::Test::RecordProperty(name, value);
}

// ---- libpq, binding parameters in the binary format as the service does ----

struct PgConnDeleter {
  void operator()(PGconn* connection) const { PQfinish(connection); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// One libpq connection that keeps the notices the server sends (citus.log_remote_commands
// reports each command the coordinator sends to a worker as a notice).
class RawConnection {
 public:
  explicit RawConnection(const std::string& url) : connection_(PQconnectdb(url.c_str())) {
    if (PQstatus(connection_.get()) != CONNECTION_OK) {
      throw std::runtime_error("connect " + url + ": " + PQerrorMessage(connection_.get()));
    }
    PQsetNoticeProcessor(connection_.get(), &RawConnection::keep_notice, this);
  }

  void exec(const std::string& sql) {
    PgResult result(PQexec(connection_.get(), sql.c_str()));
    check(result.get(), sql);
  }

  void prepare(const std::string& name, const std::string& sql, std::span<const unsigned> types) {
    std::vector<Oid> oids(types.begin(), types.end());
    PgResult result(PQprepare(connection_.get(), name.c_str(), sql.c_str(),
                              static_cast<int>(oids.size()), oids.data()));
    check(result.get(), "PREPARE " + name);
  }

  // Runs `sql` (or, when `prepared`, the statement of that name) with binary parameters.
  PgResult run(const std::string& sql_or_name, bool prepared,
               const std::vector<std::string>& params, std::span<const unsigned> types) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats(params.size(), 1);
    for (const auto& param : params) {
      values.push_back(param.data());
      lengths.push_back(static_cast<int>(param.size()));
    }
    std::vector<Oid> oids(types.begin(), types.end());
    PgResult result(prepared ? PQexecPrepared(connection_.get(), sql_or_name.c_str(),
                                              static_cast<int>(params.size()), values.data(),
                                              lengths.data(), formats.data(), 0)
                             : PQexecParams(connection_.get(), sql_or_name.c_str(),
                                            static_cast<int>(params.size()), oids.data(),
                                            values.data(), lengths.data(), formats.data(), 0));
    check(result.get(), sql_or_name);
    return result;
  }

  std::vector<std::string> take_notices() { return std::exchange(notices_, {}); }

 private:
  static void keep_notice(void* self, const char* message) {
    static_cast<RawConnection*>(self)->notices_.emplace_back(message);
  }

  void check(const PGresult* result, const std::string& what) const {
    const auto status = PQresultStatus(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      throw std::runtime_error(what + ": " + PQresultErrorMessage(result));
    }
  }

  std::unique_ptr<PGconn, PgConnDeleter> connection_;
  std::vector<std::string> notices_;
};

// The five arrays of kSaveBatch, encoded as the service encodes them (src/db/pg_binary.hpp).
struct Batch {
  std::vector<std::int64_t> ids;
  std::vector<std::optional<std::int64_t>> students;
  std::vector<std::optional<std::int64_t>> revisions;
  std::vector<std::string> answers;
  std::vector<std::int32_t> answered;

  std::vector<std::string> params() const {
    std::vector<std::string> out(5);
    db::append_int8_array(out[0], ids);
    db::append_int8_array(out[1], students);
    db::append_int8_array(out[2], revisions);
    std::vector<std::string_view> documents(answers.begin(), answers.end());
    db::append_jsonb_array(out[3], documents);
    db::append_int4_array(out[4], answered);
    return out;
  }

  // Every attempt written by its owner (seed.sql: student 1 + (id - 1) % 20000), no revision.
  static Batch of(const std::vector<std::int64_t>& ids, const std::string& answers) {
    Batch batch;
    for (const auto id : ids) {
      batch.ids.push_back(id);
      batch.students.push_back(1 + (id - 1) % 20000);
      batch.revisions.push_back(std::nullopt);
      batch.answers.push_back(answers);
      batch.answered.push_back(1);
    }
    return batch;
  }
};

std::vector<std::int64_t> returned_ids(const PGresult* result) {
  std::vector<std::int64_t> ids;
  for (int row = 0; row < PQntuples(result); ++row)
    ids.push_back(std::stoll(PQgetvalue(result, row, 0)));
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The plan as one text, and its "Task Count: N".
std::string plan_text(const PGresult* result) {
  std::string text;
  for (int row = 0; row < PQntuples(result); ++row)
    text += std::string(PQgetvalue(result, row, 0)) + "\n";
  return text;
}

std::optional<int> task_count(const std::string& plan) {
  constexpr std::string_view kLabel = "Task Count: ";
  const auto at = plan.find(kLabel);
  if (at == std::string::npos) return std::nullopt;
  return std::stoi(plan.substr(at + kLabel.size()));
}

// ---- the cluster's shard map, read as the service would ----

ShardMap read_shard_map(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(db::kShardMapQuery);
  std::vector<std::string> cells;
  cells.reserve(rows.size() * db::kShardMapColumns);
  std::vector<db::ShardMapRow> parsed(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t c = 0; c < db::kShardMapColumns; ++c) {
      const auto field = rows[static_cast<int>(r)][static_cast<int>(c)];
      if (!field.is_null()) parsed[r][c] = field.c_str();
    }
  }
  return db::parse_shard_map(parsed);
}

bool detects_citus(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  return tx.exec(db::kDetectCitusQuery)[0][0].as<bool>();
}

// Seeded ids grouped by shard index (client-side), the first `limit` ids of 1..100000.
std::map<std::size_t, std::vector<std::int64_t>> ids_by_shard(const ShardMap& map,
                                                              std::int64_t limit) {
  std::map<std::size_t, std::vector<std::int64_t>> groups;
  for (std::int64_t id = 1; id <= limit; ++id) groups[map.index_of(id)].push_back(id);
  return groups;
}

std::string with_database(const std::string& url, const std::string& database) {
  return url.substr(0, url.rfind('/') + 1) + database;
}

class CitusTest : public testing::Test {
 protected:
  void SetUp() override {
    (void)TestEnvironment::get();  // outside scripts/test.sh: fails, as every integration test
    if (!CitusCluster::available()) GTEST_SKIP() << CitusCluster::unavailable_reason();
    const auto started = std::chrono::steady_clock::now();
    cluster_ = std::make_unique<CitusCluster>();
    report_figure("citus_cluster_start_ms",
                  std::to_string(std::chrono::duration_cast<milliseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count()));
  }

  const std::string& url() const { return cluster_->coordinator_url(); }

  std::unique_ptr<CitusCluster> cluster_;
};

TEST_F(CitusTest, DetectsCitusAndReadsAShardMapOf32ShardsOnTheTwoWorkers) {
  EXPECT_TRUE(detects_citus(url()));
  // A database without the extension, and the plain PostgreSQL of the other tests: the query
  // runs there too, and says no.
  EXPECT_FALSE(detects_citus(with_database(url(), "postgres")));
  EXPECT_FALSE(detects_citus(TestEnvironment::get().database_url));

  const auto map = read_shard_map(url());
  ASSERT_EQ(map.size(), 32u) << "sql/citus.sql makes 32 shards";
  std::map<std::string, int> shards_per_node;
  for (const auto& shard : map.shards()) ++shards_per_node[shard.node];
  EXPECT_EQ(shards_per_node, (std::map<std::string, int>{{cluster_->worker(0).host_port(), 16},
                                                         {cluster_->worker(1).host_port(), 16}}));
  EXPECT_EQ(map, read_shard_map(url())) << "reading the same map twice compares equal";
}

TEST_F(CitusTest, ClientShardMapMatchesCitusForEverySeededAttempt) {
  const auto map = read_shard_map(url());
  pqxx::connection connection(url());
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(
      "SELECT id, get_shard_id_for_distribution_column('attempts', id) "
      "FROM generate_series(1, 100000) AS id ORDER BY id");
  ASSERT_EQ(rows.size(), 100000u);
  std::int64_t matched = 0;
  std::int64_t mismatched = 0;
  for (const auto& row : rows) {
    const auto id = row[0].as<std::int64_t>();
    const auto citus_shard = row[1].as<std::int64_t>();
    if (map.shard_id(map.index_of(id)) == citus_shard) {
      ++matched;
    } else if (++mismatched <= 10) {
      ADD_FAILURE() << "attempt " << id << ": Citus says shard " << citus_shard
                    << ", the client shard map says " << map.shard_id(map.index_of(id));
    }
  }
  report_figure("citus_shard_ids_matched", std::to_string(matched));
  report_figure("citus_shard_ids_mismatched", std::to_string(mismatched));
  EXPECT_EQ(matched, 100000);
}

TEST_F(CitusTest, BatchedUpdateIsRoutedToOneShardOnlyWhenItNamesItsIds) {
  const auto map = read_shard_map(url());
  const auto groups = ids_by_shard(map, 2000);
  const auto& one_shard = groups.begin()->second;  // ~60 ids, all in the first shard
  ASSERT_GE(one_shard.size(), 8u);
  const std::vector<std::int64_t> same_shard(one_shard.begin(), one_shard.begin() + 8);
  const std::vector<std::int64_t> two_shards = {groups.begin()->second.front(),
                                                std::next(groups.begin())->second.front()};
  // What the service sends on Citus: the batch naming its ids on the distribution column; and
  // the same without that predicate.
  const std::string pruned = db::sql::kSaveShard;
  const std::string predicate = "   AND a.id = ANY($1::bigint[])\n";
  std::string naive = pruned;
  ASSERT_NE(naive.find(predicate), std::string::npos);
  naive.erase(naive.find(predicate), predicate.size());
  const auto types = std::span<const unsigned>(db::sql::kSaveBatchTypes);

  RawConnection connection(url());
  const auto explain = [&](const std::string& statement, const std::vector<std::int64_t>& ids) {
    const auto plan = plan_text(
        connection.run("EXPLAIN " + statement, false, Batch::of(ids, "{}").params(), types).get());
    return std::make_pair(task_count(plan), plan);
  };
  const auto [pruned_one, pruned_one_plan] = explain(pruned, same_shard);
  const auto [pruned_two, pruned_two_plan] = explain(pruned, two_shards);
  const auto [naive_one, naive_one_plan] = explain(naive, same_shard);
  EXPECT_EQ(pruned_one, 1) << pruned_one_plan;
  EXPECT_EQ(pruned_two, 2) << pruned_two_plan;
  EXPECT_EQ(naive_one, 32) << "the statement without the predicate goes to every shard\n"
                           << naive_one_plan;
  report_figure("citus_tasks_pruned_batch_one_shard", std::to_string(pruned_one.value_or(-1)));
  report_figure("citus_tasks_pruned_batch_two_shards", std::to_string(pruned_two.value_or(-1)));
  report_figure("citus_tasks_naive_batch_one_shard", std::to_string(naive_one.value_or(-1)));

  // Prepared once and executed as the service does, beyond the executions after which
  // PostgreSQL may switch to a generic plan: every execution sends one UPDATE to one worker and
  // commits there without two-phase commit, and applies exactly the rows it should.
  connection.prepare("pruned_batch", pruned, types);
  connection.exec("SET citus.log_remote_commands = on");
  connection.exec("SET client_min_messages = log");
  for (int round = 0; round < 10; ++round) {
    Batch batch = Batch::of(same_shard, R"({"1":[)" + std::to_string(round) + "]}");
    batch.students[1] = std::nullopt;   // authentication off for this write
    batch.students[2] = 999'999;        // someone else's attempt: not applied
    batch.revisions[3] = 1000 + round;  // a newer revision: applied, stored
    batch.revisions[4] = 0;             // not newer than the stored 0: not applied
    connection.take_notices();
    const auto result = connection.run("pruned_batch", true, batch.params(), types);
    auto expected = same_shard;
    expected.erase(expected.begin() + 4);
    expected.erase(expected.begin() + 2);
    EXPECT_EQ(returned_ids(result.get()), expected) << "round " << round;

    const auto notices = connection.take_notices();
    int updates = 0;
    std::set<std::string> servers;
    for (const auto& notice : notices) {
      if (notice.find("issuing") != std::string::npos &&
          notice.find("UPDATE") != std::string::npos) {
        ++updates;
      }
      if (notice.find("PREPARE TRANSACTION") != std::string::npos) {
        ADD_FAILURE() << "round " << round
                      << ": two-phase commit for a one-shard batch: " << notice;
      }
      const auto server = notice.find("on server ");
      if (server != std::string::npos)
        servers.insert(notice.substr(server, notice.find(' ', server + 10) - server));
    }
    EXPECT_EQ(updates, 1) << "round " << round << ": " << testing::PrintToString(notices);
    EXPECT_EQ(servers.size(), 1u) << "round " << round << ": " << testing::PrintToString(notices);
  }
  connection.exec("RESET client_min_messages");
  const Database coordinator(url());
  EXPECT_TRUE(StoredAnswersAre(coordinator, same_shard[0], R"({"1":[9]})"));
  EXPECT_TRUE(StoredAnswersAre(coordinator, same_shard[2], "{}")) << "someone else's attempt";
  EXPECT_TRUE(StoredAnswersAre(coordinator, same_shard[4], "{}")) << "a stale revision";
  pqxx::connection check(url());
  pqxx::nontransaction tx(check);
  EXPECT_EQ(tx.exec_params("SELECT revision FROM attempts WHERE id = $1", same_shard[3])[0][0]
                .as<std::int64_t>(),
            1009);
}

TEST_F(CitusTest, ServiceStatementsAndFunctionsWorkThroughTheCoordinator) {
  const auto map = read_shard_map(url());
  const auto groups = ids_by_shard(map, 2000);
  const auto& one_shard = groups.begin()->second;
  RawConnection connection(url());

  // The one-row statements are routed to one shard.
  std::vector<std::string> one(5);
  db::append_int8(one[0], 42);
  db::append_int8(one[1], 42);
  db::append_int8(one[2], 7);
  db::append_jsonb(one[3], R"({"1":[1]})");
  db::append_int4(one[4], 1);
  const std::string save_one = db::sql::kSaveOneShard;
  EXPECT_EQ(task_count(plan_text(
                connection.run("EXPLAIN " + save_one, false, one, db::sql::kSaveOneTypes).get())),
            1);
  const auto saved = connection.run(save_one, false, one, db::sql::kSaveOneTypes);
  EXPECT_EQ(returned_ids(saved.get()), std::vector<std::int64_t>{42});
  EXPECT_TRUE(
      returned_ids(connection.run(save_one, false, one, db::sql::kSaveOneTypes).get()).empty())
      << "revision 7 again is not newer";
  // Why the shard statements judge the deadline with now(): Citus refuses the single-node ones,
  // which read the clock as each row is written.
  try {
    connection.run(db::sql::kSaveOne, false, one, db::sql::kSaveOneTypes);
    ADD_FAILURE() << "Citus ran a distributed UPDATE with clock_timestamp()";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("VOLATILE"), std::string::npos) << error.what();
  }

  {
    // kLoadAttempt with a NULL student (authentication off), prepared in SQL so that EXPLAIN
    // EXECUTE can show its plan.
    pqxx::connection pq(url());
    pqxx::nontransaction tx(pq);
    tx.exec(std::string("PREPARE load(bigint, bigint) AS ") + db::sql::kLoadAttempt);
    const auto row = tx.exec("EXECUTE load(42, NULL)");
    ASSERT_EQ(row.size(), 1u);
    EXPECT_EQ(row[0][3].as<std::string>(), R"({"1": [1]})");
    EXPECT_EQ(row[0][4].as<std::int64_t>(), 7);
    EXPECT_TRUE(tx.exec("EXECUTE load(42, 43)").empty()) << "someone else's attempt";
    std::string plan;
    for (const auto& line : tx.exec("EXPLAIN EXECUTE load(42, NULL)")) {
      plan += line[0].as<std::string>() + "\n";
    }
    EXPECT_EQ(task_count(plan), 1) << plan;
  }

  // kWhyNotSaved reads the shards of its ids: one shard, one task.
  std::vector<std::string> why(1);
  db::append_int8_array(why[0], std::span<const std::int64_t>(one_shard.data(), 3));
  const std::string why_not_saved = db::sql::kWhyNotSaved;
  EXPECT_EQ(task_count(plan_text(
                connection.run("EXPLAIN " + why_not_saved, false, why, db::sql::kWhyNotSavedTypes)
                    .get())),
            1);
  EXPECT_EQ(PQntuples(connection.run(why_not_saved, false, why, db::sql::kWhyNotSavedTypes).get()),
            3);

  // start_attempt() and submit_attempt() run on the coordinator, each statement routed.
  pqxx::connection pq(url());
  pqxx::nontransaction tx(pq);
  const auto start = [&](std::int64_t exam, std::int64_t student, std::optional<std::string> key) {
    const auto rows =
        key ? tx.exec_params("SELECT outcome, id FROM start_attempt($1, $2, $3)", exam, student,
                             *key)
            : tx.exec_params("SELECT outcome, id FROM start_attempt($1, $2, NULL)", exam, student);
    EXPECT_EQ(rows.size(), 1u);
    return std::make_pair(rows[0][0].as<std::string>(),
                          rows[0][1].is_null() ? 0 : rows[0][1].as<std::int64_t>());
  };
  const auto created = start(1, 777, std::nullopt);
  EXPECT_EQ(created.first, "created");
  EXPECT_GT(created.second, 100000);
  const auto keyed = start(1, 777, "key-1");
  EXPECT_EQ(keyed.first, "created");
  EXPECT_EQ(start(1, 777, "key-1"), std::make_pair(std::string("replayed"), keyed.second));
  EXPECT_EQ(start(2, 777, "key-1").first, "key_reused");
  EXPECT_EQ(start(424242, 777, "key-2").first, "no_exam");
  EXPECT_EQ(start(1, 778, "key-1").first, "created") << "keys are per student";

  const auto submit = [&](std::int64_t id, std::optional<std::int64_t> student) {
    const auto rows =
        student ? tx.exec_params("SELECT id, submitted_at::text FROM submit_attempt($1, $2)", id,
                                 *student)
                : tx.exec_params("SELECT id, submitted_at::text FROM submit_attempt($1, NULL)", id);
    return rows.empty() ? std::optional<std::string>() : rows[0][1].as<std::string>();
  };
  EXPECT_EQ(submit(keyed.second, 778), std::nullopt) << "someone else's attempt";
  const auto first = submit(keyed.second, 777);
  ASSERT_TRUE(first);
  EXPECT_EQ(submit(keyed.second, 777), first) << "a second submit keeps the first time";
  EXPECT_EQ(submit(keyed.second, std::nullopt), first);
  EXPECT_EQ(submit(999'999'999, std::nullopt), std::nullopt);

  // Two concurrent starts with one key: the second waits for the first and replays it.
  pqxx::connection first_connection(url());
  pqxx::work first_tx(first_connection);
  const auto first_id =
      first_tx.exec("SELECT id FROM start_attempt(3, 779, 'key-3')")[0][0].as<std::int64_t>();
  auto second = std::async(std::launch::async, [&] {
    pqxx::connection second_connection(url());
    pqxx::nontransaction second_tx(second_connection);
    const auto row = second_tx.exec("SELECT outcome, id FROM start_attempt(3, 779, 'key-3')")[0];
    return std::make_pair(row[0].as<std::string>(), row[1].as<std::int64_t>());
  });
  EXPECT_EQ(second.wait_for(milliseconds(500)), std::future_status::timeout)
      << "the second start did not wait for the first";
  first_tx.commit();
  ASSERT_EQ(second.wait_for(seconds(20)), std::future_status::ready);
  EXPECT_EQ(second.get(), std::make_pair(std::string("replayed"), first_id));
}

// The service, unchanged, against the coordinator: what the single-node suite checks for PATCH,
// GET and one batch mixing 204, 404 and 409.
TEST_F(CitusTest, ServiceAnswersPatchGetAndABatchMixThroughTheCoordinator) {
  const Database db(url());
  constexpr std::int64_t kDecoy = 5100;
  // The batch's attempts are all in the decoy's shard: the service splits a batch by shard, and
  // this one must stay one statement.
  const auto map = read_shard_map(url());
  const auto in_decoy_shard = [&](std::int64_t from, std::size_t count) {
    std::vector<std::int64_t> ids;
    for (std::int64_t id = from; ids.size() < count; ++id) {
      if (map.index_of(id) == map.index_of(kDecoy)) ids.push_back(id);
    }
    return ids;
  };
  const auto first_six = in_decoy_shard(kDecoy + 1, 6);
  const std::vector<std::int64_t> existing(first_six.begin(), first_six.begin() + 4);
  const std::vector<std::int64_t> submitted(first_six.begin() + 4, first_six.end());
  const std::int64_t missing = in_decoy_shard(105'001, 1).front();
  for (const auto id : submitted) db.mark_submitted(id);

  ServerSettings settings =
      ServerSettings::with_flags({"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1"});
  settings.database_url = url();
  ServerProcess server(settings);

  // One at a time.
  EXPECT_EQ(HttpClient(server.port())
                .request(patch_request(attempt_target(42), answers_body(R"({"1":[2]})")))
                .status,
            204);
  EXPECT_TRUE(StoredAnswersAre(db, 42, R"({"1":[2]})"));
  const auto got = HttpClient(server.port()).request(get_request(attempt_target(42)));
  ASSERT_EQ(got.status, 200) << got;
  const auto body = nlohmann::json::parse(got.body);
  EXPECT_EQ(body["id"], 42);
  EXPECT_EQ(body["answers"], nlohmann::json::parse(R"({"1":[2]})"));
  EXPECT_FALSE(body["updated_at"].is_null());
  EXPECT_TRUE(
      IsJsonError(HttpClient(server.port()).request(get_request(attempt_target(missing))), 404));
  EXPECT_TRUE(IsJsonError(
      HttpClient(server.port()).request(patch_request(attempt_target(missing), answers_body("{}"))),
      404));
  EXPECT_TRUE(IsJsonError(
      HttpClient(server.port())
          .request(patch_request(attempt_target(submitted[0]), answers_body(R"({"1":[1]})"))),
      409));

  // A batch: the only connection is stuck on a locked decoy (the row lock is held on its
  // worker), so what follows waits in its queue and goes out as one statement.
  AttemptLock lock(db, kDecoy);
  HttpClient decoy(server.port());
  decoy.send(patch_request(attempt_target(kDecoy), answers_body(R"({"9":[9]})")));
  std::this_thread::sleep_for(milliseconds(500));
  struct Sent {
    std::int64_t id;
    int status;
    std::string answers;
    HttpClient client;
  };
  std::vector<Sent> sent;
  const auto send = [&](std::int64_t id, int status) {
    const std::string answers = R"({"1":[)" + std::to_string(sent.size()) + "]}";
    HttpClient client(server.port());
    client.send(patch_request(attempt_target(id), answers_body(answers)));
    sent.push_back({id, status, answers, std::move(client)});
  };
  for (const auto id : existing) send(id, 204);
  send(missing, 404);
  for (const auto id : submitted) send(id, 409);
  std::this_thread::sleep_for(milliseconds(500));
  lock.release();

  EXPECT_EQ(decoy.read_response().status, 204);
  for (auto& request : sent) {
    const auto response = request.client.read_response();
    if (request.status == 204) {
      EXPECT_EQ(response.status, 204) << "attempt " << request.id << ": " << response;
      EXPECT_TRUE(StoredAnswersAre(db, request.id, request.answers));
    } else {
      EXPECT_TRUE(IsJsonError(response, request.status)) << "attempt " << request.id;
    }
  }
  for (const auto id : submitted) EXPECT_TRUE(StoredAnswersAre(db, id, "{}"));
  EXPECT_FALSE(db.attempt_exists(missing));

  // The seven queued writes shared a statement (one shard): the batch-size histogram saw one of
  // more than 4.
  const auto metrics = HttpClient(server.port()).request(get_request("/metrics")).body;
  const auto bucket = [&](const std::string& le) {
    const std::string key = "attempts_db_batch_rows_bucket{le=\"" + le + "\"} ";
    const auto at = metrics.find(key);
    return at == std::string::npos ? -1 : std::stoll(metrics.substr(at + key.size()));
  };
  EXPECT_LT(bucket("4"), bucket("+Inf")) << metrics;
}

// A worker crash (not a clean stop) truncates the UNLOGGED shards it holds: every attempt in
// them is gone, those on the other worker stay. After sql/durable.sql the shards are LOGGED and
// a crash loses nothing.
TEST_F(CitusTest, WorkerCrashEmptiesItsUnloggedShardsAndLoggedOnesSurvive) {
  const auto map = read_shard_map(url());
  const auto& crashed = cluster_->worker(0);
  std::int64_t on_crashed = 0;
  for (std::int64_t id = 1; id <= 100000; ++id) {
    if (map.shard(map.index_of(id)).node == crashed.host_port()) ++on_crashed;
  }
  const Database db(url());
  ASSERT_EQ(db.attempt_count(), 100000);

  cluster_->crash_worker(0);
  cluster_->start_worker(0);
  const auto after_unlogged_crash = db.attempt_count();
  report_figure("citus_attempts_on_crashed_worker", std::to_string(on_crashed));
  report_figure("citus_attempts_after_unlogged_worker_crash", std::to_string(after_unlogged_crash));
  EXPECT_EQ(after_unlogged_crash, 100000 - on_crashed);

  db.run_sql_file("seed.sql");
  db.run_sql_file("durable.sql");
  EXPECT_TRUE(db.attempts_table_is_logged());
  {
    pqxx::connection worker(crashed.url);
    pqxx::nontransaction tx(worker);
    tx.exec("SET citus.show_shards_for_app_name_prefixes = '*'");
    const auto unlogged =
        tx.exec(
              "SELECT count(*) FROM pg_class "
              "WHERE relname ~ '^(attempts|attempt_starts)_[0-9]+$' AND relkind = 'r' "
              "AND relpersistence <> 'p'")[0][0]
            .as<int>();
    EXPECT_EQ(unlogged, 0) << "SET LOGGED did not reach every shard on " << crashed.name;
  }
  std::int64_t written = 0;
  for (std::int64_t id = 1; written == 0; ++id) {
    if (map.shard(map.index_of(id)).node == crashed.host_port()) written = id;
  }
  pqxx::connection writer(url());
  {
    pqxx::work tx(writer);
    tx.exec_params("UPDATE attempts SET answers = '{\"1\":[1]}' WHERE id = $1", written);
    tx.commit();
  }
  cluster_->crash_worker(0);
  cluster_->start_worker(0);
  EXPECT_EQ(db.attempt_count(), 100000);
  EXPECT_TRUE(StoredAnswersAre(db, written, R"({"1":[1]})"));
}

// The progress streams' read (issue 31) goes through the coordinator as a multi-shard read: the
// LEFT JOIN of now() with the exam's attempts, whole and since an instant (then its one row of
// NULLs says nothing changed, with the coordinator's now()).
TEST_F(CitusTest, TheProgressReadWorksThroughTheCoordinator) {
  pqxx::connection connection(url());
  std::int64_t now_micros = 0;
  {
    pqxx::work tx(connection);
    // Exam 1 of the seed: attempts 1, 101, 201, ... (seed.sql), on every shard.
    const auto all = tx.exec_params(db::sql::kProgressChanged, "1", std::optional<std::string>());
    ASSERT_EQ(all.size(), 1000u);
    for (const auto& row : all) {
      EXPECT_FALSE(row[0].is_null());
      EXPECT_EQ((row[1].as<std::int64_t>() - 1) % 100, 0);
    }
    now_micros =
        tx.exec1("SELECT (extract(epoch FROM now()) * 1000000)::bigint")[0].as<std::int64_t>();
    const auto none = tx.exec_params(db::sql::kProgressChanged, "1", std::to_string(now_micros));
    ASSERT_EQ(none.size(), 1u);
    EXPECT_FALSE(none[0][0].is_null());
    EXPECT_TRUE(none[0][1].is_null());
    tx.commit();
  }
  {
    // As the shard statements save (now(), not clock_timestamp(), on Citus).
    pqxx::work tx(connection);
    tx.exec("UPDATE attempts SET updated_at = now(), answered = 3 WHERE id = 101");
    tx.commit();
  }
  pqxx::work tx(connection);
  const auto one = tx.exec_params(db::sql::kProgressChanged, "1", std::to_string(now_micros));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0][1].as<std::int64_t>(), 101);
  EXPECT_EQ(one[0][3].as<int>(), 3);
}

}  // namespace
}  // namespace attempts::integration
