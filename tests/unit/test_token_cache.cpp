// TokenCache: hits and misses, expiry at the leeway boundary, bounds in entries and bytes,
// eviction order (expired first, then least recently used), generations.

#include <gtest/gtest.h>

#include <string>

#include "attempts/auth/token_cache.hpp"
#include "auth_test_support.hpp"

namespace attempts::auth {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kNow = 1'700'000'000;

TokenCacheOptions options(std::size_t max_entries, std::size_t max_bytes = 1 << 20,
                          std::chrono::seconds leeway = 30s) {
  return {max_entries, max_bytes, leeway};
}

VerifiedToken student(std::int64_t id, std::int64_t expires_at = kNow + 3600) {
  return {id, expires_at};
}

TEST(TokenCacheTest, MissThenHit) {
  TokenCache cache;
  EXPECT_EQ(cache.find("token-a", kNow), std::nullopt);
  cache.insert("token-a", student(1), kNow);
  EXPECT_EQ(cache.find("token-a", kNow), student(1));
  EXPECT_EQ(cache.find("token-b", kNow), std::nullopt);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.token_bytes(), 7u);
}

TEST(TokenCacheTest, KeyIsTheWholeTokenByteForByte) {
  TokenCache cache;
  const std::string token = "header.payload.signature";
  cache.insert(token, student(1), kNow);
  EXPECT_EQ(cache.find("header.payload.signaturf", kNow), std::nullopt);
  EXPECT_EQ(cache.find("header.payload.signatur", kNow), std::nullopt);
  EXPECT_EQ(cache.find(token + "x", kNow), std::nullopt);
  EXPECT_EQ(cache.find(std::string(token), kNow), student(1));
}

TEST(TokenCacheTest, AnswersUntilExactlyExpiryPlusLeeway) {
  TokenCache cache(options(10, 1 << 20, 30s));
  cache.insert("token", student(1, kNow), kNow - 60);
  EXPECT_EQ(cache.find("token", kNow + 30), student(1, kNow));
  EXPECT_EQ(cache.find("token", kNow + 31), std::nullopt);
  // The expired entry was dropped, not only hidden.
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.token_bytes(), 0u);
  EXPECT_EQ(cache.find("token", kNow), std::nullopt);
}

TEST(TokenCacheTest, ReinsertingReplacesTheEntry) {
  TokenCache cache;
  cache.insert("token", student(1, kNow + 10), kNow);
  cache.insert("token", student(1, kNow + 20), kNow);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.token_bytes(), 5u);
  EXPECT_EQ(cache.find("token", kNow), student(1, kNow + 20));
}

TEST(TokenCacheTest, BoundedInEntriesEvictingTheLeastRecentlyUsed) {
  TokenCache cache(options(3));
  cache.insert("a", student(1), kNow);
  cache.insert("b", student(2), kNow);
  cache.insert("c", student(3), kNow);
  EXPECT_EQ(cache.find("a", kNow), student(1));  // b is now the least recently used
  cache.insert("d", student(4), kNow);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_EQ(cache.find("b", kNow), std::nullopt);
  EXPECT_EQ(cache.find("a", kNow), student(1));
  EXPECT_EQ(cache.find("c", kNow), student(3));
  EXPECT_EQ(cache.find("d", kNow), student(4));
}

TEST(TokenCacheTest, BoundedInTokenBytes) {
  TokenCache cache(options(100, 100));
  const std::string a(40, 'a');
  const std::string b(40, 'b');
  const std::string c(40, 'c');
  cache.insert(a, student(1), kNow);
  cache.insert(b, student(2), kNow);
  EXPECT_EQ(cache.token_bytes(), 80u);
  cache.insert(c, student(3), kNow);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.token_bytes(), 80u);
  EXPECT_EQ(cache.find(a, kNow), std::nullopt);
  EXPECT_EQ(cache.find(b, kNow), student(2));
  // A token larger than the whole bound is not cached, and evicts nothing.
  cache.insert(std::string(101, 'x'), student(4), kNow);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.find(std::string(101, 'x'), kNow), std::nullopt);
  // One that fills the bound exactly evicts everything else.
  cache.insert(std::string(100, 'y'), student(5), kNow);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.token_bytes(), 100u);
}

TEST(TokenCacheTest, EvictsExpiredEntriesBeforeTheLeastRecentlyUsed) {
  TokenCache cache(options(3, 1 << 20, 0s));
  cache.insert("long-lived", student(1, kNow + 3600), kNow);
  cache.insert("short-lived", student(2, kNow + 10), kNow);
  cache.insert("other", student(3, kNow + 3600), kNow);
  EXPECT_EQ(cache.find("short-lived", kNow), student(2, kNow + 10));  // most recently used
  // long-lived is the least recently used, but short-lived has expired by now.
  cache.insert("new", student(4), kNow + 11);
  EXPECT_EQ(cache.find("long-lived", kNow + 11), student(1, kNow + 3600));
  EXPECT_EQ(cache.find("other", kNow + 11), student(3, kNow + 3600));
  EXPECT_EQ(cache.find("new", kNow + 11), student(4));
  EXPECT_EQ(cache.size(), 3u);
}

TEST(TokenCacheTest, EntryWithinItsLeewayIsNotExpiredForEviction) {
  TokenCache cache(options(2, 1 << 20, 30s));
  cache.insert("old", student(1, kNow + 3600), kNow);
  cache.insert("grace", student(2, kNow), kNow);
  EXPECT_EQ(cache.find("grace", kNow + 30), student(2, kNow));
  // "grace" is still answering (expiry + leeway not passed): the LRU entry goes instead.
  cache.insert("new", student(3), kNow + 30);
  EXPECT_EQ(cache.find("old", kNow + 30), std::nullopt);
  EXPECT_EQ(cache.find("grace", kNow + 30), student(2, kNow));
}

TEST(TokenCacheTest, ZeroCapacityCachesNothing) {
  TokenCache cache(options(0));
  cache.insert("token", student(1), kNow);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.find("token", kNow), std::nullopt);
}

TEST(TokenCacheTest, ClearAndResetDropEverything) {
  TokenCache cache;
  cache.insert("a", student(1), kNow);
  cache.insert("b", student(2), kNow);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.token_bytes(), 0u);
  EXPECT_EQ(cache.find("a", kNow), std::nullopt);
  cache.insert("a", student(1), kNow);
  EXPECT_EQ(cache.generation(), 0u);
  cache.reset(7);
  EXPECT_EQ(cache.generation(), 7u);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.find("a", kNow), std::nullopt);
}

TEST(TokenCacheTest, ManyEntriesStayConsistent) {
  TokenCache cache(options(100, 1500));
  for (int i = 0; i < 1000; ++i) {
    const std::string token = "token-" + std::to_string(i);
    cache.insert(token, student(i + 1, kNow + i % 50), kNow + i / 40);
    EXPECT_LE(cache.size(), 100u);
    EXPECT_LE(cache.token_bytes(), 1500u);
    if (i % 3 == 0) cache.find("token-" + std::to_string(i / 2), kNow + i / 40);
  }
  std::size_t bytes = 0;
  std::size_t found = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string token = "token-" + std::to_string(i);
    if (cache.find(token, kNow)) {
      bytes += token.size();
      ++found;
    }
  }
  EXPECT_EQ(found, cache.size());
  EXPECT_EQ(bytes, cache.token_bytes());
}

}  // namespace
}  // namespace attempts::auth
