#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "attempts/auth/token_verifier.hpp"

namespace attempts::auth {

struct TokenCacheOptions {
  std::size_t max_entries = 10'000;
  // Bound on the sum of the cached tokens' lengths.
  std::size_t max_total_token_bytes = 8 << 20;
  // The verifier's leeway: an entry answers until expires_at + leeway, as verify() would.
  std::chrono::seconds leeway{30};
};

// Tokens already verified, so that a client sending the same token on every request pays for
// its signature once. Bounded in entries and in bytes; when full, expired entries go first,
// then the least recently used.
//
// Not thread-safe by design: the server keeps one per I/O thread, so a lookup takes no lock.
// Only the counters may be read from another thread (for /metrics).
//
// The key is the whole token, compared byte for byte: a hash alone could let a forged token
// that collides with a verified one in. Only verified tokens are inserted, so a client cannot
// fill the table with chosen keys.
class TokenCache {
 public:
  explicit TokenCache(TokenCacheOptions options = {});
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // The cached verification of `token` while now <= expires_at + leeway; an expired entry
  // met here is dropped. Does not allocate.
  std::optional<VerifiedToken> find(std::string_view token, std::int64_t now);

  // Caches a token that verify() accepted. `now` decides which entries have expired when room
  // must be made. A token longer than the byte bound is not cached.
  void insert(std::string_view token, const VerifiedToken& verified, std::int64_t now);

  void clear() noexcept;

  // The key set generation the entries were verified with (see Authenticator); resetting to
  // another generation drops every entry.
  std::uint64_t generation() const noexcept { return generation_; }
  void reset(std::uint64_t generation) noexcept;

  std::size_t size() const noexcept { return entries_.size(); }
  std::size_t token_bytes() const noexcept { return token_bytes_; }
  std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t misses() const noexcept { return misses_.load(std::memory_order_relaxed); }
  std::uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct Entry;
  using Recency = std::list<Entry>;  // most recently used first
  using ByExpiry = std::multimap<std::int64_t, Recency::iterator>;
  struct Entry {
    std::string token;
    VerifiedToken verified;
    ByExpiry::iterator expiry;
  };

  bool expired(std::int64_t expires_at, std::int64_t now) const noexcept;
  void erase(Recency::iterator entry) noexcept;
  // Written by the owning thread only; relaxed atomics so that /metrics may read them.
  static void bump(std::atomic<std::uint64_t>& counter) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  TokenCacheOptions options_;
  Recency recency_;
  ByExpiry by_expiry_;
  // Keys view the token strings inside recency_'s nodes, which never move.
  std::unordered_map<std::string_view, Recency::iterator> entries_;
  std::size_t token_bytes_ = 0;
  std::uint64_t generation_ = 0;
  std::atomic<std::uint64_t> hits_{0};
  std::atomic<std::uint64_t> misses_{0};
  std::atomic<std::uint64_t> evictions_{0};
};

}  // namespace attempts::auth
