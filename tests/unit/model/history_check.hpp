#pragma once

// What the model tests hold the db layer to, given what each call was told and what the
// simulated database did (its changes, in order):
//
// check_history, for any run (several event loops and connections, deadlines, lost
// connections, Citus):
// - every outcome is one the database's history allows at some moment between the call's
//   arrival and its answer: a write told done was applied then (or shared a row with a later
//   write of its writer that was); a refusal names what stood in the way then (someone else's
//   attempt, the submit, the deadline, a revision the attempt held); a read returns answers
//   the attempt held; nothing told unavailable or overloaded was applied;
// - order: of two writes of one attempt that were both applied, the one answered before the
//   other arrived was applied first (whatever loops they went through), and so was the one
//   that arrived first at the same loop. So a write acknowledged 204 is never overwritten by
//   one its client sent before it.
//
// compare_with_sequential_model, where arrival order is one order (one event loop, no
// deadlines on calls, no lost connections): every call is told exactly what it would be told if
// the calls were applied one at a time in the order they arrived, and the table ends the same.

#include <memory>
#include <string>
#include <vector>

#include "model/simulated_database.hpp"
#include "model/world.hpp"

namespace attempts::db::model {

using Calls = std::vector<std::unique_ptr<ModelCall>>;

std::vector<std::string> check_history(const Table& initial, const Calls& calls,
                                       const SimulatedDatabase& database);

// The answer history the statements wrote (issue 29), against what the database applied: with
// `history`, each attempt's save records are exactly its applied writes, in the order applied,
// numbered 1, 2, 3, ... with the answers applied, and stand for as many writes as were told done
// (and at most as many more as were told unknown); a submit that happened has one record after
// them. Without it there is no record at all.
std::vector<std::string> check_ledger(const Calls& calls, const SimulatedDatabase& database,
                                      bool history);

// The calls applied one at a time in arrival order to `initial`, each judged at the tick it was
// told (the deadline is a matter of time); calls told `unavailable` changed nothing and are
// skipped. Fills `expected` per call (the outcome and its details) and returns the table after.
Table apply_in_order(const Table& initial, const Calls& calls, std::vector<Told>& expected);

// The differences, one per line; `rollbacks`: whether `unavailable` may be right (a rollback
// retried too often).
std::string compare_with_sequential_model(const Table& initial, const Calls& calls,
                                          const Table& after, bool rollbacks);

}  // namespace attempts::db::model
