// TokenCache: digests, hits and misses, expiry at the leeway boundary, the fixed table and its
// CLOCK eviction within a set, readers on several threads while entries are replaced (no torn
// entry is ever answered), and generated sequences of many students' tokens checked against a
// model of what the cache may answer.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
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
  // The writer replaces entries until every reader has found some while it did (on a loaded
  // machine the readers may not even start before a fixed number of rounds ends), within
  // bounds of rounds and time.
  constexpr long kHitsEach = 2000;
  constexpr long kMostRounds = 50'000'000;
  const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  TokenCache cache({.capacity = TokenCache::kWays, .readers = kReaders + 1});
  std::atomic<bool> stop{false};
  std::atomic<long> hits[kReaders] = {};
  std::vector<std::thread> readers;
  std::vector<std::string> errors(kReaders);
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      auto& reader = cache.reader(static_cast<std::size_t>(r));
      for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const std::uint64_t n = i % 32;
        if (const auto found = reader.find(in_set(0, n), kNow)) {
          hits[r].fetch_add(1, std::memory_order_relaxed);
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
  const auto fewest_hits = [&] {
    long fewest = hits[0].load(std::memory_order_relaxed);
    for (const auto& count : hits) fewest = std::min(fewest, count.load(std::memory_order_relaxed));
    return fewest;
  };
  auto& writer = cache.reader(kReaders);
  long rounds = 0;
  for (; rounds < kMostRounds && (rounds < 20000 || fewest_hits() < kHitsEach); ++rounds) {
    const auto n = static_cast<std::uint64_t>(rounds % 32);
    writer.insert(in_set(0, n),
                  {static_cast<std::int64_t>(n + 1), kNow + static_cast<std::int64_t>(n), n}, kNow);
    if (rounds % 4096 == 0 && std::chrono::steady_clock::now() > give_up_at) break;
  }
  stop = true;
  for (auto& thread : readers) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");
  for (int r = 0; r < kReaders; ++r) {
    EXPECT_GE(hits[r].load(), kHitsEach)
        << "reader " << r << " found too few entries in " << rounds << " rounds of the writer";
  }
}

// ---- generated sequences against a model -----------------------------------------------------
// ATTEMPTS_CACHE_SEED=<n> replays a run (printed, and each failing case's seed with it).

std::uint64_t run_seed() {
  if (const char* text = std::getenv("ATTEMPTS_CACHE_SEED"))
    return std::strtoull(text, nullptr, 10);
  return std::random_device{}();
}

// One generated case: many students' tokens (digests crowded into a few sets, so that sets fill
// and evict), inserted, looked up and renewed in random order while the clock moves. What the
// cache may answer for a token, whatever it evicted: nothing, or exactly the entry last inserted
// for that token, and only until its expiry plus the leeway. What it must answer: a token just
// inserted; and every live token of a set that never held more than kWays tokens.
std::string check_case(std::uint64_t seed) {
  std::mt19937_64 random(seed);
  const auto pick = [&random](std::uint64_t bound) {
    return std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(random);
  };
  const std::size_t sets = std::size_t{1} << pick(4);  // 1 to 8 sets
  const std::int64_t leeway = static_cast<std::int64_t>(pick(3)) * 15;
  TokenCache cache(
      {.capacity = sets * TokenCache::kWays, .leeway = std::chrono::seconds(leeway), .readers = 2});
  const std::size_t token_count = 4 + pick(60);
  std::vector<TokenDigest> tokens;
  std::set<std::pair<std::uint64_t, std::uint64_t>> seen;
  while (tokens.size() < token_count) {
    // A few tokens share their low half with another (only the high half tells them apart).
    const std::uint64_t low =
        !tokens.empty() && pick(8) == 0 ? tokens[pick(tokens.size())].low : random();
    const TokenDigest digest{low, random()};
    if (seen.insert({digest.low, digest.high}).second) tokens.push_back(digest);
  }
  std::map<std::size_t, TokenCache::Entry> model;           // token -> last inserted entry
  std::map<std::size_t, std::set<std::size_t>> set_tokens;  // set -> tokens ever inserted
  std::int64_t now = kNow;
  std::ostringstream log;
  for (int step = 0; step < 400; ++step) {
    if (pick(10) == 0) now += static_cast<std::int64_t>(pick(120));
    const std::size_t token = pick(tokens.size());
    auto& reader = cache.reader(pick(2));
    const std::size_t set = static_cast<std::size_t>(tokens[token].low) & (sets - 1);
    if (pick(3) == 0) {
      const TokenCache::Entry inserted{static_cast<std::int64_t>(1 + pick(20000)),
                                       now + static_cast<std::int64_t>(pick(300)) - 60,
                                       1 + pick(3)};
      reader.insert(tokens[token], inserted, now);
      model[token] = inserted;
      set_tokens[set].insert(token);
      log << "step " << step << ": insert token " << token << " (set " << set << ") student "
          << inserted.student_id << " expires " << inserted.expires_at - kNow << ", now "
          << now - kNow << '\n';
      const bool live = now <= inserted.expires_at + leeway;
      if (reader.find(tokens[token], now) != (live ? std::optional(inserted) : std::nullopt)) {
        return log.str() + "  a token just inserted is not answered as inserted";
      }
      continue;
    }
    const auto found = reader.find(tokens[token], now);
    const auto known = model.find(token);
    const bool live = known != model.end() && now <= known->second.expires_at + leeway;
    if (found && (!live || *found != known->second)) {
      return log.str() + "step " + std::to_string(step) + ": token " + std::to_string(token) +
             " answered student " + std::to_string(found->student_id) +
             (live ? ", not the entry last inserted" : ", but it has no live entry");
    }
    if (!found && live && set_tokens[set].size() <= TokenCache::kWays) {
      return log.str() + "step " + std::to_string(step) + ": token " + std::to_string(token) +
             " was evicted from a set that never held more than kWays tokens";
    }
  }
  if (cache.size() > cache.capacity()) return "size " + std::to_string(cache.size());
  return {};
}

