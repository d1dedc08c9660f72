#include "model/history_check.hpp"

#include <algorithm>
#include <map>
#include <sstream>

namespace attempts::db::model {
namespace {

bool owns(const std::optional<StudentId>& student, const AttemptState& attempt) {
  return !student || *student == attempt.owner;
}

bool passed(const AttemptState& attempt, int tick) {
  return attempt.deadline_tick && tick >= *attempt.deadline_tick;
}

// One attempt's states in the order the database made them, the initial one first.
struct Version {
  long step = -1;
  AttemptState state;
};

class History {
 public:
  History(const Table& initial, const SimulatedDatabase& database) {
    for (const auto& [id, state] : initial) versions_[id].push_back({-1, state});
    for (const Change& change : database.changes()) {
      auto& versions = versions_[change.attempt];
      AttemptState state = versions.back().state;
      if (change.submit) {
        state.submitted_at = submitted_text(change.tick);
      } else {
        state.answers = change.answers;
        state.revision = change.revision;
        applied_at_[change.answers] = change.step;
      }
      versions.push_back({change.step, state});
    }
  }

  const AttemptState* initial(AttemptId id) const {
    const auto found = versions_.find(id);
    return found == versions_.end() ? nullptr : &found->second.front().state;
  }
  // When the write of these (unique) answers was applied.
  std::optional<long> applied(const std::string& answers) const {
    const auto found = applied_at_.find(answers);
    if (found == applied_at_.end()) return std::nullopt;
    return found->second;
  }
  // The states the attempt was in at some moment from step `from` to step `to`.
  std::vector<const AttemptState*> during(AttemptId id, long from, long to) const {
    std::vector<const AttemptState*> states;
    const auto found = versions_.find(id);
    if (found == versions_.end()) return states;
    const auto& versions = found->second;
    for (std::size_t i = 0; i < versions.size(); ++i) {
      const bool later_starts_before = i + 1 < versions.size() && versions[i + 1].step < from;
      if (!later_starts_before && versions[i].step <= to) states.push_back(&versions[i].state);
    }
    return states;
  }
  // The submit's time text and step, if the attempt was submitted by step `to`.
  std::optional<std::string> submitted_by(AttemptId id, long to) const {
    const auto found = versions_.find(id);
    if (found == versions_.end()) return std::nullopt;
    std::optional<std::string> submitted;
    for (const auto& version : found->second) {
      if (version.step <= to && version.state.submitted_at) return version.state.submitted_at;
    }
    return submitted;
  }

