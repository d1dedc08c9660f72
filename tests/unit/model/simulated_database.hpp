#pragma once

// A simulated PostgreSQL for the model tests: the attempts table, and backends that run the
// service's statements (src/db/sql.hpp) with their semantics, one statement at a time, when the
// test says so. It sees what a server sees: prepared statement names and parameters in
// PostgreSQL's binary format, which it decodes; what it returns are real libpq results, built
// with libpq's own functions, so the connection reads them with the code it reads a server's
// with. A backend keeps running what it received after its client is gone (a network that
// failed) until it is terminated or its statement_timeout has passed: the case a connection's
// LostStatements is for.

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "attempts/domain/attempt_store.hpp"
#include "db/statement_codec.hpp"

namespace attempts::db::model {

// One attempt as the simulated table holds it. Time is a tick count; the deadline has passed
// from tick `deadline_tick` on.
struct AttemptState {
  StudentId owner = 0;
  Revision revision = 0;
  std::string answers = "{}";
  std::optional<std::string> submitted_at;
  std::optional<int> deadline_tick;
  std::int64_t saves = 0;  // attempts.saves: counted by the kept statements

  bool operator==(const AttemptState&) const = default;
};

using Table = std::map<AttemptId, AttemptState>;

inline std::string deadline_text(int tick) {
  return "deadline@" + std::to_string(tick);
}
inline std::string submitted_text(int tick) {
  return "submitted@" + std::to_string(tick);
}

// One row of answer_history, as the kept save statements (and start and submit) write it.
struct LedgerRow {
  AttemptId attempt = 0;
  std::int64_t seq = 0;
  char kind = 's';
  std::optional<Revision> revision;
  std::int32_t writes = 1;
  std::string answers;
  long step = 0;
};

// Something the database did to an attempt, in the order it did it.
struct Change {
  long step = 0;  // the world's step when it committed
  int tick = 0;
  AttemptId attempt = 0;
  bool submit = false;     // else a write of `answers`
  std::string answers;     // the answers after it
  Revision revision = 0;   // the revision after it
  bool by_orphan = false;  // run by a backend whose client was gone
};

// A statement as a backend received it: a prepared statement's name and its parameters (bytes;
// nullopt is NULL), or a query's text.
struct ReceivedStatement {
  std::string name;
  std::string query;
  std::vector<std::optional<std::string>> params;
};

// What a backend sends back for one statement: its results (or an error), then its sync.
struct Reply {
  std::vector<std::shared_ptr<PGresult>> results;
  std::optional<StatementError> error;
};

// What the database may do wrong on its own, per statement.
struct DatabaseFaults {
  double rollback_chance = 0;  // a save or submit rolls back with a serialization failure
  // On Citus: a row a save would apply is not found (a statement racing a shard split).
  double vanish_chance = 0;
  // The setup finds the lost backend it must end still running after its wait.
  double survives_terminate_chance = 0;
};

struct Backend {
  int pid = 0;
  std::int64_t started_us = 0;
  bool alive = true;                       // false once it has exited
  bool orphan = false;                     // its client is gone; it runs what it received
  int orphan_until_tick = 0;               // when its statement_timeout has ended it
  std::deque<ReceivedStatement> received;  // flushed to it, not yet run
  std::deque<Reply> replies;               // run, not yet read by the client
};

class SimulatedDatabase {
 public:
  SimulatedDatabase(Table table, DatabaseFaults faults, std::mt19937_64& random)
      : table_(std::move(table)), faults_(faults), random_(random) {}

  // Citus: attempts is distributed over `shards` shards, on these nodes ("host:port"), in
  // turn.
  void distribute(int shards, std::vector<std::string> nodes);
  bool distributed() const { return shards_ > 0; }

  // The clock the statements read, and the world's step they are recorded at.
  void set_time(int tick, long step) {
    tick_ = tick;
    step_ = step;
  }
  int tick() const { return tick_; }

  Backend& open_backend();
  // Runs the oldest statement `backend` received; its reply waits for the client (dropped if
  // the backend is an orphan).
  void run_next(Backend& backend);
  // Ends orphans whose statement_timeout has passed.
  void end_timed_out_orphans();
  // The backends that have something to run.
  std::vector<Backend*> runnable();
  std::size_t runnable_count() const;

  const Table& table() const { return table_; }
  const std::vector<Change>& changes() const { return changes_; }
  const std::vector<LedgerRow>& ledger() const { return ledger_; }
  // Whether the sessions asked for the answer history (the setup's attempts.history).
  // The answers of every write judged in a save's row that committed, applied or not (not
  // those of a statement rolled back, nor of a row that vanished: those are sent again).
  const std::set<std::string>& received_answers() const { return received_answers_; }

 private:
  Reply run(Backend& backend, const ReceivedStatement& statement);
  Reply setup(const ReceivedStatement& statement, const Backend& backend);
  Reply save(const ReceivedStatement& statement, bool orphan);
  Reply load_history(const ReceivedStatement& statement);
  Reply why_not_saved(const ReceivedStatement& statement);
  Reply load_or_submit(const ReceivedStatement& statement, bool submit, bool orphan);
  Reply shard_map();
  bool rolls_back();
  bool deadline_passed(const AttemptState& attempt) const;

  Table table_;
  DatabaseFaults faults_;
  std::mt19937_64& random_;
  std::deque<Backend> backends_;  // stable addresses
  int next_pid_ = 1000;
  int tick_ = 0;
  long step_ = 0;
  int shards_ = 0;
  std::vector<std::string> nodes_;
  std::vector<Change> changes_;
  std::vector<LedgerRow> ledger_;
  bool history_ = true;
  std::set<std::string> received_answers_;
};

}  // namespace attempts::db::model
