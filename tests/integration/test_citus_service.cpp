// The service on a Citus cluster (CitusCluster: a coordinator and two workers, skipped with the
// reason when Citus is not installed): it detects the distributed table, groups every batch by
// shard so that no statement it sends spans shards (Citus's own counters say so, and say the
// opposite with --citus off), and keeps every acknowledged write while shards are moved and
// split under load, picking up the new shard map.
//
// Also, on the plain PostgreSQL of the other tests (so it runs in CI): --citus on refuses with
// the reason instead of running unsharded.
//
// Figures are printed as "[  FIGURE  ] name = value" lines.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "attempts/db/shard_map.hpp"
#include "support/assertions.hpp"
#include "support/citus_cluster.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

void report_figure(const std::string& name, const std::string& value) {
  std::cout << "[  FIGURE  ] " << name << " = " << value << std::endl;
  testing::Test::RecordProperty(name, value);
}

std::string tagged_answers(int client, int seq) {
  return R"({"1":[)" + std::to_string(client) + R"(],"2":[)" + std::to_string(seq) + "]}";
}

// ---- Citus's view ----

struct StatementCounts {
  std::int64_t single_shard = 0;
  std::int64_t multi_shard = 0;
};

// Citus's per-database execution counters (citus_stat_counters, Citus 13.1+), switched on for
// the database's new sessions and reset, so that what the service's connections run is counted.
class CitusCounters {
 public:
  explicit CitusCounters(std::string url) : url_(std::move(url)) {
    exec("ALTER DATABASE attempts SET citus.enable_stat_counters = on");
    reset();
  }

  void reset() const { exec("SELECT citus_stat_counters_reset()"); }

  StatementCounts read() const {
    pqxx::connection connection(url_);
    pqxx::nontransaction tx(connection);
    const auto row = tx.exec1(
        "SELECT query_execution_single_shard, query_execution_multi_shard "
        "FROM citus_stat_counters WHERE name = current_database()");
    return {row[0].as<std::int64_t>(), row[1].as<std::int64_t>()};
  }

 private:
  void exec(const std::string& sql) const {
    pqxx::connection connection(url_);
    pqxx::nontransaction tx(connection);
    tx.exec(sql);
  }

  std::string url_;
};

db::ShardMap read_shard_map(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(db::kShardMapQuery);
  std::vector<db::ShardMapRow> parsed(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t c = 0; c < db::kShardMapColumns; ++c) {
      const auto field = rows[static_cast<int>(r)][static_cast<int>(c)];
      if (!field.is_null()) parsed[r][c] = field.c_str();
    }
  }
  return db::parse_shard_map(parsed);
}

// The Citus node id of a worker.
std::int64_t node_id(const std::string& coordinator_url, std::uint16_t port) {
  pqxx::connection connection(coordinator_url);
  pqxx::nontransaction tx(connection);
  return tx
      .exec_params1("SELECT nodeid FROM pg_dist_node WHERE nodeport = $1 AND noderole = 'primary'",
                    static_cast<int>(port))[0]
      .as<std::int64_t>();
}

// ---- load: each client writes its own attempts, every write tagged ----

// `clients` threads, each with one connection, writing its own ids round after round with
// answers tagged (client, seq), until stopped or a bound (count and time) is reached. It keeps
// per attempt the last write answered 204 and any later write whose outcome is unknown, so that
// the stored value can be checked exactly.
class TaggedLoad {
 public:
  struct Attempt {
    std::optional<int> last_acknowledged;   // seq
    std::optional<int> later_unknown;       // a later seq answered 504 or not at all
  };

  TaggedLoad(std::uint16_t port, std::vector<std::vector<std::int64_t>> ids_per_client,
             int max_rounds)
      : ids_(std::move(ids_per_client)), attempts_(ids_.size()) {
    for (std::size_t c = 0; c < ids_.size(); ++c) {
      threads_.emplace_back([this, port, c, max_rounds] { run(port, c, max_rounds); });
    }
  }

  ~TaggedLoad() { stop(); }

