#pragma once

// A throwaway Citus cluster for the integration tests: a coordinator and two workers, each a
// PostgreSQL cluster of its own made with initdb in a temporary directory, on free loopback
// ports, with database `attempts` holding sql/schema.sql, sql/citus.sql and sql/seed.sql.
//
// It needs the Citus extension installed in the PostgreSQL the tests use (ATTEMPTS_TEST_PG_BIN:
// citus.so in `pg_config --pkglibdir`, citus.control in `pg_config --sharedir`/extension). CI
// has no Citus: tests check CitusCluster::available() first and skip with
// CitusCluster::unavailable_reason().

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/subprocess.hpp"

namespace attempts::integration {

class CitusCluster {
 public:
  struct Node {
    std::string name;  // "coordinator", "worker1", "worker2"
    std::uint16_t port = 0;
    std::string data_dir;
    std::string log_path;
    std::string url;  // postgresql://postgres@127.0.0.1:<port>/attempts

    // As Citus names the node in pg_dist_node: "127.0.0.1:<port>".
    std::string host_port() const { return "127.0.0.1:" + std::to_string(port); }
  };

  // Whether Citus is installed in the test PostgreSQL (checked once, then cached).
  static bool available();
  // Why it is not, with what to do; empty when available() is true.
  static const std::string& unavailable_reason();

  // initdb, start, CREATE EXTENSION citus on each node, register the workers, load schema.sql,
  // citus.sql and seed.sql on the coordinator. Throws std::runtime_error with the failing step's
  // output (and the end of the node's log) if any step fails; whatever was started is stopped.
  CitusCluster();
  // Stops every node still running (pg_ctl -m fast, then -m immediate), each wait bounded, and
  // removes the directory.
  ~CitusCluster();
  CitusCluster(const CitusCluster&) = delete;
  CitusCluster& operator=(const CitusCluster&) = delete;

  const Node& coordinator() const;
  const std::string& coordinator_url() const { return coordinator().url; }
  std::size_t worker_count() const { return nodes_.size() - 1; }
  const Node& worker(std::size_t index) const;

  // pg_ctl on worker `index`: a fast shutdown, a crash (`stop -m immediate`: no shutdown
  // checkpoint; the next start runs crash recovery, which truncates UNLOGGED tables), a start
  // that returns once it accepts connections.
  void stop_worker(std::size_t index);
  void crash_worker(std::size_t index);
  void start_worker(std::size_t index);
  bool worker_running(std::size_t index) const;

  // The last `bytes` of a node's server log, for failure messages.
  static std::string log_tail(const Node& node, std::size_t bytes = 4000);

 private:
  struct RunningNode;

  void run_sql_on(const Node& node, const std::string& database, const std::string& sql) const;

  TempDir dir_;
  std::vector<std::unique_ptr<RunningNode>> nodes_;  // coordinator first
};

}  // namespace attempts::integration
