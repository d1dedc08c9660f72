// ClaimTable: one owner per attempt across the process, nested claims of that owner, and a
// release that says whether anyone waited; also under threads claiming at once.

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "attempts/db/claim_table.hpp"

namespace attempts::db {
namespace {

TEST(ClaimTableTest, AnAttemptIsHeldByOneOwnerWhoseClaimsNest) {
  ClaimTable claims;
  EXPECT_EQ(claims.holder(42), 0u);
  EXPECT_TRUE(claims.claim(42, 1));
  EXPECT_TRUE(claims.claim(42, 1));
  EXPECT_EQ(claims.holder(42), 1u);
  EXPECT_FALSE(claims.claim(42, 2));
  EXPECT_FALSE(claims.release(42, 1)) << "one claim of owner 1 is still held";
  EXPECT_FALSE(claims.claim(42, 2));
  EXPECT_TRUE(claims.release(42, 1)) << "owner 2 waited: its release must say so";
  EXPECT_EQ(claims.holder(42), 0u);
  EXPECT_TRUE(claims.claim(42, 2));
  EXPECT_FALSE(claims.release(42, 2)) << "nobody waited";
}

TEST(ClaimTableTest, OtherAttemptsAreNotHeldUpExceptBySharingAStripe) {
  ClaimTable claims(1 << 10);
  ASSERT_TRUE(claims.claim(1, 1));
  int held_up = 0;
  for (AttemptId id = 2; id < 1000; ++id) {
    if (!claims.claim(id, 2)) {
      ++held_up;
      continue;
    }
    EXPECT_FALSE(claims.release(id, 2));
  }
  EXPECT_LE(held_up, 2) << "consecutive ids should spread over the stripes";
}

TEST(ClaimTableTest, EachHoldingThatMadeSomeoneWaitIsCountedOnce) {
  metrics::Counter waits;
  ClaimTable claims(ClaimTable::kDefaultStripes, &waits);
  ASSERT_TRUE(claims.claim(7, 1));
  EXPECT_FALSE(claims.claim(7, 2));
  EXPECT_FALSE(claims.claim(7, 3));
  EXPECT_FALSE(claims.claim(7, 2));
  EXPECT_EQ(waits.value(), 1u);
  EXPECT_TRUE(claims.release(7, 1));
  ASSERT_TRUE(claims.claim(7, 2));
  EXPECT_FALSE(claims.claim(7, 1));
  EXPECT_EQ(waits.value(), 2u);
}

// Threads claim and release attempts of a few stripes as fast as they can; no attempt is ever
// held by two owners at once, and every wait is followed by a release that says so.
TEST(ClaimTableTest, UnderThreadsNoAttemptIsEverHeldByTwoOwners) {
  ClaimTable claims(4);
  constexpr int kThreads = 4;
  constexpr int kAttempts = 16;
  constexpr int kRounds = 20000;
  std::atomic<int> occupant[kAttempts + 1] = {};
  std::atomic<int> overlaps{0};
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 1; t <= kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(static_cast<unsigned>(t));
      for (int round = 0; round < kRounds; ++round) {
        const AttemptId attempt = std::uniform_int_distribution<int>(1, kAttempts)(random);
        if (!claims.claim(attempt, static_cast<ClaimTable::Owner>(t))) continue;
        ++granted;
        if (occupant[attempt].exchange(t) != 0) ++overlaps;
        if (claims.holder(attempt) != static_cast<ClaimTable::Owner>(t)) ++overlaps;
        occupant[attempt].store(0);
        claims.release(attempt, static_cast<ClaimTable::Owner>(t));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_GT(granted.load(), 0);
  for (AttemptId attempt = 1; attempt <= kAttempts; ++attempt) {
    EXPECT_EQ(claims.holder(attempt), 0u) << "attempt " << attempt << " left claimed";
  }
}

}  // namespace
}  // namespace attempts::db
