#include "support/citus_cluster.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <stdexcept>
#include <utility>

#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

using std::chrono::seconds;

// Every wait is bounded: pg_ctl waits up to its -t, and run_command kills what overruns.
constexpr auto kInitdbTimeout = seconds(120);
constexpr const char* kPgCtlWait = "60";
constexpr auto kQueryTimeout = seconds(60);
constexpr int kStartAttempts = 3;
constexpr const char* kDatabase = "attempts";

// The settings of every node. Small and quick to start: the tests' data fits in a few MB, and
// fsync off is safe for a throwaway cluster (a crash test kills processes, not the machine, so
// what was written still reaches the disk).
constexpr const char* kNodeSettings = R"conf(
# ---- added by CitusCluster (tests/integration/support/citus_cluster.cpp) ----
listen_addresses = '127.0.0.1'
# pg_stat_statements: the tests see on which node each of the service's statements entered
shared_preload_libraries = 'citus, pg_stat_statements'
shared_buffers = 32MB
max_connections = 100
fsync = off
full_page_writes = off
jit = off
# shard moves (citus_move_shard_placement) copy shards with logical replication
wal_level = logical
# the nodes talk over loopback: no TLS (CREATE EXTENSION citus would otherwise require it)
citus.node_conninfo = 'sslmode=disable'
# never try to send usage statistics out of a test
citus.enable_statistics_collection = off
)conf";

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

struct Availability {
  bool available = false;
  std::string reason;
};

