// Unit tests for WorkQueue, the bounded queue in front of each pool connection.
//
// No test can hang: every wait_take that could block runs on its own (detached) thread and is
// awaited with a timeout. The queue is shared with that thread, so a consumer that a broken
// queue never wakes only fails the test.

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "attempts/db/work_queue.hpp"

namespace attempts::db {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Longer than any wait_take below should ever take.
constexpr milliseconds kGenerous{5000};

// Move-only, like the queue's real items; a moved-from item is null.
using Item = std::unique_ptr<int>;
using Queue = WorkQueue<Item>;

struct Taken {
  bool more = false;  // what wait_take returned
  std::vector<int> values;
  bool saw_null = false;  // an item the queue had moved from
  Clock::duration elapsed{};
};

struct TakeCall {
  std::size_t max = 0;
  std::optional<Clock::time_point> deadline;
  std::vector<Item> initial;  // what `out` holds before the call
};

// Runs one wait_take on its own thread.
std::future<Taken> take_async(std::shared_ptr<Queue> queue, TakeCall call) {
  std::promise<Taken> promise;
  auto future = promise.get_future();
  std::thread([queue = std::move(queue), call = std::move(call),
               promise = std::move(promise)]() mutable {
    std::vector<Item> out = std::move(call.initial);
    const auto started = Clock::now();
    Taken taken;
    taken.more = queue->wait_take(out, call.max, call.deadline);
    taken.elapsed = Clock::now() - started;
    for (const auto& item : out) {
      if (item) {
        taken.values.push_back(*item);
      } else {
        taken.saw_null = true;
      }
    }
    promise.set_value(std::move(taken));
  }).detach();
  return future;
}

// One wait_take, awaited for at most kGenerous; nullopt if it did not return.
std::optional<Taken> take_within(std::shared_ptr<Queue> queue, std::size_t max,
                                 std::optional<Clock::time_point> deadline = std::nullopt) {
  auto future = take_async(std::move(queue), TakeCall{max, deadline, {}});
  if (future.wait_for(kGenerous) != std::future_status::ready) return std::nullopt;
  return future.get();
}

PushResult push_value(Queue& queue, int value) {
  auto item = std::make_unique<int>(value);
  return queue.push(item);
}

std::shared_ptr<Queue> queue_holding(std::size_t capacity, int count) {
  auto queue = std::make_shared<Queue>(capacity);
  for (int value = 0; value < count; ++value) {
    if (push_value(*queue, value) != PushResult::queued) ADD_FAILURE() << "push " << value;
  }
  return queue;
}

TEST(WorkQueueTest, PushQueuesUntilCapacityThenRefusesAsFullAndTheCallerKeepsTheItem) {
  Queue queue(3);
  for (int value = 0; value < 3; ++value) {
    auto item = std::make_unique<int>(value);
    EXPECT_EQ(queue.push(item), PushResult::queued) << "push " << value;
    EXPECT_EQ(item, nullptr) << "a queued item is moved into the queue";
  }

  auto refused = std::make_unique<int>(99);
  EXPECT_EQ(queue.push(refused), PushResult::full);

  ASSERT_NE(refused, nullptr) << "a refused item must stay with the caller";
  EXPECT_EQ(*refused, 99);
  EXPECT_EQ(queue.size(), 3u);
}

TEST(WorkQueueTest, PushIsAcceptedAgainOnceATakeMadeRoom) {
  auto queue = queue_holding(2, 2);
  ASSERT_EQ(push_value(*queue, 2), PushResult::full);

  const auto taken = take_within(queue, 1);
  ASSERT_TRUE(taken) << "wait_take did not return";

  EXPECT_EQ(push_value(*queue, 3), PushResult::queued);
  EXPECT_EQ(queue->size(), 2u);
}

TEST(WorkQueueTest, PushAfterStopIsRefusedAsStoppedAndTheCallerKeepsTheItem) {
  Queue queue(10);
  queue.stop();

  auto item = std::make_unique<int>(7);
  EXPECT_EQ(queue.push(item), PushResult::stopped);

  ASSERT_NE(item, nullptr) << "a refused item must stay with the caller";
  EXPECT_EQ(*item, 7);
  EXPECT_EQ(queue.size(), 0u);
}

TEST(WorkQueueTest, StopTakesPrecedenceOverFullWhenRefusing) {
  Queue queue(1);
  ASSERT_EQ(push_value(queue, 0), PushResult::queued);
  queue.stop();

  EXPECT_EQ(push_value(queue, 1), PushResult::stopped);
}

TEST(WorkQueueTest, WaitTakeTakesAtMostMaxPerCallInFifoOrderAcrossTakes) {
  auto queue = queue_holding(10, 10);

  const auto first = take_within(queue, 4);
  const auto second = take_within(queue, 4);
  const auto third = take_within(queue, 4);

  ASSERT_TRUE(first && second && third) << "wait_take did not return";
  EXPECT_TRUE(first->more && second->more && third->more);
  EXPECT_EQ(first->values, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(second->values, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(third->values, (std::vector<int>{8, 9}));
  EXPECT_FALSE(first->saw_null || second->saw_null || third->saw_null);
  EXPECT_EQ(queue->size(), 0u);
}

TEST(WorkQueueTest, WaitTakeTakesEverythingWaitingUpToMaxInOneCall) {
  auto queue = queue_holding(100, 37);

  const auto taken = take_within(queue, 256);

  ASSERT_TRUE(taken) << "wait_take did not return";
  EXPECT_TRUE(taken->more);
  ASSERT_EQ(taken->values.size(), 37u);
  for (int value = 0; value < 37; ++value) EXPECT_EQ(taken->values[value], value);
  EXPECT_EQ(queue->size(), 0u);
}

TEST(WorkQueueTest, WaitTakeWithMaxOneTakesExactlyOneItem) {
  auto queue = queue_holding(10, 3);

  const auto taken = take_within(queue, 1);

  ASSERT_TRUE(taken) << "wait_take did not return";
  EXPECT_EQ(taken->values, (std::vector<int>{0}));
  EXPECT_EQ(queue->size(), 2u);
}

TEST(WorkQueueTest, WaitTakeAppendsAfterWhatTheOutputAlreadyHolds) {
  auto queue = queue_holding(10, 2);
  std::vector<Item> initial;
  initial.push_back(std::make_unique<int>(-1));

  auto future = take_async(queue, TakeCall{10, std::nullopt, std::move(initial)});

  ASSERT_EQ(future.wait_for(kGenerous), std::future_status::ready) << "wait_take did not return";
  EXPECT_EQ(future.get().values, (std::vector<int>{-1, 0, 1}));
}

TEST(WorkQueueTest, WaitTakeWithADeadlineAndNoItemsReturnsTrueWithNothingTakenAfterTheDeadline) {
  auto queue = std::make_shared<Queue>(10);
  const auto deadline = Clock::now() + milliseconds(50);

  const auto taken = take_within(queue, 10, deadline);

  ASSERT_TRUE(taken) << "wait_take with a deadline did not return";
  EXPECT_TRUE(taken->more) << "a deadline passing is not the end of the queue";
  EXPECT_TRUE(taken->values.empty());
  EXPECT_FALSE(taken->saw_null);
  // Not a timing measurement: only that it did not give up before the deadline.
  EXPECT_GE(Clock::now(), deadline);
}

TEST(WorkQueueTest, WaitTakeWithAPassedDeadlineStillTakesWhatIsWaiting) {
  auto queue = queue_holding(10, 2);

  const auto taken = take_within(queue, 10, Clock::now() - milliseconds(1));

  ASSERT_TRUE(taken) << "wait_take did not return";
  EXPECT_TRUE(taken->more);
  EXPECT_EQ(taken->values, (std::vector<int>{0, 1}));
}

TEST(WorkQueueTest, PushWakesAConsumerBlockedWithoutADeadline) {
  auto queue = std::make_shared<Queue>(10);
  auto future = take_async(queue, TakeCall{10, std::nullopt, {}});
  ASSERT_EQ(future.wait_for(milliseconds(100)), std::future_status::timeout)
      << "wait_take returned with nothing queued and no deadline";

  ASSERT_EQ(push_value(*queue, 5), PushResult::queued);

  ASSERT_EQ(future.wait_for(kGenerous), std::future_status::ready) << "push did not wake it";
  const auto taken = future.get();
  EXPECT_TRUE(taken.more);
  EXPECT_EQ(taken.values, (std::vector<int>{5}));
}

TEST(WorkQueueTest, PushWakesAConsumerBlockedOnAFarDeadline) {
  auto queue = std::make_shared<Queue>(10);
  auto future = take_async(queue, TakeCall{10, Clock::now() + std::chrono::hours(1), {}});
  ASSERT_EQ(future.wait_for(milliseconds(100)), std::future_status::timeout);

  ASSERT_EQ(push_value(*queue, 6), PushResult::queued);

  ASSERT_EQ(future.wait_for(kGenerous), std::future_status::ready) << "push did not wake it";
  EXPECT_EQ(future.get().values, (std::vector<int>{6}));
}

TEST(WorkQueueTest, StopWakesABlockedConsumerWhichThenReturnsFalse) {
  auto queue = std::make_shared<Queue>(10);
  auto future = take_async(queue, TakeCall{10, std::nullopt, {}});
  ASSERT_EQ(future.wait_for(milliseconds(100)), std::future_status::timeout)
      << "wait_take returned with nothing queued and no deadline";

  queue->stop();

  ASSERT_EQ(future.wait_for(kGenerous), std::future_status::ready) << "stop did not wake it";
  const auto taken = future.get();
  EXPECT_FALSE(taken.more) << "a stopped, empty queue must tell the consumer it is done";
  EXPECT_TRUE(taken.values.empty());
}

TEST(WorkQueueTest, StopWakesAConsumerBlockedOnAFarDeadline) {
  auto queue = std::make_shared<Queue>(10);
  auto future = take_async(queue, TakeCall{10, Clock::now() + std::chrono::hours(1), {}});
  ASSERT_EQ(future.wait_for(milliseconds(100)), std::future_status::timeout);

  queue->stop();

  ASSERT_EQ(future.wait_for(kGenerous), std::future_status::ready) << "stop did not wake it";
  EXPECT_FALSE(future.get().more);
}

TEST(WorkQueueTest, ItemsQueuedBeforeStopAreStillTakenInOrderThenTheConsumerIsDone) {
  auto queue = queue_holding(10, 5);
  queue->stop();

  const auto first = take_within(queue, 3);
  const auto second = take_within(queue, 3);
  const auto done = take_within(queue, 3);
  const auto still_done = take_within(queue, 3, Clock::now() + std::chrono::hours(1));

  ASSERT_TRUE(first && second && done && still_done) << "wait_take did not return";
  EXPECT_TRUE(first->more);
  EXPECT_EQ(first->values, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(second->more);
  EXPECT_EQ(second->values, (std::vector<int>{3, 4}));
  EXPECT_FALSE(done->more);
  EXPECT_TRUE(done->values.empty());
  EXPECT_FALSE(still_done->more);
}

TEST(WorkQueueTest, StopIsIdempotent) {
  auto queue = queue_holding(10, 1);
  queue->stop();
  queue->stop();

  const auto first = take_within(queue, 10);
  const auto done = take_within(queue, 10);

  ASSERT_TRUE(first && done) << "wait_take did not return";
  EXPECT_EQ(first->values, (std::vector<int>{0}));
  EXPECT_FALSE(done->more);
}

TEST(WorkQueueTest, ManyProducersAndOneConsumerTakeEveryItemOnceInEachProducersOrder) {
  constexpr int kProducers = 8;
  constexpr int kItemsPerProducer = 2000;
  constexpr std::size_t kCapacity = 16;  // small, so producers keep meeting a full queue
  constexpr std::size_t kMaxTake = 5;
  const auto give_up_at = Clock::now() + std::chrono::seconds(30);

  // Each item encodes producer * kItemsPerProducer + sequence number.
  auto queue = std::make_shared<Queue>(kCapacity);
  std::vector<std::promise<int>> refusals(kProducers);  // how often each one met `full`
  std::vector<std::future<int>> refused;
  for (auto& promise : refusals) refused.push_back(promise.get_future());
  for (int p = 0; p < kProducers; ++p) {
    std::thread([queue, p, give_up_at, promise = std::move(refusals[p])]() mutable {
      int full = 0;
      for (int seq = 0; seq < kItemsPerProducer && Clock::now() < give_up_at; ++seq) {
        auto item = std::make_unique<int>(p * kItemsPerProducer + seq);
        for (;;) {
          const auto result = queue->push(item);
          if (result != PushResult::full || Clock::now() >= give_up_at) break;
          // The refused item is pushed again: it must still be ours.
          if (!item) break;
          ++full;
          std::this_thread::yield();
        }
      }
      promise.set_value(full);
    }).detach();
  }

  std::vector<int> next_seq(kProducers, 0);
  std::vector<std::string> problems;
  int total = 0;
  std::size_t largest_take = 0;
  std::vector<Item> out;
  while (total < kProducers * kItemsPerProducer && Clock::now() < give_up_at) {
    out.clear();
    // A short deadline, so that a lost wake-up only slows this loop down.
    if (!queue->wait_take(out, kMaxTake, Clock::now() + milliseconds(100))) {
      problems.push_back("wait_take returned false before stop()");
      break;
    }
    largest_take = std::max(largest_take, out.size());
    for (const auto& item : out) {
      if (!item) {
        problems.push_back("took a moved-from (null) item");
        continue;
      }
      const int producer = *item / kItemsPerProducer;
      const int seq = *item % kItemsPerProducer;
      if (seq != next_seq[producer] && problems.size() < 10) {
        problems.push_back("producer " + std::to_string(producer) + ": got item " +
                           std::to_string(seq) + ", expected " +
                           std::to_string(next_seq[producer]));
      }
      next_seq[producer] = seq + 1;
      ++total;
    }
  }
  queue->stop();

  int full_pushes = 0;
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_EQ(refused[p].wait_for(kGenerous), std::future_status::ready) << "producer " << p;
    full_pushes += refused[p].get();
  }
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_EQ(total, kProducers * kItemsPerProducer);
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(next_seq[p], kItemsPerProducer) << "producer " << p;
  }
  EXPECT_LE(largest_take, kMaxTake);
  EXPECT_EQ(queue->size(), 0u);
  RecordProperty("pushes_refused_as_full", full_pushes);
}

}  // namespace
}  // namespace attempts::db
