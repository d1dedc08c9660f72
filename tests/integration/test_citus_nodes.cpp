// The service on a Citus cluster with --citus-entry nodes (the default): every write enters at
// the node holding its shard, which runs it without a hop (reads and submits too), and a worker
// that stops under load costs its shards' writes (503, or 504 for those in flight) but nothing
// acknowledged, while /readyz names it. Skipped with the reason when Citus is not installed
// (CitusCluster).
//
// Where a statement entered is read from pg_stat_statements on each node: a statement the
// service sent to a node is recorded there under its own text (UPDATE attempts AS a ...); one a
// node forwards to the shard's node arrives there as Citus's shard query, which names the shard
// table (attempts_102008). Through the coordinator, the first are on the coordinator and the
// second on the workers; the test checks both ways, so the probe can tell them apart.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "support/citus_cluster.hpp"
#include "support/citus_load.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

using namespace citus_load;  // NOLINT: the shared helpers of these tests

// The save statements a node ran, by where they came from.
struct Entered {
  std::int64_t from_service = 0;  // the service's own statement
  std::int64_t forwarded = 0;     // Citus's shard query, sent by another node
};

class StatementsPerNode {
 public:
  explicit StatementsPerNode(std::vector<std::string> urls) : urls_(std::move(urls)) {}

  void reset() const {
    for (const auto& url : urls_) {
      pqxx::connection connection(url);
      pqxx::nontransaction tx(connection);
      tx.exec("SELECT pg_stat_statements_reset()");
    }
  }

  // In the order of the urls given.
  std::vector<Entered> read() const {
    std::vector<Entered> entered;
    for (const auto& url : urls_) {
      pqxx::connection connection(url);
      pqxx::nontransaction tx(connection);
      const auto row = tx.exec1(
          "SELECT coalesce(sum(calls) FILTER (WHERE query LIKE '%UPDATE attempts AS a%'), 0), "
          "       coalesce(sum(calls) FILTER (WHERE query ~ 'UPDATE [a-z_.]*attempts_[0-9]+'), 0) "
          "  FROM pg_stat_statements "
          " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())");
      entered.push_back({row[0].as<std::int64_t>(), row[1].as<std::int64_t>()});
    }
    return entered;
  }

 private:
  std::vector<std::string> urls_;
};

// Writes one attempt on each of two connections (the server hands connections to its 2 loops in
// turn, so each loop gets one), then whether pool connections `first` .. `first + count - 1` (the
// node connections, opened after the pool's) are all up.
bool node_connections_up(const ServerProcess& server, int first, int count) {
  HttpClient one(server.port());
  HttpClient two(server.port());
  for (HttpClient* client : {&one, &two}) {
    client->request(patch_request(attempt_target(9000), answers_body("{}")));
  }
  for (int i = first; i < first + count; ++i) {
    const auto sample = "attempts_db_connection_up{connection=\"" + std::to_string(i) + "\"}";
    if (metric(server.port(), sample) != 1) return false;
  }
  return true;
}

class CitusNodesTest : public ServiceOnCitusTest {};

TEST_F(CitusNodesTest, EveryWriteEntersAtTheNodeHoldingItsShard) {
  const Database db(url());
  const StatementsPerNode statements({url(), cluster_->worker(0).url, cluster_->worker(1).url});
  std::map<std::string, std::vector<Entered>> seen;
  for (const std::string entry : {"nodes", "coordinator"}) {
    auto server = start_server({"--threads", "2", "--pool-size", "2", "--citus-entry", entry});
    ASSERT_EQ(when_status(server.port(), get_request("/readyz"), 200, seconds(10)).status, 200);
    if (entry == "nodes") {
      // Each loop opens its node connections on its first call after reading the map: a few
      // writes (spread over the loops) make that happen, and the count starts once all four
      // (2 loops x 2 workers) are up.
      ASSERT_TRUE(eventually([&] { return node_connections_up(server, 2, 4); }, seconds(20)))
          << server.log();
    }
    db.reset_attempts(6000, 6000 + 32 * 8 - 1);  // its answer history too
    statements.reset();
    TaggedLoad load(server.port(), spread_ids(32, 8, 6000), 3);
    load.join();
    EXPECT_TRUE(load.errors().empty()) << load.errors().front();
    EXPECT_EQ(load.count(204), 32 * 8 * 3);
    EXPECT_EQ(load.check_stored(db), "");
    EXPECT_EQ(load.check_history(url()), "");
    server.terminate();
    seen[entry] = statements.read();
    const char* names[] = {"coordinator", "worker1", "worker2"};
    for (std::size_t n = 0; n < 3; ++n) {
      report_figure("citus_entry_" + entry + "_" + names[n] + "_service_statements",
                    std::to_string(seen[entry][n].from_service));
      report_figure("citus_entry_" + entry + "_" + names[n] + "_forwarded_statements",
                    std::to_string(seen[entry][n].forwarded));
    }
  }
  const auto& nodes = seen["nodes"];
  EXPECT_EQ(nodes[0].from_service, 0) << "a write entered at the coordinator";
  for (std::size_t w = 1; w < 3; ++w) {
    EXPECT_GT(nodes[w].from_service, 0) << "worker " << w << " ran none of the writes";
    EXPECT_EQ(nodes[w].forwarded, 0) << "worker " << w << " got writes from another node";
  }
  // The probe sees the hop when there is one: through the coordinator, every write is
  // forwarded to a worker.
  const auto& coordinator = seen["coordinator"];
  EXPECT_GT(coordinator[0].from_service, 0);
  EXPECT_GT(coordinator[1].forwarded + coordinator[2].forwarded, 0);
  EXPECT_EQ(coordinator[1].from_service + coordinator[2].from_service, 0);
}

