#include "attempts/db/save_batch.hpp"

#include <algorithm>
#include <utility>

namespace attempts::db {

void SaveBatch::reset(std::uint32_t group, std::size_t max_rows) {
  phase_ = Phase::building;
  group_ = group;
  max_rows_ = std::max<std::size_t>(max_rows, 1);
  rows_.clear();
  members_.clear();
  sorted_.clear();
  first_row_.clear();
  unsaved_ids_.clear();
  answer_bytes_ = 0;
  answers_.clear();
}

bool SaveBatch::add(const PendingCall& pending) {
  const StoreCall& call = *pending.call;
  const auto member = static_cast<std::uint32_t>(members_.size());
  const auto index = static_cast<std::uint32_t>(rows_.size() + 1);
  // The attempt's first row, or this new one if it has none yet (the usual case).
  const std::uint32_t first = rows_.size() < max_rows_ ? first_row_.insert(call.attempt_id, index)
                                                       : first_row_.find(call.attempt_id);
  const std::size_t bytes = call.answers_json.size();
  std::uint32_t last = 0;
  for (std::uint32_t r = first; r != 0; r = rows_[r - 1].next_of_attempt) {
    RowState& state = rows_[r - 1];
    last = r;
    if (state.row.student == call.student) {
      // The same writer: only writes without a revision share a row, the last one sent.
      if (state.row.revision || call.revision) return false;
      const std::size_t replaced = members_[state.sent_member].pending.call->answers_json.size();
      if (answer_bytes_ - replaced + bytes > kMaxAnswerBytes) return false;
      answer_bytes_ = answer_bytes_ - replaced + bytes;
      state.sent_member = member;
      members_.push_back({pending, r - 1});
      return true;
    }
    // A writer who matches any owner shares the attempt with nobody.
    if (!state.row.student || !call.student) return false;
  }
  if (rows_.size() >= max_rows_) return false;
  if (!rows_.empty() && answer_bytes_ + bytes > kMaxAnswerBytes) return false;
  answer_bytes_ += bytes;
  RowState& added = rows_.emplace_back();
  added.row = {call.attempt_id, call.student, call.revision, {}};
  added.sent_member = member;
  if (last != 0) rows_[last - 1].next_of_attempt = index;
  members_.push_back({pending, index - 1});
  return true;
}

void SaveBatch::seal() {
  // Every call is still unanswered here: they were added in this same round.
  answers_.clear();
  answers_.reserve(answer_bytes_);
  for (const auto& state : rows_)
    answers_.append(members_[state.sent_member].pending.call->answers_json);
  sorted_.clear();
  std::size_t offset = 0;
  for (auto& state : rows_) state.row.writes = 0;
  for (const auto& member : members_) ++rows_[member.row].row.writes;
  for (const auto& state : rows_) {
    sorted_.push_back(state.row);
    const StoreCall& sent = *members_[state.sent_member].pending.call;
    sorted_.back().answered = sent.answered;
    const std::size_t size = sent.answers_json.size();
    sorted_.back().answers = std::string_view(answers_).substr(offset, size);
    offset += size;
  }
  std::sort(sorted_.begin(), sorted_.end(), [](const Row& a, const Row& b) {
    if (a.id != b.id) return a.id < b.id;
    return a.student < b.student;  // nullopt first; an attempt has at most one such row
  });
  phase_ = Phase::saving;
}

std::size_t SaveBatch::unanswered() const {
  return static_cast<std::size_t>(std::count_if(
      members_.begin(), members_.end(), [](const Member& m) { return !m.pending.answered(); }));
}

std::size_t SaveBatch::applied_rows() const {
  return static_cast<std::size_t>(
      std::count_if(rows_.begin(), rows_.end(),
                    [](const RowState& state) { return state.fate == Fate::applied; }));
}

void SaveBatch::saw_updated(AttemptId id, std::optional<StudentId> owner) {
  for (std::uint32_t r = first_row_.find(id); r != 0; r = rows_[r - 1].next_of_attempt) {
    RowState& state = rows_[r - 1];
    if (!owner || !state.row.student || *state.row.student == *owner) {
      state.fate = Fate::applied;
      return;
    }
  }
}

bool SaveBatch::committed(CallAnswerer& answerer) {
  for (auto& state : rows_) {
    if (state.fate != Fate::pending) continue;
    // Another writer's row of this attempt was applied: the attempt is theirs, not this one's.
    for (std::uint32_t r = first_row_.find(state.row.id); r != 0;
         r = rows_[r - 1].next_of_attempt) {
      if (rows_[r - 1].fate == Fate::applied) {
        state.fate = Fate::not_found;
        break;
      }
    }
    if (state.fate == Fate::pending) unsaved_ids_.push_back(state.row.id);
  }
  for (auto& member : members_) {
    if (rows_[member.row].fate != Fate::pending) answer(member, answerer);
  }
  if (unsaved_ids_.empty()) {
    phase_ = Phase::done;
    return false;
  }
  std::sort(unsaved_ids_.begin(), unsaved_ids_.end());
  unsaved_ids_.erase(std::unique(unsaved_ids_.begin(), unsaved_ids_.end()), unsaved_ids_.end());
  phase_ = Phase::explaining;
  return true;
}

SaveBatch::Fate SaveBatch::fate_of(const Row& row, const StoredAttempt& stored) {
  // In the order the UPDATE checks them: whose it is, then submitted, deadline and revision.
  if (row.student && *row.student != stored.owner) return Fate::not_found;
  if (stored.submitted_at) return Fate::submitted;
  if (stored.deadline_passed) return Fate::deadline_passed;
  if (row.revision && *row.revision <= stored.revision) return Fate::stale_revision;
  return Fate::unexplained;
}

void SaveBatch::saw_stored(const StoredAttempt& stored) {
  for (std::uint32_t r = first_row_.find(stored.id); r != 0; r = rows_[r - 1].next_of_attempt) {
    RowState& state = rows_[r - 1];
    if (state.fate != Fate::pending) continue;
    state.fate = fate_of(state.row, stored);
    if (state.fate == Fate::submitted) state.detail = *stored.submitted_at;
    if (state.fate == Fate::deadline_passed) state.detail = stored.deadline.value_or("");
    if (state.fate == Fate::stale_revision) state.stored_revision = stored.revision;
  }
}

std::size_t SaveBatch::explained(CallAnswerer& answerer, std::vector<PendingCall>* retry,
                                 std::uint8_t max_retries) {
  std::size_t unexplained = 0;
  for (auto& state : rows_) {
    // Not read at all: there is no such attempt.
    if (state.fate == Fate::pending) state.fate = Fate::not_found;
    unexplained += state.fate == Fate::unexplained;
  }
  for (auto& member : members_) {
    if (retry != nullptr && !member.pending.answered() &&
        rows_[member.row].fate == Fate::unexplained && member.pending.retries < max_retries) {
      ++member.pending.retries;
      retry->push_back(std::exchange(member.pending, PendingCall{}));
      continue;
    }
    answer(member, answerer);
  }
  phase_ = Phase::done;
  return unexplained;
}

void SaveBatch::answer(Member& member, CallAnswerer& answerer) {
  if (member.pending.answered()) return;
  const RowState& state = rows_[member.row];
  AttemptRecord& record = member.pending.call->record;
  StoreOutcome outcome = StoreOutcome::unavailable;
  switch (state.fate) {
    case Fate::applied:
      outcome = StoreOutcome::done;
      break;
    case Fate::not_found:
      outcome = StoreOutcome::not_found;
      break;
    case Fate::submitted:
      record.submitted_at = state.detail;
      outcome = StoreOutcome::submitted;
      break;
    case Fate::deadline_passed:
      record.deadline = state.detail;
      outcome = StoreOutcome::deadline_passed;
      break;
    case Fate::stale_revision:
      record.revision = state.stored_revision;
      outcome = StoreOutcome::stale_revision;
      break;
    case Fate::pending:
    case Fate::unexplained:
      break;  // nothing changed, for no reason known: unavailable
  }
  answerer.answer(member.pending, outcome);
}

void SaveBatch::failed(StoreOutcome outcome, CallAnswerer& answerer) {
  for (auto& member : members_) answerer.answer(member.pending, outcome);
  phase_ = Phase::done;
}

void SaveBatch::rolled_back(std::uint8_t max_retries, std::vector<PendingCall>& retry,
                            CallAnswerer& answerer) {
  for (auto& member : members_) {
    if (member.pending.answered()) continue;
    if (member.pending.retries >= max_retries) {
      answerer.answer(member.pending, StoreOutcome::unavailable);
      continue;
    }
    ++member.pending.retries;
    retry.push_back(std::exchange(member.pending, PendingCall{}));
  }
  phase_ = Phase::done;
}

void SaveBatch::lost(bool ran, CallAnswerer& answerer) {
  failed(phase_ == Phase::saving && ran ? StoreOutcome::unknown : StoreOutcome::unavailable,
         answerer);
}

std::size_t SaveBatch::expire(Clock::time_point now, CallAnswerer& answerer) {
  std::size_t expired = 0;
  for (auto& member : members_) {
    if (member.pending.answered() || member.pending.call->deadline > now) continue;
    answerer.answer(member.pending,
                    phase_ == Phase::saving ? StoreOutcome::unknown : StoreOutcome::unavailable);
    ++expired;
  }
  return expired;
}

SaveBatch::Clock::time_point SaveBatch::earliest_deadline() const {
  auto earliest = Clock::time_point::max();
  for (const auto& member : members_) {
    if (!member.pending.answered()) earliest = std::min(earliest, member.pending.call->deadline);
  }
  return earliest;
}

}  // namespace attempts::db
