#pragma once

// What the Citus service tests share: Citus's statement counters, the shard map as the service
// reads it, and TaggedLoad, clients writing tagged answers whose stored values can be checked
// exactly afterwards. Figures are printed as "[  FIGURE  ] name = value" lines.

#include <gtest/gtest.h>

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
#include "support/citus_cluster.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration::citus_load {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

inline void report_figure(const std::string& name, const std::string& value) {
  std::cout << "[  FIGURE  ] " << name << " = " << value << std::endl;
  testing::Test::RecordProperty(name, value);
}

inline std::string tagged_answers(int client, int seq) {
  return R"({"1":[)" + std::to_string(client) + R"(],"2":[)" + std::to_string(seq) + "]}";
}

// A fresh local Citus cluster per test (skipped with the reason where Citus is missing), and the
// server started against its coordinator.
class ServiceOnCitusTest : public testing::Test {
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

inline db::ShardMap read_shard_map(const std::string& url) {
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
inline std::int64_t node_id(const std::string& coordinator_url, std::uint16_t port) {
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
    std::optional<int> last_acknowledged;  // seq
    std::optional<int> later_unknown;      // a later seq answered 504 or not at all
    int acknowledged = 0;                  // writes answered 204
    int unknown = 0;                       // writes answered 504 or not at all
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
        bool fits =
            db.answers_equal(id, tagged_answers(static_cast<int>(c), *attempt.last_acknowledged));
        if (!fits && attempt.later_unknown) {
          fits = db.answers_equal(id, tagged_answers(static_cast<int>(c), *attempt.later_unknown));
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

  // Every attempt's answer history (kept on the shard's node by sql/citus.sql's trigger) agrees
  // with what the clients were told: its saves numbered 1.. without a gap, as many as
  // attempts.saves counts, the last holding the stored answers, and standing for every write
  // answered 204 and none that was never sent (a save coalesces writes: its `writes` says how
  // many). Describes the first mismatches, empty when all agree.
  std::string check_history(const std::string& url) const {
    pqxx::connection connection(url);
    pqxx::read_transaction tx(connection);
    std::string problems;
    int shown = 0;
    const auto problem = [&](std::int64_t id, const std::string& what) {
      if (shown++ < 5) problems += "attempt " + std::to_string(id) + ": " + what + "\n";
    };
    for (const auto& client : attempts_) {
      for (const auto& [id, attempt] : client) {
        if (attempt.acknowledged + attempt.unknown == 0) continue;
        const auto row = tx.exec_params1(
            "SELECT a.saves, a.answers::text, count(h.seq), coalesce(sum(h.writes), 0),"
            "       coalesce(min(h.seq), 0), coalesce(max(h.seq), 0),"
            "       coalesce((array_agg(h.answers::text ORDER BY h.seq DESC))[1], '')"
            "  FROM attempts a LEFT JOIN answer_history h"
            "    ON h.attempt_id = a.id AND h.kind = 's'"
            " WHERE a.id = $1 GROUP BY a.id, a.saves, a.answers::text",
            id);
        const auto saves = row[0].as<std::int64_t>();
        const auto kept = row[2].as<std::int64_t>();
        const auto writes = row[3].as<std::int64_t>();
        if (kept != saves || (kept > 0 && (row[4].as<std::int64_t>() != 1 ||
                                           row[5].as<std::int64_t>() != saves))) {
          problem(id, std::to_string(kept) + " saves kept, numbered " + row[4].c_str() + ".." +
                          row[5].c_str() + ", attempts.saves " + std::to_string(saves));
        } else if (writes < attempt.acknowledged ||
                   writes > attempt.acknowledged + attempt.unknown) {
          problem(id, "the saves stand for " + std::to_string(writes) + " writes; " +
                          std::to_string(attempt.acknowledged) + " were acknowledged, " +
                          std::to_string(attempt.unknown) + " unknown");
        } else if (kept > 0 && row[6].as<std::string>() != row[1].as<std::string>()) {
          problem(id, "the last save kept " + row[6].as<std::string>() + ", the row holds " +
                          row[1].as<std::string>());
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
            status =
                http.request(patch_request(
                                 attempt_target(id),
                                 answers_body(tagged_answers(static_cast<int>(client), this_seq))))
                    .status;
          } catch (const std::exception&) {
            attempt.later_unknown = this_seq;  // no answer: it may or may not have applied
            ++attempt.unknown;
            http = HttpClient(port);
          }
          ++requests_;
          if (status == 204) {
            attempt.last_acknowledged = this_seq;
            attempt.later_unknown.reset();
            ++attempt.acknowledged;
          } else if (status == 504) {
            attempt.later_unknown = this_seq;
            ++attempt.unknown;
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

// Ids spread over many shards, `per_client` for each of `clients`, none shared.
inline std::vector<std::vector<std::int64_t>> spread_ids(int clients, int per_client,
                                                         std::int64_t first) {
  std::vector<std::vector<std::int64_t>> ids(static_cast<std::size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    for (int k = 0; k < per_client; ++k) {
      ids[static_cast<std::size_t>(c)].push_back(first + c +
                                                 static_cast<std::int64_t>(k) * clients);
    }
  }
  return ids;
}

}  // namespace attempts::integration::citus_load
