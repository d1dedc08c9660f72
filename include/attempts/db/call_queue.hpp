#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <span>
#include <string>

#include "attempts/db/attempt_map.hpp"
#include "attempts/db/pending_call.hpp"

namespace attempts::db {

// The calls waiting for one connection, oldest first: admission within bounds (a count and
// bytes of answers), answers for calls whose deadline passes while they wait, and refusals.
// Nothing here sends anything; the planner takes calls out (SavePlanner).
class CallQueue {
 public:
  using Clock = std::chrono::steady_clock;

  struct Limits {
    std::size_t calls = 4096;
    std::size_t bytes = 16u << 20;  // of answers
  };

  explicit CallQueue(Limits limits) : limits_(limits) {}

  // Queues `pending` at the back; false, queuing nothing, if that would pass a limit.
  bool admit(const PendingCall& pending);
  // Puts calls back at the front, ahead of everything, in the order given: they were sent and
  // rolled back, and go again before the calls that arrived after them. The limits were met
  // when they were admitted, so they are not checked again.
  void requeue_front(std::span<const PendingCall> calls);

  bool empty() const { return calls_.empty(); }
  // Whether a call of this attempt is queued.
  bool holds(AttemptId attempt) const { return attempt != 0 && attempts_.find(attempt) != 0; }
  std::size_t size() const { return calls_.size(); }
  std::size_t bytes() const { return bytes_; }

  // The queued calls in order, for the planner to look through. take() moves one out (its slot
  // stays, empty, until compact()).
  std::size_t slots() const { return calls_.size(); }
  const PendingCall& at(std::size_t slot) const { return calls_[slot]; }
  PendingCall take(std::size_t slot);
  void compact();

  // Answers `unavailable` to every call whose deadline is at or before `now` (never sent:
  // nothing was done); how many.
  std::size_t expire(Clock::time_point now, CallAnswerer& answerer);
  // The earliest deadline of a queued call; time_point::max() if none.
  Clock::time_point earliest_deadline() const;
  // Answers every queued call with `outcome`.
  void answer_all(StoreOutcome outcome, CallAnswerer& answerer);
  // Answers every queued call but pings `unavailable`, saying `problem` (pings go on, to notice
  // when it is fixed).
  void refuse_all_but_pings(const std::string& problem, CallAnswerer& answerer);

 private:
  static std::size_t bytes_of(const PendingCall& pending);
  // Counts a call of an attempt in or out of the queue.
  void counted(const PendingCall& pending, bool queued);
  // Answers the calls `answer_it` picks (it may set call fields first) and keeps the others.
  template <class Pick>
  void answer_where(Pick&& answer_it, StoreOutcome outcome, CallAnswerer& answerer);

  Limits limits_;
  std::deque<PendingCall> calls_;
  std::size_t bytes_ = 0;
  AttemptMap attempts_;  // attempt -> calls of it queued
};

}  // namespace attempts::db
