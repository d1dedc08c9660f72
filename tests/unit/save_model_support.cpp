#include "save_model_support.hpp"

#include <utility>

namespace attempts::db::model {

std::string describe(StoreOutcome outcome) {
  switch (outcome) {
    case StoreOutcome::done:
      return "done";
    case StoreOutcome::replayed:
      return "replayed";
    case StoreOutcome::not_found:
      return "not_found";
    case StoreOutcome::submitted:
      return "submitted";
    case StoreOutcome::deadline_passed:
      return "deadline_passed";
    case StoreOutcome::stale_revision:
      return "stale_revision";
    case StoreOutcome::key_reused:
      return "key_reused";
    case StoreOutcome::unavailable:
      return "unavailable";
    case StoreOutcome::overloaded:
      return "overloaded";
    case StoreOutcome::unknown:
      return "unknown";
  }
  return "?";
}

std::string describe(const StoreCall& call) {
  std::string text = call.kind == StoreCall::Kind::save_answers     ? "save"
                     : call.kind == StoreCall::Kind::submit_attempt ? "submit"
                     : call.kind == StoreCall::Kind::load_attempt   ? "load"
                                                                    : "other";
  text += " attempt " + std::to_string(call.attempt_id) + " by " +
          (call.student ? std::to_string(*call.student) : std::string("anyone"));
  if (call.revision) text += " revision " + std::to_string(*call.revision);
  if (call.kind == StoreCall::Kind::save_answers) text += " " + call.answers_json;
  return text;
}

std::string describe(const Told& told) {
  if (!told.answered) return "(not answered)";
  std::string text = describe(told.outcome);
  // Appended, not " " + a new string: GCC 12 warns of an overlapping copy there (-Wrestrict, a
  // false positive).
  if (told.outcome == StoreOutcome::stale_revision) {
    text.append(" ").append(std::to_string(told.revision));
  }
  if (told.outcome == StoreOutcome::submitted) {
    text.append(" ").append(told.submitted_at.value_or("?"));
  }
  if (told.outcome == StoreOutcome::deadline_passed) {
    text.append(" ").append(told.deadline.value_or("?"));
  }
  if (!told.answers.empty()) text += " answers " + told.answers;
  return text + " @" + std::to_string(told.tick);
}

void ModelCall::on_store_complete(StoreCall& completed) {
  told.answered = true;
  told.outcome = completed.outcome;
  told.tick = *clock;
  told.revision = completed.record.revision;
  told.submitted_at = completed.record.submitted_at;
  told.deadline = completed.record.deadline;
  if (completed.kind == StoreCall::Kind::load_attempt) told.answers = completed.record.answers_json;
}

namespace {

bool owns(const std::optional<StudentId>& student, const AttemptState& attempt) {
  return !student || *student == attempt.owner;
}

bool passed(const AttemptState& attempt, int tick) {
  return attempt.deadline_tick && tick >= *attempt.deadline_tick;
}

}  // namespace

Table apply_in_order(const Table& initial, const std::vector<std::unique_ptr<ModelCall>>& calls,
                     std::vector<Told>& expected) {
  Table table = initial;
  expected.assign(calls.size(), Told{});
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const StoreCall& call = calls[i]->call;
    const Told& told = calls[i]->told;
    Told& want = expected[i];
    want.answered = true;
    want.tick = told.tick;
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
        if (!attempt.submitted_at) attempt.submitted_at = "submitted@" + std::to_string(told.tick);
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

SimulatedConnection::SimulatedConnection(Table& table, const Conditions& conditions,
                                         std::mt19937_64& random)
    : table_(table), conditions_(conditions), random_(random), planner_(conditions.max_batch) {}

void SimulatedConnection::answer(PendingCall& pending, StoreOutcome outcome) {
  StoreCall* call = std::exchange(pending.call, nullptr);
  if (call == nullptr) return;
  call->outcome = outcome;
  pending.completion->on_store_complete(*call);
}

bool SimulatedConnection::run(std::vector<std::unique_ptr<ModelCall>>& calls) {
  std::bernoulli_distribution arrive(conditions_.arrival_chance);
  std::bernoulli_distribution tick(conditions_.tick_chance);
  std::size_t next = 0;
  const std::size_t most_steps = 100 * (calls.size() + 10);
  for (std::size_t step = 0; step < most_steps; ++step) {
    const bool all_arrived = next == calls.size();
    if (all_arrived && queue_.empty() && in_flight_.empty()) return true;
    if (!all_arrived && (in_flight_.empty() || arrive(random_))) {
      ModelCall& model = *calls[next++];
      model.clock = &clock_;
      if (!queue_.admit({&model.call, &model, 0})) return false;
    } else if (!in_flight_.empty()) {
      finish_front();
    }
    flush();
    if (tick(random_)) ++clock_;
  }
  return false;
}

void SimulatedConnection::flush() {
  while (statements_in_flight_ < conditions_.pipeline_depth && !queue_.empty()) {
    SavePlanner::Round round;
    planner_.next_round(queue_, nullptr, round);
    if (round.empty()) return;
    for (auto& batch : round.batches) {
      in_flight_.push_back({Sent::Kind::save, std::move(batch), {}});
      ++statements_in_flight_;
    }
    if (!round.call.answered()) {
      const StoreCall& call = *round.call.call;
      in_flight_.push_back({Sent::Kind::call, nullptr, round.call, call.kind, call.attempt_id});
      ++statements_in_flight_;
    }
  }
}

bool SimulatedConnection::deadline_passed(const AttemptState& attempt) const {
  return passed(attempt, clock_);
}

void SimulatedConnection::finish_front() {
  Sent sent = std::move(in_flight_.front());
  in_flight_.pop_front();
  switch (sent.kind) {
    case Sent::Kind::save: {
      --statements_in_flight_;
      std::bernoulli_distribution roll_back(conditions_.rollback_chance);
      if (roll_back(random_)) {
        std::vector<PendingCall> retry;
        planner_.finished(*sent.batch);
        sent.batch->rolled_back(conditions_.max_retries, retry, *this);
        queue_.requeue_front(retry);
        planner_.recycle(std::move(sent.batch));
        return;
      }
      execute_update(*sent.batch);
      if (sent.batch->committed(*this)) {
        // Sent when the UPDATE's sync is read: behind everything sent since.
        in_flight_.push_back({Sent::Kind::why_not_saved, std::move(sent.batch), {}});
        return;
      }
      planner_.finished(*sent.batch);
      planner_.recycle(std::move(sent.batch));
      return;
    }
    case Sent::Kind::why_not_saved:
      execute_why_not_saved(*sent.batch);
      sent.batch->explained(*this);
      planner_.finished(*sent.batch);
      planner_.recycle(std::move(sent.batch));
      return;
    case Sent::Kind::call:
      --statements_in_flight_;
      execute_call(sent);
      planner_.finished(sent.call_kind, sent.attempt);
      return;
  }
}

void SimulatedConnection::execute_update(SaveBatch& batch) {
  // sql.hpp's kSaveBatch: a row applies if the attempt is the writer's, not submitted, before
  // its deadline and, with a revision, newer.
  for (const auto& row : batch.rows()) {
    const auto found = table_.find(row.id);
    if (found == table_.end()) continue;
    AttemptState& attempt = found->second;
    if (!owns(row.student, attempt) || attempt.submitted_at || deadline_passed(attempt)) continue;
    if (row.revision && *row.revision <= attempt.revision) continue;
    attempt.answers = *row.answers;
    if (row.revision) attempt.revision = *row.revision;
    batch.saw_updated(row.id, attempt.owner);
  }
}

void SimulatedConnection::execute_why_not_saved(SaveBatch& batch) {
  for (const AttemptId id : batch.unsaved_ids()) {
    const auto found = table_.find(id);
    if (found == table_.end()) continue;
    const AttemptState& attempt = found->second;
    StoredAttempt stored;
    stored.id = id;
    stored.owner = attempt.owner;
    stored.revision = attempt.revision;
    stored.submitted_at = attempt.submitted_at;
    if (attempt.deadline_tick) stored.deadline = deadline_text(*attempt.deadline_tick);
    stored.deadline_passed = deadline_passed(attempt);
    batch.saw_stored(stored);
  }
}

void SimulatedConnection::execute_call(Sent& sent) {
  if (sent.call.answered()) return;
  StoreCall& call = *sent.call.call;
  const auto found = table_.find(call.attempt_id);
  if (found == table_.end() || !owns(call.student, found->second)) {
    return answer(sent.call, StoreOutcome::not_found);
  }
  AttemptState& attempt = found->second;
  if (call.kind == StoreCall::Kind::submit_attempt && !attempt.submitted_at) {
    attempt.submitted_at = "submitted@" + std::to_string(clock_);
  }
  call.record.answers_json = attempt.answers;
  call.record.submitted_at = attempt.submitted_at;
  answer(sent.call, StoreOutcome::done);
}

}  // namespace attempts::db::model
