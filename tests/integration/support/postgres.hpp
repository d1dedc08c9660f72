#pragma once

// The PostgreSQL that scripts/test.sh starts for the integration tests: where it is (from the
// ATTEMPTS_TEST_* environment), SQL against it, and stopping/starting it for outage tests.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/subprocess.hpp"

namespace attempts::integration {

// Thrown when the tests run outside scripts/test.sh; its message says what to do.
class MissingTestEnvironment : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What scripts/test.sh exports. Every test that needs PostgreSQL calls get(), which throws
// MissingTestEnvironment (failing the test, not skipping it) when a variable is missing.
struct TestEnvironment {
  std::string database_url;  // ATTEMPTS_TEST_DATABASE_URL, schema and seed loaded
  std::string pg_bin;        // ATTEMPTS_TEST_PG_BIN: pg_ctl lives here
  std::string pg_data;       // ATTEMPTS_TEST_PG_DATA
  std::string pg_log;        // ATTEMPTS_TEST_PG_LOG
  std::string pg_run_as;     // ATTEMPTS_TEST_PG_RUN_AS: OS user for pg_ctl, empty = ourselves
  std::string sql_dir;       // ATTEMPTS_TEST_SQL_DIR

  static const TestEnvironment& get();
};

// One attempts row, as text, for "nothing changed" comparisons and read-backs.
struct AttemptRow {
  std::string answers;  // answers::text (jsonb's canonical form)
  std::optional<std::string> updated_at;
  std::optional<std::string> submitted_at;

  bool operator==(const AttemptRow&) const = default;
};

std::ostream& operator<<(std::ostream& out, const AttemptRow& row);

// Short-lived libpqxx connections to the test database: one per call, so a call made after
// PostgreSQL was restarted just works. Values are always bound parameters.
class Database {
 public:
  Database();  // the test environment's database
  explicit Database(std::string url);

  const std::string& url() const { return url_; }

  // Puts attempts first..last back to their seeded state: answers '{}', revision 0, never
  // updated or submitted, no answer history.
  void reset_attempts(std::int64_t first, std::int64_t last) const;
  void mark_submitted(std::int64_t id) const;

  std::optional<AttemptRow> read_attempt(std::int64_t id) const;
  // Whether the stored answers equal `answers_json`, compared as jsonb (`answers = $2::jsonb`).
  bool answers_equal(std::int64_t id, const std::string& answers_json) const;
  // The stored answers as answers::text; "" for a missing id.
  std::string answers_text(std::int64_t id) const;
  bool attempt_exists(std::int64_t id) const;
  // How many sessions of this database wait for a lock right now.
  int lock_waiters() const;
  // Waits until at least `count` sessions wait for a lock (e.g. the server's write is stuck
  // behind an AttemptLock); false if that does not happen within `timeout`.
  bool wait_for_lock_waiters(int count, std::chrono::milliseconds timeout) const;

  // How many rows the attempts table holds (100000 after the seed).
  std::int64_t attempt_count() const;
  // Whether the attempts table is LOGGED (relpersistence 'p') rather than UNLOGGED ('u').
  bool attempts_table_is_logged() const;
  // sql/unlogged.sql: the schema's mode (a no-op when the tables already are UNLOGGED).
  void make_attempts_table_unlogged() const;
  // current_setting(name), e.g. "on" for synchronous_commit.
  std::string setting(const std::string& name) const;
  // Runs <ATTEMPTS_TEST_SQL_DIR>/<file_name> with `psql -X -v ON_ERROR_STOP=1 -f`, as the scripts
  // do (seed.sql ends with a VACUUM, which cannot run inside a transaction block). Throws
  // std::runtime_error with psql's output if it fails.
  void run_sql_file(const std::string& file_name) const;

 private:
  std::string url_;
};

// Holds a row lock on one attempt (SELECT ... FOR UPDATE in an open transaction) until
// release() or destruction, so that a write to that attempt waits inside PostgreSQL.
class AttemptLock {
 public:
  AttemptLock(const Database& db, std::int64_t id);
  ~AttemptLock();
  AttemptLock(const AttemptLock&) = delete;
  AttemptLock& operator=(const AttemptLock&) = delete;

  void release();

 private:
  struct Held;
  std::unique_ptr<Held> held_;
};

// pg_ctl on the test cluster, as the OS user the cluster belongs to. Throw std::runtime_error
// with pg_ctl's output if it fails.
namespace postgres_control {
// `pg_ctl -D <data_dir> <args...>` on any cluster (the test cluster's is pg_data), as the OS
// user the clusters belong to when we are root; bounded in time. Returns what pg_ctl did.
CommandResult pg_ctl(const std::string& data_dir, const std::vector<std::string>& args);
bool is_running();
void stop();     // fast shutdown; waits until it has stopped
void start();    // waits until it accepts connections
void restart();  // `pg_ctl restart -m fast`; returns once it accepts connections again
// `pg_ctl stop -m immediate`: every server process is killed without a shutdown checkpoint, as
// in a crash; the next start() runs crash recovery (and truncates UNLOGGED tables).
void crash();
}  // namespace postgres_control

// Stops PostgreSQL for its lifetime. Always starts it again, even when the test fails, since the
// other tests share it.
class PostgresOutage {
 public:
  PostgresOutage();
  ~PostgresOutage();
  PostgresOutage(const PostgresOutage&) = delete;
  PostgresOutage& operator=(const PostgresOutage&) = delete;

  // Ends the outage now (idempotent).
  void end();

 private:
  bool ended_ = false;
};

}  // namespace attempts::integration