  // Stops the clients after their current request.
  void stop() {
    stop_ = true;
    join();
  }
  // Waits until every client has made all its rounds.
  void join() {
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

  std::int64_t count(int status) const {
    std::lock_guard lock(mutex_);
    const auto at = statuses_.find(status);
    return at == statuses_.end() ? 0 : at->second;
  }
  std::int64_t requests() const { return requests_.load(); }
  const std::vector<std::string>& errors() const { return errors_; }

  // Every attempt's stored answers are its last acknowledged write (or a later write whose
  // outcome was unknown); describes the first mismatches, empty when all agree.
  std::string check_stored(const Database& db) const {
    std::string problems;
    int shown = 0;
    for (std::size_t c = 0; c < ids_.size(); ++c) {
      for (const auto& [id, attempt] : attempts_[c]) {
        if (!attempt.last_acknowledged) continue;
        const auto stored = db.answers_text(id);
        bool fits = db.answers_equal(id, tagged_answers(static_cast<int>(c),
                                                        *attempt.last_acknowledged));
        if (!fits && attempt.later_unknown) {
          fits = db.answers_equal(id,
                                  tagged_answers(static_cast<int>(c), *attempt.later_unknown));
        }
        if (!fits && shown++ < 5) {
          problems += "attempt " + std::to_string(id) + " holds " + stored +
                      ", the last acknowledged write was seq " +
                      std::to_string(*attempt.last_acknowledged) + "\n";
        }
      }
    }
    return problems;
  }

  std::size_t acknowledged_attempts() const {
    std::size_t n = 0;
    for (const auto& client : attempts_) {
      for (const auto& [id, attempt] : client) n += attempt.last_acknowledged.has_value();
    }
    return n;
  }

 private:
  void run(std::uint16_t port, std::size_t client, int max_rounds) {
    const auto deadline = Clock::now() + seconds(120);
    try {
      HttpClient http(port);
      int seq = 0;
      for (int round = 0; round < max_rounds && !stop_ && Clock::now() < deadline; ++round) {
        for (const auto id : ids_[client]) {
          if (stop_) break;
          auto& attempt = attempts_[client][id];
          const int this_seq = seq++;
          int status = 0;
          try {
            status = http.request(patch_request(attempt_target(id),
                                                answers_body(tagged_answers(
                                                    static_cast<int>(client), this_seq))))
                         .status;
          } catch (const std::exception&) {
            attempt.later_unknown = this_seq;  // no answer: it may or may not have applied
            http = HttpClient(port);
          }
          ++requests_;
          if (status == 204) {
            attempt.last_acknowledged = this_seq;
            attempt.later_unknown.reset();
          } else if (status == 504) {
            attempt.later_unknown = this_seq;
          }
          std::lock_guard lock(mutex_);
          ++statuses_[status];
        }
      }
    } catch (const std::exception& error) {
      std::lock_guard lock(mutex_);
      errors_.push_back("client " + std::to_string(client) + ": " + error.what());
    }
  }

  std::vector<std::vector<std::int64_t>> ids_;
  std::vector<std::map<std::int64_t, Attempt>> attempts_;  // per client, written by it only
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> requests_{0};
  mutable std::mutex mutex_;
  std::map<int, std::int64_t> statuses_;
  std::vector<std::string> errors_;
};

// Waits until `ready()` holds, up to `timeout`; whether it did.
template <typename Ready>
bool eventually(Ready ready, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!ready()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return true;
}

class CitusServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    (void)TestEnvironment::get();
    if (!CitusCluster::available()) GTEST_SKIP() << CitusCluster::unavailable_reason();
    cluster_ = std::make_unique<CitusCluster>();
  }

  const std::string& url() const { return cluster_->coordinator_url(); }

  ServerProcess start_server(std::vector<std::string> flags) const {
    ServerSettings settings = ServerSettings::with_flags(std::move(flags));
    settings.database_url = url();
    return ServerProcess(settings);
  }

  std::unique_ptr<CitusCluster> cluster_;
};

// Ids spread over many shards, `per_client` for each of `clients`, none shared.
std::vector<std::vector<std::int64_t>> spread_ids(int clients, int per_client,
                                                  std::int64_t first) {
  std::vector<std::vector<std::int64_t>> ids(static_cast<std::size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    for (int k = 0; k < per_client; ++k) {
      ids[static_cast<std::size_t>(c)].push_back(first + c + static_cast<std::int64_t>(k) * clients);
    }
  }
  return ids;
}

