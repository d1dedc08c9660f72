#pragma once

// A simulated database for the pure save path (CallQueue, SavePlanner, SaveBatch): it executes
// the statements a connection would send, in the order they were sent, with the semantics of
// src/db/sql.hpp's statements, and records what each call was told and when. The model tests
// compare that with the calls applied one at a time in arrival order.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "attempts/db/call_queue.hpp"
#include "attempts/db/pending_call.hpp"
#include "attempts/db/save_batch.hpp"
#include "attempts/db/save_planner.hpp"

namespace attempts::db::model {

// One attempt as the simulated table holds it. Time is a tick count; the deadline has passed
// from tick `deadline_tick` on.
struct AttemptState {
  StudentId owner = 0;
  Revision revision = 0;
  std::string answers = "{}";
  std::optional<std::string> submitted_at;
  std::optional<int> deadline_tick;

  bool operator==(const AttemptState&) const = default;
};

using Table = std::map<AttemptId, AttemptState>;

inline std::string deadline_text(int tick) {
  return "deadline@" + std::to_string(tick);
}

// What a call was told.
struct Told {
  bool answered = false;
  StoreOutcome outcome = StoreOutcome::unavailable;
  int tick = 0;                             // when: the tick of the statement that decided it
  Revision revision = 0;                    // stale_revision: the stored revision
  std::optional<std::string> submitted_at;  // submitted
  std::optional<std::string> deadline;      // deadline_passed
  std::string answers;                      // load: the stored answers
};

std::string describe(StoreOutcome outcome);
std::string describe(const StoreCall& call);
std::string describe(const Told& told);

// A call of the generated history, with its answer.
struct ModelCall final : StoreCompletion {
  StoreCall call;
  Told told;
  int* clock = nullptr;

  void on_store_complete(StoreCall& completed) override;
};

// The sequential model: the calls applied one at a time in arrival order to `initial`, each
// judged at the tick it was told (the deadline is a matter of time). Calls told `unavailable`
// changed nothing and are skipped. Fills `expected` per call (only `outcome` and the details)
// and returns the table after them.
Table apply_in_order(const Table& initial, const std::vector<std::unique_ptr<ModelCall>>& calls,
                     std::vector<Told>& expected);

// How the simulated connection behaves in one case.
struct Conditions {
  std::size_t pipeline_depth = 1;
  std::size_t max_batch = 256;
  std::uint8_t max_retries = 3;
  double rollback_chance = 0;   // a sent UPDATE rolls back with a transient error
  double tick_chance = 0.3;     // time moves on between two steps
  double arrival_chance = 0.5;  // the next call arrives rather than a statement finishing
};

// Drives the pure save path the way PgConnection does, against `table`.
class SimulatedConnection final : public CallAnswerer {
 public:
  SimulatedConnection(Table& table, const Conditions& conditions, std::mt19937_64& random);

  void answer(PendingCall& pending, StoreOutcome outcome) override;

  // Admits every call (in order), interleaved with statements finishing, until every call is
  // answered; false if it does not end within a bound of steps.
  bool run(std::vector<std::unique_ptr<ModelCall>>& calls);

  int clock() const { return clock_; }

 private:
  struct Sent {
    enum class Kind { save, why_not_saved, call } kind;
    std::unique_ptr<SaveBatch> batch;
    PendingCall call;
    StoreCall::Kind call_kind = StoreCall::Kind::ping;
    AttemptId attempt = 0;
  };

  void flush();
  void finish_front();
  void execute_update(SaveBatch& batch);
  void execute_why_not_saved(SaveBatch& batch);
  void execute_call(Sent& sent);
  bool deadline_passed(const AttemptState& attempt) const;

  Table& table_;
  Conditions conditions_;
  std::mt19937_64& random_;
  CallQueue queue_{{1u << 20, 1u << 30}};
  SavePlanner planner_;
  std::deque<Sent> in_flight_;
  std::size_t statements_in_flight_ = 0;
  int clock_ = 0;
};

}  // namespace attempts::db::model
