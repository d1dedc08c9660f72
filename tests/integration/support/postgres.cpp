#include "support/postgres.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <pqxx/pqxx>
#include <thread>

#include "support/subprocess.hpp"

namespace attempts::integration {
namespace {

constexpr auto kPgCtlTimeout = std::chrono::seconds(90);
constexpr auto kPsqlTimeout = std::chrono::seconds(120);

std::string required_variable(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value) {
    throw MissingTestEnvironment(
        std::string(name) +
        " is not set. The integration tests need the throwaway PostgreSQL that scripts/test.sh "
        "starts: run scripts/test.sh (e.g. `scripts/test.sh -L integration`) instead of this "
        "binary or ctest directly.");
  }
  return value;
}

std::string optional_variable(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

TestEnvironment read_environment() {
  TestEnvironment env;
  env.database_url = required_variable("ATTEMPTS_TEST_DATABASE_URL");
  env.pg_bin = required_variable("ATTEMPTS_TEST_PG_BIN");
  env.pg_data = required_variable("ATTEMPTS_TEST_PG_DATA");
  env.pg_log = required_variable("ATTEMPTS_TEST_PG_LOG");
  env.pg_run_as = optional_variable("ATTEMPTS_TEST_PG_RUN_AS");
  env.sql_dir = optional_variable("ATTEMPTS_TEST_SQL_DIR");
  return env;
}

std::optional<std::string> optional_text(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<std::string>();
}

// pg_ctl on the test cluster.
CommandResult test_cluster_pg_ctl(const std::vector<std::string>& args) {
  return postgres_control::pg_ctl(TestEnvironment::get().pg_data, args);
}

void pg_ctl_or_throw(const std::vector<std::string>& args, const std::string& what) {
  const auto result = test_cluster_pg_ctl(args);
  if (result.status != ExitStatus::exit_code(0)) {
    throw std::runtime_error("pg_ctl " + what + " failed (" + result.status.describe() + "):\n" +
                             result.output);
  }
}

}  // namespace

const TestEnvironment& TestEnvironment::get() {
  // Read once; a missing variable throws every time it is asked for, failing each test.
  static const std::optional<TestEnvironment> cached = []() -> std::optional<TestEnvironment> {
    try {
      return read_environment();
    } catch (const MissingTestEnvironment&) {
      return std::nullopt;
    }
  }();
  if (!cached) read_environment();  // throws the precise message
  return *cached;
}

std::ostream& operator<<(std::ostream& out, const AttemptRow& row) {
  return out << "{answers=" << row.answers << ", updated_at=" << row.updated_at.value_or("NULL")
             << ", submitted_at=" << row.submitted_at.value_or("NULL") << "}";
}

Database::Database() : Database(TestEnvironment::get().database_url) {}

Database::Database(std::string url) : url_(std::move(url)) {}

void Database::reset_attempts(std::int64_t first, std::int64_t last) const {
  pqxx::connection connection(url_);
  pqxx::work tx(connection);
  tx.exec_params(
      "UPDATE attempts SET answers = '{}', revision = 0, updated_at = NULL, submitted_at = NULL, "
      "saves = 0 WHERE id BETWEEN $1 AND $2",
      first, last);
  tx.exec_params("DELETE FROM answer_history WHERE attempt_id BETWEEN $1 AND $2", first, last);
  tx.commit();
}

void Database::mark_submitted(std::int64_t id) const {
  pqxx::connection connection(url_);
  pqxx::work tx(connection);
  const auto result = tx.exec_params("UPDATE attempts SET submitted_at = now() WHERE id = $1", id);
  tx.commit();
  if (result.affected_rows() != 1) {
    throw std::runtime_error("mark_submitted: no attempt " + std::to_string(id));
  }
}

std::optional<AttemptRow> Database::read_attempt(std::int64_t id) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec_params(
      "SELECT answers::text, updated_at::text, submitted_at::text FROM attempts WHERE id = $1", id);
  if (rows.empty()) return std::nullopt;
  return AttemptRow{rows[0][0].as<std::string>(), optional_text(rows[0][1]),
                    optional_text(rows[0][2])};
}

bool Database::answers_equal(std::int64_t id, const std::string& answers_json) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  const auto rows =
      tx.exec_params("SELECT answers = $2::jsonb FROM attempts WHERE id = $1", id, answers_json);
  return !rows.empty() && rows[0][0].as<bool>();
}

std::string Database::answers_text(std::int64_t id) const {
  const auto row = read_attempt(id);
  return row ? row->answers : "";
}

bool Database::attempt_exists(std::int64_t id) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  return !tx.exec_params("SELECT 1 FROM attempts WHERE id = $1", id).empty();
}