 private:
  std::map<AttemptId, std::vector<Version>> versions_;
  std::map<std::string, long> applied_at_;
};

}  // namespace

std::vector<std::string> check_history(const Table& initial, const Calls& calls,
                                       const SimulatedDatabase& database) {
  const History history(initial, database);
  std::vector<std::string> violations;
  const auto violation = [&](const ModelCall& model, const std::string& what) {
    violations.push_back(what + ": " + describe(model.call) + " arrived at loop " +
                         std::to_string(model.loop) + " step " + std::to_string(model.arrived) +
                         ", told " + describe(model.told));
  };

  for (const auto& owned : calls) {
    const ModelCall& model = *owned;
    const StoreCall& call = model.call;
    const Told& told = model.told;
    if (!told.answered) {
      violation(model, "never answered");
      continue;
    }
    const AttemptState* attempt = history.initial(call.attempt_id);
    const bool owner = attempt != nullptr && owns(call.student, *attempt);
    const long from = model.arrived;
    const long to = told.step;
    const auto states = history.during(call.attempt_id, from, to);
    const bool refused =
        told.outcome == StoreOutcome::not_found || told.outcome == StoreOutcome::submitted ||
        told.outcome == StoreOutcome::deadline_passed ||
        told.outcome == StoreOutcome::stale_revision || told.outcome == StoreOutcome::unavailable ||
        told.outcome == StoreOutcome::overloaded;
    if (told.outcome == StoreOutcome::not_found && owner)
      violation(model, "its owner told not found");
    if (!owner && told.outcome != StoreOutcome::not_found &&
        told.outcome != StoreOutcome::unknown && told.outcome != StoreOutcome::unavailable &&
        told.outcome != StoreOutcome::overloaded) {
      violation(model, "someone else's (or a missing) attempt answered other than not found");
    }

    if (call.kind == StoreCall::Kind::save_answers) {
      const auto applied = history.applied(call.answers_json);
      if (applied && *applied < from) violation(model, "applied before it arrived");
      if (applied && refused) violation(model, "applied, but told it was not");
      switch (told.outcome) {
        case StoreOutcome::done: {
          if (applied && *applied <= to) break;
          if (applied) {
            violation(model, "told done before it was applied");
            break;
          }
          // Never applied itself: it shared a row with a later write of the same writer that
          // was applied (the last one received is the one sent), unless it was sent itself.
          bool shared = false;
          if (!call.revision && database.received_answers().count(call.answers_json) == 0) {
            for (const auto& other : calls) {
              const StoreCall& later = other->call;
              if (other->arrived <= from || later.kind != StoreCall::Kind::save_answers ||
                  later.attempt_id != call.attempt_id || later.student != call.student ||
                  later.revision || other->loop != model.loop) {
                continue;
              }
              const auto later_applied = history.applied(later.answers_json);
              if (later_applied && *later_applied >= from && *later_applied <= to) shared = true;
            }
          }
          if (!shared)
            violation(model,
                      "told done, but neither it nor a write it shared a row with was applied");
          break;
        }
        case StoreOutcome::submitted: {
          const auto submitted = history.submitted_by(call.attempt_id, to);
          if (!submitted || told.submitted_at != submitted) {
            violation(model, "told submitted, but the attempt was not submitted so");
          }
          break;
        }
        case StoreOutcome::deadline_passed:
          if (attempt == nullptr || !attempt->deadline_tick ||
              told.deadline != deadline_text(*attempt->deadline_tick) ||
              !passed(*attempt, told.tick)) {
            violation(model, "told the deadline passed, but it had not");
          }
          break;
        case StoreOutcome::stale_revision: {
          const bool held = std::any_of(states.begin(), states.end(), [&](const AttemptState* s) {
            return s->revision == told.revision;
          });
          if (!call.revision || told.revision < *call.revision || !held) {
            violation(model,
                      "told its revision was stale with a revision the attempt did not hold");
          }
          break;
        }
        default:
          break;
      }
    } else if (call.kind == StoreCall::Kind::load_attempt && told.outcome == StoreOutcome::done) {
      const bool held = std::any_of(states.begin(), states.end(), [&](const AttemptState* s) {
        return s->answers == told.answers;
      });
      if (!held) violation(model, "read answers the attempt did not hold while it was read");
    } else if (call.kind == StoreCall::Kind::submit_attempt && told.outcome == StoreOutcome::done) {
      const auto submitted = history.submitted_by(call.attempt_id, to);
      if (!submitted || told.submitted_at != submitted) {
        violation(model, "told submitted, but the attempt was not submitted so");
      }
    }
  }

  // Order of the applied writes of each attempt.
  std::map<AttemptId, std::vector<std::pair<long, const ModelCall*>>> applied_writes;
  for (const auto& owned : calls) {
    if (owned->call.kind != StoreCall::Kind::save_answers) continue;
    if (const auto applied = history.applied(owned->call.answers_json)) {
      applied_writes[owned->call.attempt_id].push_back({*applied, owned.get()});
    }
  }
  for (const auto& [attempt, writes] : applied_writes) {
    for (const auto& [x_step, x] : writes) {
      for (const auto& [y_step, y] : writes) {
        if (x == y || x_step < y_step) continue;
        // y was applied before x (or with it): x must not have been answered before y arrived,
        // nor have arrived first at the same loop.
        if (x->told.step < y->arrived) {
          violation(*y,
                    "applied after an earlier write of its attempt that was answered before it "
                    "arrived, " +
                        describe(x->call) + " told " + describe(x->told) +
                        "; that one applied at step " + std::to_string(x_step) +
                        ", this one at step " + std::to_string(y_step));
        } else if (x->loop == y->loop && x->arrived < y->arrived) {
          violation(
              *y,
              "applied before a write of its attempt that arrived before it at the same loop, " +
                  describe(x->call) + " told " + describe(x->told));
        }
      }
    }
  }
  return violations;
}

std::vector<std::string> check_ledger(const Calls& calls, const SimulatedDatabase& database,
                                      bool history) {
  std::vector<std::string> problems;
  const auto& ledger = database.ledger();
  if (!history) {
    if (!ledger.empty()) problems.push_back("records were written with --history off");
    return problems;
  }
  std::map<AttemptId, std::vector<const Change*>> applied;
  for (const Change& change : database.changes()) applied[change.attempt].push_back(&change);
  std::map<AttemptId, std::vector<const LedgerRow*>> records;
  for (const LedgerRow& row : ledger) records[row.attempt].push_back(&row);
  for (const auto& [attempt, changes] : applied) {
    const auto& kept = records[attempt];
    std::size_t next = 0;
    std::int64_t seq = 0;
    for (const Change* change : changes) {
      const std::string where =
          "attempt " + std::to_string(attempt) + ", step " + std::to_string(change->step) + ": ";
      if (next == kept.size()) {
        problems.push_back(where + "applied with no record");
        break;
      }
      const LedgerRow& row = *kept[next++];
      if (change->submit) {
        if (row.kind != 'f' || row.seq != seq + 1) {
          problems.push_back(where + "the submit's record is not the next one, kind f");
        }
        continue;
      }
      if (row.kind != 's' || row.seq != ++seq || row.answers != change->answers ||
          row.step != change->step) {
        problems.push_back(where + "record " + std::to_string(row.seq) + " (" + row.answers +
                           ") is not the write applied (" + change->answers + "), number " +
                           std::to_string(seq));
      }
    }
    if (next < kept.size()) {
      problems.push_back("attempt " + std::to_string(attempt) + " has " +
                         std::to_string(kept.size() - next) + " records of nothing applied");
    }
  }
  for (const auto& [attempt, kept] : records) {
    if (!applied.count(attempt)) {
      problems.push_back("attempt " + std::to_string(attempt) + " has records but nothing applied");
    }
  }
  // Writes counted: every save told done is in one record; one told unknown may be.
  std::map<AttemptId, std::int64_t> counted;
  for (const LedgerRow& row : ledger) {
    if (row.kind == 's') counted[row.attempt] += row.writes;
  }
  std::map<AttemptId, std::int64_t> done;
  std::map<AttemptId, std::int64_t> unknown;
  for (const auto& model : calls) {
    if (model->call.kind != StoreCall::Kind::save_answers) continue;
    if (model->told.outcome == StoreOutcome::done) ++done[model->call.attempt_id];
    if (model->told.outcome == StoreOutcome::unknown) ++unknown[model->call.attempt_id];
  }
  for (const auto& [attempt, writes] : counted) {
    if (writes < done[attempt] || writes > done[attempt] + unknown[attempt]) {
      problems.push_back("attempt " + std::to_string(attempt) + ": the records stand for " +
                         std::to_string(writes) + " writes, " + std::to_string(done[attempt]) +
                         " were told done and " + std::to_string(unknown[attempt]) + " unknown");
    }
  }
  for (const auto& [attempt, count] : done) {
    if (count > 0 && counted[attempt] == 0) {
      problems.push_back("attempt " + std::to_string(attempt) + ": writes told done, no record");
    }
  }
  return problems;
}

Table apply_in_order(const Table& initial, const Calls& calls, std::vector<Told>& expected) {
  Table table = initial;
  expected.assign(calls.size(), Told{});
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const StoreCall& call = calls[i]->call;
    const Told& told = calls[i]->told;
    Told& want = expected[i];
    want.answered = true;
    want.tick = told.tick;
    want.step = told.step;
    if (told.outcome == StoreOutcome::unavailable) {
      want.outcome = StoreOutcome::unavailable;  // nothing changed: as if never sent
      continue;
    }
    const auto found = table.find(call.attempt_id);
    if (found == table.end() || !owns(call.student, found->second)) {
      want.outcome = StoreOutcome::not_found;
      continue;
    }
    AttemptState& attempt = found->second;
    switch (call.kind) {
      case StoreCall::Kind::save_answers:
        if (attempt.submitted_at) {
          want.outcome = StoreOutcome::submitted;
          want.submitted_at = attempt.submitted_at;
        } else if (passed(attempt, told.tick)) {
          want.outcome = StoreOutcome::deadline_passed;
          want.deadline = deadline_text(*attempt.deadline_tick);
        } else if (call.revision && *call.revision <= attempt.revision) {
          want.outcome = StoreOutcome::stale_revision;
          want.revision = attempt.revision;
        } else {
          want.outcome = StoreOutcome::done;
          attempt.answers = call.answers_json;
          if (call.revision) attempt.revision = *call.revision;
        }
        break;
      case StoreCall::Kind::submit_attempt:
        want.outcome = StoreOutcome::done;
        if (!attempt.submitted_at) attempt.submitted_at = submitted_text(told.tick);
        want.answers = attempt.answers;
        break;
      case StoreCall::Kind::load_attempt:
        want.outcome = StoreOutcome::done;
        want.answers = attempt.answers;
        break;
      default:
        break;
    }
  }
  return table;
}