Availability check_availability() {
  const char* bin = std::getenv("ATTEMPTS_TEST_PG_BIN");
  if (!bin || !*bin) {
    return {false,
            "ATTEMPTS_TEST_PG_BIN is not set, so there is no PostgreSQL to look for Citus in: run "
            "the tests through scripts/test.sh"};
  }
  const std::string pg_config = std::string(bin) + "/pg_config";
  const auto ask = [&](const char* flag) -> std::optional<std::string> {
    SpawnOptions options;
    options.argv = {pg_config, flag};
    try {
      auto result = run_command(std::move(options), seconds(30));
      if (result.status != ExitStatus::exit_code(0)) return std::nullopt;
      return trim(std::move(result.output));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  const auto pkglibdir = ask("--pkglibdir");
  const auto sharedir = ask("--sharedir");
  if (!pkglibdir || !sharedir) {
    return {false, "Citus tests skipped: cannot run " + pg_config +
                       " to find where extensions are installed"};
  }
  const std::string library = *pkglibdir + "/citus.so";
  const std::string control = *sharedir + "/extension/citus.control";
  std::error_code ignored;
  if (!std::filesystem::exists(library, ignored) || !std::filesystem::exists(control, ignored)) {
    return {false,
            "Citus tests skipped: the Citus extension is not installed in the PostgreSQL "
            "at " +
                std::string(bin) + " (no " + library + " or no " + control +
                "). Install Citus 13 for this PostgreSQL to run them; CI has no Citus."};
  }
  const std::string statements = *pkglibdir + "/pg_stat_statements.so";
  if (!std::filesystem::exists(statements, ignored)) {
    return {false,
            "Citus tests skipped: the nodes need pg_stat_statements (PostgreSQL's "
            "contrib), and there is no " +
                statements};
  }
  return {true, ""};
}

const Availability& availability() {
  static const Availability cached = check_availability();
  return cached;
}

std::string url_of(std::uint16_t port, const std::string& database) {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/" + database;
}

}  // namespace

bool CitusCluster::available() {
  return availability().available;
}

const std::string& CitusCluster::unavailable_reason() {
  return availability().reason;
}

std::string CitusCluster::log_tail(const Node& node, std::size_t bytes) {
  const std::string log = read_file(node.log_path);
  return log.size() <= bytes ? log : "..." + log.substr(log.size() - bytes);
}

// One node: its cluster is stopped when this is destroyed, also when the constructor of
// CitusCluster throws half-way.
struct CitusCluster::RunningNode {
  Node node;
  bool initialised = false;

  ~RunningNode() {
    if (!initialised) return;
    try {
      if (!is_running()) return;
      if (pg_ctl({"-w", "-t", kPgCtlWait, "stop", "-m", "fast"}).status !=
          ExitStatus::exit_code(0)) {
        pg_ctl({"-w", "-t", kPgCtlWait, "stop", "-m", "immediate"});
      }
    } catch (const std::exception&) {
      // Nothing more can be done from a destructor; the temp dir goes anyway.
    }
  }

  CommandResult pg_ctl(const std::vector<std::string>& args) const {
    return postgres_control::pg_ctl(node.data_dir, args);
  }

  void pg_ctl_or_throw(const std::vector<std::string>& args, const std::string& what) const {
    const auto result = pg_ctl(args);
    if (result.status != ExitStatus::exit_code(0)) {
      throw std::runtime_error("pg_ctl " + what + " of the Citus " + node.name + " failed (" +
                               result.status.describe() + "):\n" + result.output +
                               "\nend of its log:\n" + log_tail(node));
    }
  }

  bool is_running() const {
    // pg_ctl status: 0 running, 3 not running.
    return pg_ctl({"status"}).status == ExitStatus::exit_code(0);
  }

  void start() { pg_ctl_or_throw({"-l", node.log_path, "-w", "-t", kPgCtlWait, "start"}, "start"); }
};

CitusCluster::CitusCluster() : dir_("attempts-citus") {
  if (!available()) throw std::runtime_error(unavailable_reason());
  const auto& env = TestEnvironment::get();

  // The postgres OS user (when we are root) must reach the node directories.
  if (::chmod(dir_.path().c_str(), 0755) != 0) throw std::runtime_error(errno_text("chmod"));
  std::optional<std::pair<uid_t, gid_t>> owner;
  if (!env.pg_run_as.empty()) {
    const passwd* user = ::getpwnam(env.pg_run_as.c_str());
    if (!user) throw std::runtime_error("no OS user " + env.pg_run_as);
    owner = std::make_pair(user->pw_uid, user->pw_gid);
  }

  for (const char* name : {"coordinator", "worker1", "worker2"}) {
    auto running = std::make_unique<RunningNode>();
    Node& node = running->node;
    node.name = name;
    const std::string node_dir = dir_.file(name);
    node.data_dir = node_dir + "/data";
    node.log_path = node_dir + "/server.log";
    if (::mkdir(node_dir.c_str(), 0700) != 0) throw std::runtime_error(errno_text("mkdir"));
    if (owner && ::chown(node_dir.c_str(), owner->first, owner->second) != 0) {
      throw std::runtime_error(errno_text("chown " + node_dir));
    }

    SpawnOptions initdb;
    if (!env.pg_run_as.empty()) initdb.argv = {"runuser", "-u", env.pg_run_as, "--"};
    initdb.argv.insert(initdb.argv.end(), {env.pg_bin + "/initdb", "-D", node.data_dir, "-U",
                                           "postgres", "--auth=trust", "-E", "UTF8",
                                           "--locale=C.UTF-8", "--no-instructions", "--no-sync"});
    initdb.working_directory = "/";
    const auto made = run_command(std::move(initdb), kInitdbTimeout);
    if (made.status != ExitStatus::exit_code(0)) {
      throw std::runtime_error("initdb of the Citus " + node.name + " failed:\n" + made.output);
    }
    running->initialised = true;
    {
      std::ofstream conf(node.data_dir + "/postgresql.conf", std::ios::app);
      conf << kNodeSettings;
      // A Unix socket in the node's directory, unless the path would pass sun_path's limit.
      conf << "unix_socket_directories = '" << (node_dir.size() > 90 ? "" : node_dir) << "'\n";
      if (!conf) throw std::runtime_error("cannot write " + node.data_dir + "/postgresql.conf");
    }

    // Someone may take the port between pick_free_port() and the server's bind: then another.
    for (int attempt = 1;; ++attempt) {
      node.port = pick_free_port();
      node.url = url_of(node.port, kDatabase);
      {
        std::ofstream conf(node.data_dir + "/postgresql.conf", std::ios::app);
        conf << "port = " << node.port << "\n";  // the last port line wins
      }
      try {
        running->start();
        break;
      } catch (const std::runtime_error&) {
        const bool port_taken = log_tail(node).find("could not bind") != std::string::npos;
        if (!port_taken || attempt == kStartAttempts) throw;
      }
    }
    nodes_.push_back(std::move(running));
  }

  for (const auto& running : nodes_) {
    run_sql_on(running->node, "postgres", std::string("CREATE DATABASE ") + kDatabase);
    run_sql_on(running->node, kDatabase, "CREATE EXTENSION citus");
    run_sql_on(running->node, kDatabase, "CREATE EXTENSION pg_stat_statements");
  }
  const Node& coordinator_node = coordinator();
  run_sql_on(coordinator_node, kDatabase,
             "SELECT citus_set_coordinator_host('127.0.0.1', " +
                 std::to_string(coordinator_node.port) + ")");
  for (std::size_t i = 0; i < worker_count(); ++i) {
    run_sql_on(coordinator_node, kDatabase,
               "SELECT citus_add_node('127.0.0.1', " + std::to_string(worker(i).port) + ")");
  }
  const Database coordinator_db(coordinator_node.url);
  for (const char* file : {"schema.sql", "citus.sql", "seed.sql"}) {
    try {
      coordinator_db.run_sql_file(file);
    } catch (const std::runtime_error& error) {
      throw std::runtime_error(std::string(error.what()) + "\nend of the coordinator's log:\n" +
                               log_tail(coordinator_node));
    }
  }
}

CitusCluster::~CitusCluster() {
  // Workers first, so the coordinator is not left retrying connections to them while it stops.
  while (!nodes_.empty()) nodes_.pop_back();
}

void CitusCluster::run_sql_on(const Node& node, const std::string& database,
                              const std::string& sql) const {
  try {
    pqxx::connection connection(url_of(node.port, database) + "?connect_timeout=10");
    pqxx::nontransaction tx(connection);
    tx.exec("SET statement_timeout = '" + std::to_string(kQueryTimeout.count()) + "s'");
    tx.exec(sql);
  } catch (const std::exception& error) {
    throw std::runtime_error("on the Citus " + node.name + ", `" + sql +
                             "` failed: " + error.what() + "\nend of its log:\n" + log_tail(node));
  }
}

const CitusCluster::Node& CitusCluster::coordinator() const {
  return nodes_.front()->node;
}

const CitusCluster::Node& CitusCluster::worker(std::size_t index) const {
  return nodes_.at(index + 1)->node;
}

void CitusCluster::stop_worker(std::size_t index) {
  nodes_.at(index + 1)->pg_ctl_or_throw({"-w", "-t", kPgCtlWait, "stop", "-m", "fast"}, "stop");
}

void CitusCluster::crash_worker(std::size_t index) {
  nodes_.at(index + 1)->pg_ctl_or_throw({"-w", "-t", kPgCtlWait, "stop", "-m", "immediate"},
                                        "stop -m immediate");
}

void CitusCluster::start_worker(std::size_t index) {
  nodes_.at(index + 1)->start();
}

bool CitusCluster::worker_running(std::size_t index) const {
  return nodes_.at(index + 1)->is_running();
}

}  // namespace attempts::integration