int Database::lock_waiters() const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  return tx
      .exec(
          "SELECT count(*) FROM pg_stat_activity "
          "WHERE datname = current_database() AND wait_event_type = 'Lock'")[0][0]
      .as<int>();
}

bool Database::wait_for_lock_waiters(int count, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (lock_waiters() < count) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::int64_t Database::attempt_count() const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  return tx.exec("SELECT count(*) FROM attempts")[0][0].as<std::int64_t>();
}

bool Database::attempts_table_is_logged() const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  return tx.exec("SELECT relpersistence FROM pg_class WHERE oid = 'attempts'::regclass")[0][0]
             .as<std::string>() == "p";
}

void Database::make_attempts_table_unlogged() const {
  run_sql_file("unlogged.sql");
}

std::string Database::setting(const std::string& name) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  return tx.exec_params("SELECT current_setting($1)", name)[0][0].as<std::string>();
}

void Database::run_sql_file(const std::string& file_name) const {
  const auto& env = TestEnvironment::get();
  if (env.sql_dir.empty()) {
    throw MissingTestEnvironment(
        "ATTEMPTS_TEST_SQL_DIR is not set; run the tests through "
        "scripts/test.sh, which points it at the repo's sql/ directory");
  }
  SpawnOptions options;
  options.argv = {
      env.pg_bin + "/psql",         "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url_, "-f",
      env.sql_dir + "/" + file_name};
  options.env.emplace_back("PGOPTIONS", "-c client_min_messages=warning");
  const auto result = run_command(std::move(options), kPsqlTimeout);
  if (result.status != ExitStatus::exit_code(0)) {
    throw std::runtime_error("psql -f " + file_name + " failed (" + result.status.describe() +
                             "):\n" + result.output);
  }
}

struct AttemptLock::Held {
  explicit Held(const std::string& url) : connection(url), tx(connection) {}
  pqxx::connection connection;
  pqxx::work tx;
};

AttemptLock::AttemptLock(const Database& db, std::int64_t id)
    : held_(std::make_unique<Held>(db.url())) {
  const auto rows = held_->tx.exec_params("SELECT id FROM attempts WHERE id = $1 FOR UPDATE", id);
  if (rows.size() != 1) throw std::runtime_error("AttemptLock: no attempt " + std::to_string(id));
}

AttemptLock::~AttemptLock() {
  try {
    release();
  } catch (const std::exception&) {
    // The connection is gone, and with it the lock.
  }
}

void AttemptLock::release() {
  if (!held_) return;
  auto held = std::move(held_);
  held->tx.abort();
}

namespace postgres_control {

CommandResult pg_ctl(const std::string& data_dir, const std::vector<std::string>& args) {
  const auto& env = TestEnvironment::get();
  SpawnOptions options;
  if (!env.pg_run_as.empty()) options.argv = {"runuser", "-u", env.pg_run_as, "--"};
  options.argv.push_back(env.pg_bin + "/pg_ctl");
  options.argv.push_back("-D");
  options.argv.push_back(data_dir);
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.working_directory = "/";  // a directory the postgres user can enter
  return run_command(std::move(options), kPgCtlTimeout);
}

bool is_running() {
  // pg_ctl status: 0 running, 3 not running, 4 no accessible data directory.
  const auto result = test_cluster_pg_ctl({"status"});
  if (result.status == ExitStatus::exit_code(0)) return true;
  if (result.status == ExitStatus::exit_code(3)) return false;
  throw std::runtime_error("pg_ctl status failed (" + result.status.describe() + "):\n" +
                           result.output);
}

void stop() {
  pg_ctl_or_throw({"-w", "-t", "60", "stop", "-m", "fast"}, "stop");
}

void start() {
  pg_ctl_or_throw({"-l", TestEnvironment::get().pg_log, "-w", "-t", "60", "start"}, "start");
}

void restart() {
  // -l again: otherwise the new postmaster's output would go to pg_ctl's (temporary) output.
  pg_ctl_or_throw({"-l", TestEnvironment::get().pg_log, "-w", "-t", "60", "restart", "-m", "fast"},
                  "restart");
}

void crash() {
  pg_ctl_or_throw({"-w", "-t", "60", "stop", "-m", "immediate"}, "stop -m immediate");
}

}  // namespace postgres_control

PostgresOutage::PostgresOutage() {
  postgres_control::stop();
}

PostgresOutage::~PostgresOutage() {
  try {
    end();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "could not restart PostgreSQL after an outage test; later tests will fail: "
                  << error.what();
  }
}

void PostgresOutage::end() {
  if (ended_) return;
  if (!postgres_control::is_running()) postgres_control::start();
  ended_ = true;
}

}  // namespace attempts::integration