TEST_F(CitusServiceTest, EveryStatementOfTheServiceIsSingleShardAndNaiveBatchesAreNot) {
  const Database db(url());
  const CitusCounters counters(url());
  for (const std::int64_t id : {7001, 7002, 7003}) db.mark_submitted(id);

  std::map<std::string, StatementCounts> seen;
  for (const std::string mode : {"auto", "off"}) {
    counters.reset();
    // One event loop, two connections: each owns 16 of the 32 shards, so every batch must be
    // split by shard to stay single-shard.
    auto server = start_server({"--threads", "1", "--pool-size", "2", "--citus", mode});
    ASSERT_EQ(when_status(server.port(), get_request("/readyz"), 200, seconds(10)).status, 200);
    if (mode == "auto") {
      EXPECT_NE(server.log().find("Citus distributed table with 32 shards"), std::string::npos)
          << server.log();
      EXPECT_EQ(metric(server.port(), "attempts_db_citus_shards"), 32);
    } else {
      EXPECT_EQ(metric(server.port(), "attempts_db_citus_shards"), 0);
    }
    // A batch mix: 32 clients writing many shards at once, plus missing and submitted ids,
    // whose check (why_not_saved) is a statement of its own.
    TaggedLoad load(server.port(), spread_ids(32, 8, 6000), 3);
    load.join();
    EXPECT_TRUE(load.errors().empty()) << load.errors().front();
    EXPECT_EQ(load.count(204), 32 * 8 * 3);
    EXPECT_EQ(load.check_stored(db), "");
    for (const std::int64_t id : {7001, 7002, 7003}) {
      EXPECT_TRUE(IsJsonError(HttpClient(server.port())
                                  .request(patch_request(attempt_target(id), answers_body("{}"))),
                              409));
    }
    EXPECT_TRUE(IsJsonError(HttpClient(server.port())
                                .request(patch_request(attempt_target(200'000), answers_body("{}"))),
                            404));
    EXPECT_EQ(HttpClient(server.port()).request(get_request(attempt_target(6000))).status, 200);
    const double batches = metric(server.port(), "attempts_db_batch_rows_count");
    const double rows = metric(server.port(), "attempts_db_batch_rows_sum");
    report_figure("citus_" + mode + "_rows_per_statement", std::to_string(rows / batches));
    server.terminate();
    seen[mode] = counters.read();
    report_figure("citus_" + mode + "_single_shard_statements",
                  std::to_string(seen[mode].single_shard));
    report_figure("citus_" + mode + "_multi_shard_statements",
                  std::to_string(seen[mode].multi_shard));
  }
  EXPECT_EQ(seen["auto"].multi_shard, 0) << "a statement of the service spanned shards";
  EXPECT_GT(seen["auto"].single_shard, 0);
  // The counters do see multi-shard statements: the same load unsharded makes them.
  EXPECT_GT(seen["off"].multi_shard, 0);
}

// Moves one shard to the other worker, or splits one in two across both workers, while 16
// clients write; returns the new shard count.
enum class Reshard { move, split };

class CitusReshardTest : public CitusServiceTest,
                         public testing::WithParamInterface<Reshard> {};

TEST_P(CitusReshardTest, UnderLoadNothingAcknowledgedIsLostOrDuplicatedAndTheMapIsReadAgain) {
  const Database db(url());
  const auto before = read_shard_map(url());
  ASSERT_EQ(before.size(), 32u);
  // The shard of attempt 1, on whichever worker holds it, goes to (or is split across) both.
  const std::size_t index = before.index_of(1);
  const auto& shard = before.shard(index);
  const std::uint16_t from = shard.node == cluster_->worker(0).host_port()
                                 ? cluster_->worker(0).port
                                 : cluster_->worker(1).port;
  const std::uint16_t to = from == cluster_->worker(0).port ? cluster_->worker(1).port
                                                            : cluster_->worker(0).port;
  // Half the clients write attempts in that shard, the others anywhere.
  std::vector<std::int64_t> in_shard;
  for (std::int64_t id = 1; id <= 100000 && in_shard.size() < 64; ++id) {
    if (before.index_of(id) == index) in_shard.push_back(id);
  }
  auto ids = spread_ids(16, 8, 50'000);
  for (std::size_t c = 0; c < 8; ++c) {
    ids[c].assign(in_shard.begin() + static_cast<std::ptrdiff_t>(c * 8),
                  in_shard.begin() + static_cast<std::ptrdiff_t>(c * 8 + 8));
  }

  auto server = start_server({"--threads", "2", "--pool-size", "4"});
  TaggedLoad load(server.port(), ids, 100000);
  ASSERT_TRUE(eventually([&] { return load.requests() >= 500; }, seconds(30)));
  const auto requests_before = load.requests();
  const auto started = Clock::now();
  {
    // UNLOGGED shards cannot be published for logical replication, so the move copies them
    // with writes blocked; the service's writes wait for it, as they would for a lock.
    pqxx::connection connection(url());
    pqxx::nontransaction tx(connection);
    if (GetParam() == Reshard::move) {
      tx.exec_params(
          "SELECT citus_move_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3, "
          "shard_transfer_mode => 'block_writes')",
          shard.shard_id, static_cast<int>(from), static_cast<int>(to));
    } else {
      const std::int64_t middle =
          (static_cast<std::int64_t>(shard.min_hash) + shard.max_hash) / 2;
      tx.exec_params(
          "SELECT citus_split_shard_by_split_points($1, ARRAY[$2::text], ARRAY[$3::int, $4::int], "
          "shard_transfer_mode => 'block_writes')",
          shard.shard_id, std::to_string(middle), static_cast<int>(node_id(url(), from)),
          static_cast<int>(node_id(url(), to)));
    }
  }
  const auto reshard_ms =
      std::chrono::duration_cast<milliseconds>(Clock::now() - started).count();
  const std::size_t shards_after = GetParam() == Reshard::move ? 32 : 33;
  // Each connection reads the map again within its check interval (5 s).
  EXPECT_TRUE(eventually(
      [&] {
        return metric(server.port(), "attempts_db_shard_map_changes_total") >= 4 &&
               metric(server.port(), "attempts_db_citus_shards") ==
                   static_cast<double>(shards_after);
      },
      seconds(20)))
      << server.log();
  // Load goes on after the change, on the new map.
  const auto requests_after_change = load.requests();
  ASSERT_TRUE(
      eventually([&] { return load.requests() >= requests_after_change + 500; }, seconds(30)));
  load.stop();

  const char* what = GetParam() == Reshard::move ? "move" : "split";
  report_figure(std::string("citus_") + what + "_ms", std::to_string(reshard_ms));
  report_figure(std::string("citus_") + what + "_requests_total",
                std::to_string(load.requests()));
  report_figure(std::string("citus_") + what + "_requests_during_and_after",
                std::to_string(load.requests() - requests_before));
  report_figure(std::string("citus_") + what + "_non_204",
                std::to_string(load.requests() - load.count(204)));
  EXPECT_TRUE(load.errors().empty()) << load.errors().front();
  EXPECT_EQ(load.count(204), load.requests()) << "every write is acknowledged, none refused";
  EXPECT_EQ(load.check_stored(db), "");
  EXPECT_EQ(load.acknowledged_attempts(), 16u * 8u);

  // Nothing duplicated: every attempt once, in exactly one placement, on the node the new map
  // names for it.
  const auto after = read_shard_map(url());
  EXPECT_EQ(after.size(), shards_after);
  EXPECT_NE(after, before);
  EXPECT_EQ(db.attempt_count(), 100000);
  {
    pqxx::connection connection(url());
    pqxx::nontransaction tx(connection);
    EXPECT_EQ(tx.exec1("SELECT count(DISTINCT id) FROM attempts")[0].as<std::int64_t>(), 100000);
  }
  for (const auto id : in_shard) {
    const auto& now = after.shard(after.index_of(id));
    pqxx::connection worker("postgresql://postgres@" + now.node + "/attempts");
    pqxx::nontransaction tx(worker);
    const auto rows = tx.exec_params1(
        "SELECT count(*) FROM " + std::string("attempts_") + std::to_string(now.shard_id) +
            " WHERE id = $1",
        id);
    EXPECT_EQ(rows[0].as<std::int64_t>(), 1) << "attempt " << id << " in shard " << now.shard_id;
  }
}

INSTANTIATE_TEST_SUITE_P(Reshards, CitusReshardTest, testing::Values(Reshard::move, Reshard::split),
                         [](const testing::TestParamInfo<Reshard>& param_info) {
                           return param_info.param == Reshard::move ? "ShardMove" : "ShardSplit";
                         });

// ---- on one PostgreSQL ----

TEST(CitusRequiredTest, OnAPlainDatabaseCallsAreRefusedWithTheReason) {
  const Database db;
  constexpr std::int64_t kId = 9720;
  db.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--citus", "on"}));
  const auto ready = HttpClient(server.port()).request(get_request("/readyz"));
  EXPECT_TRUE(IsUnavailable(ready)) << ready;
  EXPECT_NE(ready.body.find("not a Citus distributed table"), std::string::npos) << ready;
  const auto write = HttpClient(server.port())
                         .request(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})")));
  EXPECT_TRUE(IsUnavailable(write)) << write;
  EXPECT_NE(write.body.find("sql/citus.sql"), std::string::npos) << write;
  EXPECT_EQ(db.read_attempt(kId)->updated_at, std::nullopt);
  EXPECT_EQ(metric(server.port(), "attempts_db_citus_shards"), 0);

  // auto (the default) and off run as ever on one PostgreSQL.
  for (const char* mode : {"auto", "off"}) {
    ServerProcess plain(ServerSettings::with_flags({"--citus", mode}));
    EXPECT_EQ(HttpClient(plain.port())
                  .request(patch_request(attempt_target(kId), answers_body(R"({"1":[2]})")))
                  .status,
              204)
        << mode;
  }
  EXPECT_TRUE(StoredAnswersAre(db, kId, R"({"1":[2]})"));
}

}  // namespace
}  // namespace attempts::integration
