#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/domain/attempt_id.hpp"

namespace attempts {

using StudentId = std::int64_t;
using ExamId = std::int64_t;
// A client's number for one version of an attempt's answers; it grows with each change.
using Revision = std::int64_t;

// How a store call ended. Every outcome but `done` and `replayed` changed nothing, except
// `unknown`, which may or may not have.
enum class StoreOutcome {
  done,             // saved, found, submitted or started
  replayed,         // start: the Idempotency-Key's earlier attempt, returned again
  not_found,        // no such attempt (or exam) for this student: missing and foreign look alike
  submitted,        // save: the attempt is submitted, its answers are final (record.submitted_at)
  deadline_passed,  // save: the attempt's deadline has passed (record.deadline)
  stale_revision,   // save: the stored revision is as new or newer (record.revision)
  key_reused,       // start: the Idempotency-Key was used for another exam
  unavailable,      // the database could not do it; nothing was changed
  overloaded,       // refused before it was queued; nothing was changed
  unknown,          // sent, but the reply was lost or came too late: it may have been applied
};

// One attempt as stored; timestamps are ISO 8601 in UTC.
struct AttemptRecord {
  AttemptId id = 0;
  ExamId exam_id = 0;
  StudentId student_id = 0;
  std::string answers_json;  // the stored jsonb as PostgreSQL prints it
  Revision revision = 0;     // 0: no revision sent yet
  std::string started_at;
  std::optional<std::string> deadline;
  std::optional<std::string> updated_at;
  std::optional<std::string> submitted_at;

  // Frees what a large attempt left behind, so an idle connection holds no copy of it.
  void release_memory();
};

// One entry of an attempt's answer history: its start, a save, or its submit, as the store
// recorded it when it applied it.
struct HistoryEntry {
  enum class Kind { start, save, submit };

  std::int64_t seq = 0;  // 0 the start, then 1, 2, ... : strictly increasing per attempt
  Kind kind = Kind::save;
  std::string written_at;            // ISO 8601 in UTC, the clock of AttemptRecord::updated_at
  std::optional<Revision> revision;  // the client's, if it sent one
  std::int32_t writes = 1;           // how many of the client's writes the entry stands for
  std::string answers_json;          // the whole answer set as saved
};

// Which part of an attempt's history a load_history call asks for.
struct HistoryQuery {
  static constexpr std::int32_t kDefaultLimit = 50;
  static constexpr std::int32_t kMaxLimit = 200;

  // Entries older than this sequence number (the cursor of the next page); none: the newest.
  std::optional<std::int64_t> before;
  std::int32_t limit = kDefaultLimit;
  // The one entry in force at this instant (RFC 3339, checked by the caller): the newest
  // written at or before it, if any. `at` as the client wrote it; `at_utc` the same instant in
  // UTC, within the years 1 to 9999 (what the store reads).
  std::optional<std::string> at;
  std::string at_utc;
};

// One request to the store. The caller owns it (a connection reuses one for each of its
// requests), fills the inputs, and reads the outputs once the store has completed it.
struct StoreCall {
  enum class Kind {
    save_answers,    // PATCH: replace the answers (a full replace)
    load_attempt,    // GET
    submit_attempt,  // POST .../submit: make the answers final
    start_attempt,   // POST /exams/{id}/attempts
    ping,            // readiness: does the database answer?
    load_history,    // GET /attempts/{id}/history: entries of the answer history
  };

  // Inputs.
  Kind kind = Kind::ping;
  AttemptId attempt_id = 0;
  ExamId exam_id = 0;                // start_attempt
  std::optional<StudentId> student;  // the caller; nullopt only when authentication is off
  // load_attempt and load_history by a staff member (then `student` is nullopt): the attempt is
  // found only if exam_staff lists them for its exam. Such calls go to the staff store, on
  // connections of their own, never the write pool's.
  std::optional<std::string> staff_id;
  std::optional<Revision> revision;  // save_answers: apply only if newer than the stored one
  std::string answers_json;          // save_answers: a validated answers object
  std::int32_t answered = 0;         // save_answers: how many questions answers_json answers
  std::string idempotency_key;       // start_attempt: empty means none
  HistoryQuery history_query;        // load_history
  // The store completes the call by this time, whatever the database does.
  std::chrono::steady_clock::time_point deadline;

  // Outputs.
  StoreOutcome outcome = StoreOutcome::unavailable;
  AttemptRecord record;  // load, submit and start when done/replayed; see StoreOutcome
  // load_history when done: the entries asked for, newest first, and how many saves the
  // attempt has in all (its record's id is set).
  std::vector<HistoryEntry> history;
  std::int64_t saves = 0;
  // With `unavailable`: why, when the store knows something an operator must fix (for example
  // a table whose persistence does not fit the durability mode); empty otherwise.
  std::string problem;
  // A ping answered `done`: what is down although the store still answers (a Citus node whose
  // shards' writes go another way meanwhile), for /readyz to name; empty when nothing is.
  std::string degraded;

  // Clears inputs and outputs for the next request, keeping small buffers and freeing large.
  void reset();
};

// Told when a call is complete. Runs on the caller's event loop thread, exactly once per
// execute(), possibly before execute() returns.
class StoreCompletion {
 public:
  virtual void on_store_complete(StoreCall& call) = 0;

 protected:
  ~StoreCompletion() = default;
};

// The persistence port the HTTP layer talks to. One instance serves one event loop: every call
// and every completion happens on that loop's thread, so nothing on this path takes a lock or
// crosses threads. Calls for the same attempt made through one loop take effect in the order
// they were made; a call made (through any loop) after an earlier call of its attempt was
// completed, whatever it was told, takes effect after it: a write told `unknown` that still
// applies never lands after its client's next write.
class AttemptStore {
 public:
  virtual ~AttemptStore() = default;

  // Starts `call`. The call and the completion must stay alive until completed; the store
  // reads `call`'s inputs only until then.
  virtual void execute(StoreCall& call, StoreCompletion& completion) = 0;
};

}  // namespace attempts