std::string compare_with_sequential_model(const Table& initial, const Calls& calls,
                                          const Table& after, bool rollbacks) {
  std::vector<Told> expected;
  Table model_after = apply_in_order(initial, calls, expected);
  // How many records a save took depends on how writes shared rows, which one at a time does not
  // model: check_ledger judges the count.
  for (auto& [id, state] : model_after) {
    if (const auto found = after.find(id); found != after.end()) state.saves = found->second.saves;
  }
  std::ostringstream out;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const Told& told = calls[i]->told;
    const Told& want = expected[i];
    bool same = told.answered && told.outcome == want.outcome;
    if (same && want.outcome == StoreOutcome::stale_revision) same = told.revision == want.revision;
    if (same && want.outcome == StoreOutcome::submitted)
      same = told.submitted_at == want.submitted_at;
    if (same && want.outcome == StoreOutcome::deadline_passed)
      same = told.deadline == want.deadline;
    if (same && calls[i]->call.kind != StoreCall::Kind::save_answers &&
        want.outcome == StoreOutcome::done) {
      same = told.answers == want.answers;
    }
    // `unavailable` is only right when a rollback was retried too often.
    if (told.outcome == StoreOutcome::unavailable && !rollbacks) same = false;
    if (!same) {
      out << "call " << i << " (" << describe(calls[i]->call) << "): told " << describe(told)
          << ", the model says " << describe(want) << "\n";
    }
  }
  if (after != model_after) out << "the table differs from the model's at the end\n";
  return out.str();
}

}  // namespace attempts::db::model