// Reads and submits of an attempt go to its shard's node too, where submit_attempt() exists
// because sql/citus.sql creates schema.sql's functions on every node.
TEST_F(CitusNodesTest, ReadsAndSubmitsRunAtTheShardsNodeToo) {
  const std::vector<std::string> urls = {url(), cluster_->worker(0).url, cluster_->worker(1).url};
  auto server = start_server({"--threads", "2", "--pool-size", "2"});
  ASSERT_TRUE(eventually([&] { return node_connections_up(server, 2, 4); }, seconds(20)))
      << server.log();
  for (const auto& node : urls) {
    pqxx::connection connection(node);
    pqxx::nontransaction(connection).exec("SELECT pg_stat_statements_reset()");
  }
  HttpClient client(server.port());
  const std::string target = attempt_target(6001);
  EXPECT_EQ(client.request(get_request(target)).status, 200);
  EXPECT_EQ(client.request({"POST", target + "/submit", {}, ""}).status, 200);
  const auto late = client.request(patch_request(target, answers_body("{}")));
  EXPECT_EQ(late.status, 409) << late;

  std::vector<std::int64_t> submits;
  for (const auto& node : urls) {
    pqxx::connection connection(node);
    pqxx::nontransaction tx(connection);
    submits.push_back(tx.exec1("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                               "WHERE query LIKE '%FROM submit_attempt(%'")[0]
                          .as<std::int64_t>());
  }
  EXPECT_EQ(submits[0], 0) << "the submit ran on the coordinator";
  EXPECT_EQ(submits[1] + submits[2], 1) << "the submit ran on no worker";
}

TEST_F(CitusNodesTest, AStoppedWorkerCostsItsShardsWritesButNothingAcknowledged) {
  const Database db(url());
  const std::string down_node = cluster_->worker(1).host_port();
  auto server = start_server({"--threads", "2", "--pool-size", "2"});
  TaggedLoad load(server.port(), spread_ids(16, 8, 50'000), 100000);
  ASSERT_TRUE(eventually(
      [&] { return load.requests() >= 500 && node_connections_up(server, 2, 4); }, seconds(30)))
      << server.log();

  cluster_->stop_worker(1);
  const auto at_stop = load.requests();
  // /readyz stays 200 (the coordinator answers) and names the node that is down.
  HttpResponse ready;
  EXPECT_TRUE(eventually(
      [&] {
        ready = HttpClient(server.port()).request(get_request("/readyz"));
        return ready.body.find(down_node) != std::string::npos;
      },
      seconds(20)))
      << ready;
  EXPECT_EQ(ready.status, 200) << ready;
  // Writes go on: those of the other worker's shards succeed.
  const auto ok_before = load.count(204);
  ASSERT_TRUE(eventually([&] { return load.count(204) >= ok_before + 200; }, seconds(30)));
  const auto refused_while_down = load.requests() - at_stop - (load.count(204) - ok_before);

  cluster_->start_worker(1);
  EXPECT_TRUE(eventually(
      [&] {
        ready = HttpClient(server.port()).request(get_request("/readyz"));
        return ready.status == 200 && ready.body.find(down_node) == std::string::npos;
      },
      seconds(30)))
      << ready;
  // Back: every write succeeds again.
  const auto statuses_back = load.requests() - load.count(204);
  const auto requests_back = load.requests();
  ASSERT_TRUE(eventually([&] { return load.requests() >= requests_back + 500; }, seconds(30)));
  load.stop();
  const auto failed_after_back = (load.requests() - load.count(204)) - statuses_back;

  report_figure("citus_worker_stop_requests", std::to_string(load.requests()));
  report_figure("citus_worker_stop_non_204", std::to_string(load.requests() - load.count(204)));
  report_figure("citus_worker_stop_503", std::to_string(load.count(503)));
  report_figure("citus_worker_stop_504", std::to_string(load.count(504)));
  report_figure("citus_worker_stop_refused_while_down", std::to_string(refused_while_down));
  report_figure("citus_worker_stop_failed_after_back", std::to_string(failed_after_back));
  EXPECT_TRUE(load.errors().empty()) << load.errors().front();
  EXPECT_GT(refused_while_down, 0) << "the stopped worker's shards cannot be written";
  EXPECT_EQ(load.count(204) + load.count(503) + load.count(504), load.requests());
  // A few writes in flight when the node came back may still fail; not more than that.
  EXPECT_LE(failed_after_back, 32);
  EXPECT_EQ(load.check_stored(db), "") << "an acknowledged write was lost";
  EXPECT_EQ(load.check_history(url()), "");
}

}  // namespace
}  // namespace attempts::integration
