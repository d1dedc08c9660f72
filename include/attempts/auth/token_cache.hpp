#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "attempts/auth/token_verifier.hpp"

// OpenSSL's MAC context, declared so that this header needs no OpenSSL headers.
struct evp_mac_ctx_st;

namespace attempts::auth {

// A token's identity in the cache: SipHash-2-4 of the whole token, 128 bits, under a key drawn
// when the cache is made (OpenSSL's SIPHASH). Without the key nobody can make another token
// with the same digest, so the cache keeps 16 bytes per token instead of the token itself.
struct TokenDigest {
  std::uint64_t low = 0;
  std::uint64_t high = 0;

  friend bool operator==(const TokenDigest&, const TokenDigest&) = default;
};

struct TokenCacheOptions {
  // Tokens the cache holds, rounded up to a power of two; each takes kEntryBytes.
  std::size_t capacity = 131'072;
  // The verifier's leeway: an entry answers until expires_at + leeway, as verify() would.
  std::chrono::seconds leeway{30};
  // Threads that use it, each through a Reader of its own (the server's event loops).
  std::size_t readers = 1;
};

// Tokens already verified, for the whole process: a client pays for its token's signature once,
// whichever event loop its connections land on. A lookup takes no lock and writes nothing
// shared (but a bit that says an entry was used, when it was not set); an insert (after a
// signature check, far costlier) takes one mutex.
//
// The table is fixed at construction: sets of kWays slots, kEntryBytes each, so its memory is
// capacity x kEntryBytes whatever the tokens' sizes (131,072 tokens in 7 MiB by default). A
// token's set comes from its digest; within a set an insert takes a free slot, else one whose
// token has expired, else the first not used since the set's clock hand last passed it (CLOCK,
// second chance): no list to keep in order, nothing scanned beyond kWays slots. Each slot is a
// seqlock: a reader that meets a slot being written treats it as a miss. A set's first 64 bits
// of digest sit together in one cache line, so a lookup reads that line and then only the slot
// that may match: a random lookup in a table larger than the caches costs two misses, not six.
class TokenCache {
 public:
  static constexpr std::size_t kWays = 8;
  static constexpr std::size_t kEntryBytes = 56;  // a slot, and its place in the set's filter

  // The student_id of a staff member's token (student ids are positive). The staff id itself is
  // not kept: Authenticator reads it from the token again (authenticator.cpp says why).
  static constexpr std::int64_t kStaffMember = -1;

  // What an entry holds.
  struct Entry {
    std::int64_t student_id = 0;  // or kStaffMember
    std::int64_t expires_at = 0;
    std::uint64_t key = 0;  // what verified it (Authenticator's cache_tag)

    friend bool operator==(const Entry&, const Entry&) = default;
  };

  // One thread's way into the cache: its MAC context (OpenSSL's are not shared between
  // threads) and its counters (summed for /metrics, so that the threads do not share a cache
  // line for every hit).
  class Reader {
   public:
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    ~Reader();

    TokenDigest digest(std::string_view token);
    // The entry for `digest` while now <= expires_at + leeway.
    std::optional<Entry> find(const TokenDigest& digest, std::int64_t now);
    // Caches a token verify() accepted (replacing an entry with the same digest).
    void insert(const TokenDigest& digest, const Entry& entry, std::int64_t now);

   private:
    friend class TokenCache;
    explicit Reader(TokenCache& cache);

    TokenCache& cache_;
    evp_mac_ctx_st* mac_ = nullptr;
    std::atomic<std::uint64_t> hits_{0};
    std::atomic<std::uint64_t> misses_{0};
    std::atomic<std::uint64_t> evictions_{0};
  };

  explicit TokenCache(TokenCacheOptions options = {});
  ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // Reader `index` (< options.readers); each used by one thread at a time.
  Reader& reader(std::size_t index = 0) { return *readers_.at(index); }

  std::size_t capacity() const noexcept { return slots_.size(); }
  std::size_t bytes() const noexcept { return slots_.size() * kEntryBytes; }
  // Entries in use (expired ones count until their slot is taken).
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  std::uint64_t hits() const noexcept;
  std::uint64_t misses() const noexcept;
  std::uint64_t evictions() const noexcept;

 private:
  struct Slot {
    std::atomic<std::uint32_t> version{0};  // odd while being written
    std::atomic<std::uint32_t> used{0};     // CLOCK's reference bit
    std::atomic<std::uint64_t> digest_low{0};
    std::atomic<std::uint64_t> digest_high{0};
    std::atomic<std::int64_t> student_id{0};  // 0: free
    std::atomic<std::int64_t> expires_at{0};
    std::atomic<std::uint64_t> key{0};
  };
  // The low halves of a set's digests, a hint read before a slot (0: free, or being written).
  struct alignas(64) Filter {
    std::array<std::atomic<std::uint64_t>, kWays> digest_low{};
  };
  static_assert(sizeof(Slot) + sizeof(std::uint64_t) == kEntryBytes);
  static_assert(sizeof(Filter) == kWays * sizeof(std::uint64_t));

  bool expired(std::int64_t expires_at, std::int64_t now) const noexcept;
  std::size_t set_of(const TokenDigest& digest) const noexcept;
  // Under insert_mutex_: the slot of `set` to write, and whether taking it evicts a live entry.
  std::size_t victim(std::size_t set, const TokenDigest& digest, std::int64_t now, bool& evicts);

  TokenCacheOptions options_;
  unsigned char siphash_key_[16] = {};
  std::vector<Slot> slots_;
  std::vector<Filter> filters_;      // per set
  std::vector<std::uint8_t> hands_;  // per set, under insert_mutex_
  std::mutex insert_mutex_;
  std::atomic<std::size_t> size_{0};
  std::vector<std::unique_ptr<Reader>> readers_;
};

}  // namespace attempts::auth
