#include "attempts/db/save_planner.hpp"

#include <algorithm>

namespace attempts::db {

void SavePlanner::next_round(CallQueue& queue, const ShardMap* shards, Round& round) {
  held_.clear();
  // The first call that may go decides the kind of round.
  std::size_t first = 0;
  for (; first < queue.slots(); ++first) {
    const StoreCall& call = *queue.at(first).call;
    if (!of_attempt(call.kind) || may_send(call.attempt_id)) break;
  }
  if (first == queue.slots()) return release_unsent_claims();
  const StoreCall& head = *queue.at(first).call;
  if (head.kind != StoreCall::Kind::save_answers) {
    if (of_attempt(head.kind)) sent(head.attempt_id);
    round.call = queue.take(first);
    queue.compact();
    return release_unsent_claims();
  }

  // Writes, oldest first, past the calls that must wait.
  std::size_t taken = 0;
  for (std::size_t slot = first; slot < queue.slots() && taken < max_batch_; ++slot) {
    const StoreCall& call = *queue.at(slot).call;
    if (!of_attempt(call.kind)) continue;  // a start or a ping: a round of its own, later
    const AttemptId attempt = call.attempt_id;
    // A read or a submit goes after the writes before it, and the writes after it wait for it.
    if (call.kind != StoreCall::Kind::save_answers) {
      hold(attempt);
      continue;
    }
    if (!may_send(attempt)) continue;
    SaveBatch& batch =
        batch_for(shards ? static_cast<std::uint32_t>(shards->index_of(attempt)) : 0, round);
    if (!batch.add(queue.at(slot))) {
      hold(attempt);
      continue;
    }
    queue.take(slot);
    ++taken;
  }
  queue.compact();
  for (const std::uint32_t group : groups_used_) batch_of_group_[group] = 0;
  groups_used_.clear();

  std::sort(round.batches.begin(), round.batches.end(),
            [](const auto& a, const auto& b) { return a->group() < b->group(); });
  for (auto& batch : round.batches) {
    batch->seal();
    for (const auto& row : batch->rows()) sent(row.id);
  }
  release_unsent_claims();
}

bool SavePlanner::may_send(AttemptId attempt) {
  if (held_.find(attempt) != 0 || in_flight(attempt)) return false;
  if (claimed_.find(attempt) != 0) return true;
  if (claims_ != nullptr && !claims_->claim(attempt)) {
    // Another connection's statement of it may still apply; the calls after this one wait too.
    hold(attempt);
    return false;
  }
  claimed_.set(attempt, 1);
  claimed_now_.push_back(attempt);
  return true;
}

void SavePlanner::release_unsent_claims() {
  // A claim stays with the attempts that went out; finished() gives it back.
  for (const AttemptId attempt : claimed_now_) {
    if (!in_flight(attempt) && claims_ != nullptr) claims_->release(attempt);
  }
  claimed_now_.clear();
  claimed_.clear();
}

SaveBatch& SavePlanner::batch_for(std::uint32_t group, Round& round) {
  if (group >= batch_of_group_.size()) batch_of_group_.resize(group + 1, 0);
  if (batch_of_group_[group] == 0) {
    std::unique_ptr<SaveBatch> batch;
    if (spare_.empty()) {
      batch = std::make_unique<SaveBatch>();
    } else {
      batch = std::move(spare_.back());
      spare_.pop_back();
    }
    batch->reset(group, max_batch_);
    round.batches.push_back(std::move(batch));
    batch_of_group_[group] = static_cast<std::uint32_t>(round.batches.size());
    groups_used_.push_back(group);
  }
  return *round.batches[batch_of_group_[group] - 1];
}

void SavePlanner::hold(AttemptId attempt) {
  held_.set(attempt, 1);
}

void SavePlanner::finished(const SaveBatch& batch) {
  for (const auto& row : batch.rows()) finished(row.id);
}

void SavePlanner::finished(StoreCall::Kind kind, AttemptId attempt) {
  if (of_attempt(kind)) finished(attempt);
}

void SavePlanner::finished(AttemptId attempt) {
  if (in_flight_.find(attempt) == 0) return;
  if (in_flight_.decrement(attempt) == 0 && claims_ != nullptr) claims_->release(attempt);
}

void SavePlanner::recycle(std::unique_ptr<SaveBatch> batch) {
  if (batch) spare_.push_back(std::move(batch));
}

}  // namespace attempts::db
