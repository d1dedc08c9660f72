// TokenCache: digests, hits and misses, expiry at the leeway boundary, the fixed table and its
// CLOCK eviction within a set, and readers on several threads while entries are replaced (no
// torn entry is ever answered).

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "attempts/auth/token_cache.hpp"

namespace attempts::auth {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kNow = 1'700'000'000;

TokenCache::Entry entry(std::int64_t student, std::int64_t expires_at = kNow + 3600) {
  return {student, expires_at, 7};
}

// Digests that fall in one set: same low bits, different high ones.
TokenDigest in_set(std::uint64_t set, std::uint64_t n) {
  return {set, n + 1};
}

TEST(TokenCacheTest, ADigestDependsOnEveryByteAndOnTheCache) {
  TokenCache cache;
  TokenCache other;
  auto& reader = cache.reader();
  const TokenDigest digest = reader.digest("header.payload.signature");
  EXPECT_EQ(reader.digest("header.payload.signature"), digest);
  EXPECT_NE(reader.digest("header.payload.signaturf"), digest);
  EXPECT_NE(reader.digest("header.payload.signatur"), digest);
  EXPECT_NE(reader.digest("header.payload.signature "), digest);
  // Another cache has another key: digests cannot be computed outside the process.
  EXPECT_NE(other.reader().digest("header.payload.signature"), digest);
}

TEST(TokenCacheTest, MissThenHitCountedPerReaderAndSummed) {
  TokenCache cache({.capacity = 64, .leeway = 30s, .readers = 2});
  auto& first = cache.reader(0);
  auto& second = cache.reader(1);
  const TokenDigest a = first.digest("token-a");
  EXPECT_EQ(first.find(a, kNow), std::nullopt);
  first.insert(a, entry(1), kNow);
  EXPECT_EQ(second.find(second.digest("token-a"), kNow), entry(1)) << "shared by the readers";
  EXPECT_EQ(first.find(first.digest("token-b"), kNow), std::nullopt);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TokenCacheTest, AnswersUntilExactlyExpiryPlusLeeway) {
  TokenCache cache({.capacity = 64, .leeway = 30s});
  auto& reader = cache.reader();
  const TokenDigest digest = reader.digest("token");
  reader.insert(digest, entry(1, kNow), kNow - 60);
  EXPECT_EQ(reader.find(digest, kNow + 30), entry(1, kNow));
  EXPECT_EQ(reader.find(digest, kNow + 31), std::nullopt);
}

TEST(TokenCacheTest, TheSameTokenAgainRenewsItsEntry) {
  TokenCache cache({.capacity = 64});
  auto& reader = cache.reader();
  const TokenDigest digest = reader.digest("token");
  reader.insert(digest, entry(1), kNow);
  reader.insert(digest, entry(2), kNow);
  EXPECT_EQ(reader.find(digest, kNow), entry(2));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.evictions(), 0u);
}

TEST(TokenCacheTest, TheTableIsFixedAndItsBytesStated) {
  TokenCache cache({.capacity = 100});
  EXPECT_EQ(cache.capacity(), 128u);
  EXPECT_EQ(cache.bytes(), 128u * TokenCache::kEntryBytes);
  TokenCache tiny({.capacity = 1});
  EXPECT_EQ(tiny.capacity(), TokenCache::kWays);
  const TokenCache by_default;
  EXPECT_GE(by_default.capacity(), 100'000u) << "an exam's students";
  EXPECT_EQ(by_default.bytes(), 7u << 20);
}

TEST(TokenCacheTest, AFullSetEvictsAnEntryNotUsedSinceTheHandPassedIt) {
  TokenCache cache({.capacity = 2 * TokenCache::kWays});  // two sets
  auto& reader = cache.reader();
  for (std::uint64_t n = 0; n < TokenCache::kWays; ++n) {
    reader.insert(in_set(0, n), entry(static_cast<std::int64_t>(n + 1)), kNow);
  }
  // Entries 0 and 1 are used; the others not.
  ASSERT_TRUE(reader.find(in_set(0, 0), kNow));
  ASSERT_TRUE(reader.find(in_set(0, 1), kNow));
  reader.insert(in_set(0, 100), entry(100), kNow);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_TRUE(reader.find(in_set(0, 0), kNow)) << "used: a second chance";
  EXPECT_TRUE(reader.find(in_set(0, 1), kNow)) << "used: a second chance";
  EXPECT_EQ(reader.find(in_set(0, 2), kNow), std::nullopt) << "the first unused one goes";
  EXPECT_TRUE(reader.find(in_set(0, 100), kNow));
  // The other set is untouched.
  reader.insert(in_set(1, 0), entry(200), kNow);
  EXPECT_EQ(cache.evictions(), 1u);
}

TEST(TokenCacheTest, ExpiredEntriesGoBeforeLiveOnes) {
  TokenCache cache({.capacity = TokenCache::kWays, .leeway = 0s});
  auto& reader = cache.reader();
  for (std::uint64_t n = 0; n < TokenCache::kWays; ++n) {
    const std::int64_t expires = n == 5 ? kNow - 1 : kNow + 3600;
    reader.insert(in_set(0, n), entry(static_cast<std::int64_t>(n + 1), expires), kNow - 10);
  }
  reader.insert(in_set(0, 100), entry(100), kNow);
  EXPECT_EQ(cache.evictions(), 0u) << "an expired entry is not an eviction";
  for (std::uint64_t n = 0; n < TokenCache::kWays; ++n) {
    EXPECT_EQ(reader.find(in_set(0, n), kNow).has_value(), n != 5) << n;
  }
}

TEST(TokenCacheTest, AFreeSlotMarkIsNeverCached) {
  TokenCache cache({.capacity = 64});
  auto& reader = cache.reader();
  reader.insert(in_set(0, 0), {0, kNow + 60, 7}, kNow);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(reader.find(in_set(0, 0), kNow), std::nullopt);
}

// Readers on their threads while a writer keeps replacing the entries of one small set: every
// entry a reader is given is one that was inserted whole for that digest (student n + 1 for
// digest n), never a mix of two.
TEST(TokenCacheTest, ReadersNeverSeeATornEntryWhileEntriesAreReplaced) {
  constexpr int kReaders = 3;
  TokenCache cache({.capacity = TokenCache::kWays, .readers = kReaders + 1});
  std::atomic<bool> stop{false};
  std::atomic<long> hits{0};
  std::vector<std::thread> readers;
  std::vector<std::string> errors(kReaders);
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      auto& reader = cache.reader(static_cast<std::size_t>(r));
      for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const std::uint64_t n = i % 32;
        if (const auto found = reader.find(in_set(0, n), kNow)) {
          hits.fetch_add(1, std::memory_order_relaxed);
          if (found->student_id != static_cast<std::int64_t>(n + 1) ||
              found->expires_at != kNow + static_cast<std::int64_t>(n) || found->key != n) {
            errors[static_cast<std::size_t>(r)] = "digest " + std::to_string(n) + " gave student " +
                                                  std::to_string(found->student_id);
            return;
          }
        }
      }
    });
  }
  auto& writer = cache.reader(kReaders);
  for (int round = 0; round < 20000; ++round) {
    const auto n = static_cast<std::uint64_t>(round % 32);
    writer.insert(in_set(0, n),
                  {static_cast<std::int64_t>(n + 1), kNow + static_cast<std::int64_t>(n), n}, kNow);
  }
  stop = true;
  for (auto& thread : readers) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");
  EXPECT_GT(hits.load(), 0);
}

}  // namespace
}  // namespace attempts::auth
