#include "attempts/db/call_queue.hpp"

#include <algorithm>
#include <utility>

namespace attempts::db {

std::size_t CallQueue::bytes_of(const PendingCall& pending) {
  return pending.call->answers_json.size();
}

void CallQueue::counted(const PendingCall& pending, bool queued) {
  const AttemptId attempt = pending.call->attempt_id;
  if (attempt == 0) return;
  if (queued) {
    attempts_.increment(attempt);
  } else {
    attempts_.decrement(attempt);
  }
}

bool CallQueue::admit(const PendingCall& pending) {
  const std::size_t bytes = bytes_of(pending);
  if (calls_.size() >= limits_.calls || bytes_ + bytes > limits_.bytes) return false;
  calls_.push_back(pending);
  bytes_ += bytes;
  counted(pending, true);
  return true;
}

void CallQueue::requeue_front(std::span<const PendingCall> calls) {
  for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
    calls_.push_front(*it);
    bytes_ += bytes_of(*it);
    counted(*it, true);
  }
}

PendingCall CallQueue::take(std::size_t slot) {
  PendingCall taken = std::exchange(calls_[slot], PendingCall{});
  bytes_ -= bytes_of(taken);
  counted(taken, false);
  return taken;
}

void CallQueue::compact() {
  calls_.erase(std::remove_if(calls_.begin(), calls_.end(),
                              [](const PendingCall& pending) { return pending.answered(); }),
               calls_.end());
}

template <class Pick>
void CallQueue::answer_where(Pick&& answer_it, StoreOutcome outcome, CallAnswerer& answerer) {
  bool any = false;
  for (auto& pending : calls_) {
    if (!answer_it(*pending.call)) continue;
    bytes_ -= bytes_of(pending);
    counted(pending, false);
    answerer.answer(pending, outcome);
    any = true;
  }
  if (any) compact();
}

std::size_t CallQueue::expire(Clock::time_point now, CallAnswerer& answerer) {
  const std::size_t before = calls_.size();
  answer_where([now](const StoreCall& call) { return call.deadline <= now; },
               StoreOutcome::unavailable, answerer);
  return before - calls_.size();
}

CallQueue::Clock::time_point CallQueue::earliest_deadline() const {
  auto earliest = Clock::time_point::max();
  for (const auto& pending : calls_) earliest = std::min(earliest, pending.call->deadline);
  return earliest;
}

void CallQueue::answer_all(StoreOutcome outcome, CallAnswerer& answerer) {
  answer_where([](const StoreCall&) { return true; }, outcome, answerer);
}

void CallQueue::refuse_all_but_pings(const std::string& problem, CallAnswerer& answerer) {
  answer_where(
      [&problem](StoreCall& call) {
        if (call.kind == StoreCall::Kind::ping) return false;
        call.problem = problem;
        return true;
      },
      StoreOutcome::unavailable, answerer);
}

}  // namespace attempts::db
