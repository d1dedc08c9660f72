// CallQueue::holds(): which attempts have a call waiting, as the loop's router asks it before
// sending an attempt's call to another connection (LoopRouter). Every way out of the queue
// counts the call out.

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <utility>
#include <vector>

#include "attempts/db/call_queue.hpp"

namespace attempts::db {
namespace {

using Clock = std::chrono::steady_clock;

struct Calls final : CallAnswerer, StoreCompletion {
  std::deque<StoreCall> calls;  // stable addresses

  PendingCall save(AttemptId id, Clock::time_point deadline = Clock::time_point::max()) {
    StoreCall& call = calls.emplace_back();
    call.kind = StoreCall::Kind::save_answers;
    call.attempt_id = id;
    call.answers_json = "{}";
    call.deadline = deadline;
    return {&call, this, 0};
  }
  void answer(PendingCall& pending, StoreOutcome outcome) override {
    StoreCall* call = std::exchange(pending.call, nullptr);
    if (call == nullptr) return;
    call->outcome = outcome;
    pending.completion->on_store_complete(*call);
  }
  void on_store_complete(StoreCall&) override {}
};

TEST(CallQueueTest, HoldsAnAttemptWhileAnyCallOfItIsQueued) {
  Calls calls;
  CallQueue queue({});
  EXPECT_FALSE(queue.holds(7));
  ASSERT_TRUE(queue.admit(calls.save(7)));
  ASSERT_TRUE(queue.admit(calls.save(7)));
  ASSERT_TRUE(queue.admit(calls.save(8)));
  EXPECT_TRUE(queue.holds(7));
  EXPECT_TRUE(queue.holds(8));
  EXPECT_FALSE(queue.holds(9));

  // Taken out to be sent: one of 7's two calls is still queued.
  PendingCall first = queue.take(0);
  queue.compact();
  EXPECT_TRUE(queue.holds(7));
  PendingCall second = queue.take(0);
  queue.compact();
  EXPECT_FALSE(queue.holds(7));
  EXPECT_TRUE(queue.holds(8));

  // Rolled back and put back at the front.
  const std::vector<PendingCall> again = {first, second};
  queue.requeue_front(again);
  EXPECT_TRUE(queue.holds(7));

  queue.answer_all(StoreOutcome::unavailable, calls);
  EXPECT_FALSE(queue.holds(7));
  EXPECT_FALSE(queue.holds(8));
  EXPECT_TRUE(queue.empty());
}

TEST(CallQueueTest, ExpiredAndRefusedCallsAreCountedOut) {
  Calls calls;
  CallQueue queue({});
  const auto now = Clock::now();
  ASSERT_TRUE(queue.admit(calls.save(1, now - std::chrono::seconds(1))));
  ASSERT_TRUE(queue.admit(calls.save(2)));
  EXPECT_EQ(queue.expire(now, calls), 1u);
  EXPECT_FALSE(queue.holds(1));
  EXPECT_TRUE(queue.holds(2));
  queue.refuse_all_but_pings("misconfigured", calls);
  EXPECT_FALSE(queue.holds(2));
}

TEST(CallQueueTest, ACallRefusedAtAdmissionIsNotHeld) {
  Calls calls;
  CallQueue queue({1, 1u << 20});
  ASSERT_TRUE(queue.admit(calls.save(1)));
  EXPECT_FALSE(queue.admit(calls.save(2)));
  EXPECT_FALSE(queue.holds(2));
}

}  // namespace
}  // namespace attempts::db