TEST(TokenCacheModelTest, GeneratedSequencesAnswerOnlyWhatWasInsertedForThatToken) {
  const std::uint64_t seed = run_seed();
  constexpr int kCases = 3000;
  int failures = 0;
  for (int i = 0; i < kCases && failures < 3; ++i) {
    const std::uint64_t case_seed = seed + static_cast<std::uint64_t>(i);
    if (const std::string error = check_case(case_seed); !error.empty()) {
      ++failures;
      ADD_FAILURE() << "case seed " << case_seed << " (ATTEMPTS_CACHE_SEED=" << seed << ")\n"
                    << error;
    }
  }
  std::cout << "[ model ] " << kCases << " cases, seed " << seed
            << " (ATTEMPTS_CACHE_SEED replays them)\n";
}

// Readers on their threads look up random tokens of many sets while a writer inserts and renews
// them (and so evicts): every entry a reader is given is the one derived from its token, whole,
// and never past its expiry.
TEST(TokenCacheModelTest, ConcurrentReadersGetOnlyTheirTokensEntriesWhileSetsEvict) {
  const std::uint64_t seed = run_seed();
  constexpr int kReaders = 3;
  constexpr std::size_t kTokens = 512;  // for 64 slots: sets overflow all the time
  TokenCache cache({.capacity = 64, .leeway = 0s, .readers = kReaders + 1});
  std::mt19937_64 random(seed);
  std::vector<TokenDigest> tokens(kTokens);
  for (auto& token : tokens) token = {random(), random()};
  // What token i is always inserted with: its student, expiry and key follow from i.
  const auto entry_of = [](std::size_t i) {
    return TokenCache::Entry{static_cast<std::int64_t>(i + 1),
                             kNow + static_cast<std::int64_t>(i % 7) * 10,
                             static_cast<std::uint64_t>(i) * 3 + 1};
  };
  std::atomic<bool> stop{false};
  std::atomic<long> hits{0};
  std::vector<std::string> errors(kReaders);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937_64 mine(seed + static_cast<std::uint64_t>(r) + 1);
      auto& reader = cache.reader(static_cast<std::size_t>(r));
      while (!stop.load(std::memory_order_relaxed)) {
        const std::size_t i = mine() % kTokens;
        const std::int64_t now = kNow + static_cast<std::int64_t>(mine() % 80);
        const auto found = reader.find(tokens[i], now);
        if (!found) continue;
        hits.fetch_add(1, std::memory_order_relaxed);
        if (*found != entry_of(i) || now > found->expires_at) {
          errors[static_cast<std::size_t>(r)] =
              "token " + std::to_string(i) + " gave student " + std::to_string(found->student_id) +
              " expiring at " + std::to_string(found->expires_at - kNow) + " at " +
              std::to_string(now - kNow);
          return;
        }
      }
    });
  }
  auto& writer = cache.reader(kReaders);
  for (int round = 0; round < 200'000; ++round) {
    const std::size_t i = random() % kTokens;
    writer.insert(tokens[i], entry_of(i), kNow);
  }
  stop = true;
  for (auto& thread : readers) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "") << "seed " << seed;
  EXPECT_GT(hits.load(), 0);
  EXPECT_GT(cache.evictions(), 0u);
}

}  // namespace
}  // namespace attempts::auth
