#include "attempts/auth/token_cache.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

namespace attempts::auth {
namespace {

std::uint64_t load_little_endian(const unsigned char* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = value << 8 | bytes[i];
  return value;
}

}  // namespace

// ---- TokenCache -------------------------------------------------------------------------------

TokenCache::TokenCache(TokenCacheOptions options)
    : options_(options),
      slots_(std::bit_ceil(std::max(options.capacity, kWays))),
      filters_(slots_.size() / kWays),
      hands_(slots_.size() / kWays, 0) {
  options_.leeway = std::max(options_.leeway, std::chrono::seconds{0});
  if (RAND_bytes(siphash_key_, sizeof siphash_key_) != 1) {
    throw std::runtime_error("TokenCache: no random bytes for the SipHash key");
  }
  for (std::size_t i = 0; i < std::max<std::size_t>(options_.readers, 1); ++i) {
    readers_.push_back(std::unique_ptr<Reader>(new Reader(*this)));
  }
}

TokenCache::~TokenCache() {
  OPENSSL_cleanse(siphash_key_, sizeof siphash_key_);
}

bool TokenCache::expired(std::int64_t expires_at, std::int64_t now) const noexcept {
  // now > expires_at + leeway, written so that it cannot overflow.
  return now > expires_at && now - expires_at > options_.leeway.count();
}

std::size_t TokenCache::set_of(const TokenDigest& digest) const noexcept {
  return static_cast<std::size_t>(digest.low) & (slots_.size() / kWays - 1);
}

std::uint64_t TokenCache::hits() const noexcept {
  std::uint64_t total = 0;
  for (const auto& reader : readers_) total += reader->hits_.load(std::memory_order_relaxed);
  return total;
}

std::uint64_t TokenCache::misses() const noexcept {
  std::uint64_t total = 0;
  for (const auto& reader : readers_) total += reader->misses_.load(std::memory_order_relaxed);
  return total;
}

std::uint64_t TokenCache::evictions() const noexcept {
  std::uint64_t total = 0;
  for (const auto& reader : readers_) total += reader->evictions_.load(std::memory_order_relaxed);
  return total;
}

std::size_t TokenCache::victim(std::size_t set, const TokenDigest& digest, std::int64_t now,
                               bool& evicts) {
  Slot* const slots = &slots_[set * kWays];
  evicts = false;
  std::size_t free_slot = kWays;
  std::size_t stale_slot = kWays;
  for (std::size_t way = 0; way < kWays; ++way) {
    const Slot& slot = slots[way];
    const std::int64_t student = slot.student_id.load(std::memory_order_relaxed);
    if (student == 0) {
      free_slot = std::min(free_slot, way);
      continue;
    }
    if (slot.digest_low.load(std::memory_order_relaxed) == digest.low &&
        slot.digest_high.load(std::memory_order_relaxed) == digest.high) {
      return set * kWays + way;  // the same token again: its entry is renewed
    }
    if (stale_slot == kWays && expired(slot.expires_at.load(std::memory_order_relaxed), now)) {
      stale_slot = way;
    }
  }
  if (free_slot != kWays) return set * kWays + free_slot;
  if (stale_slot != kWays) return set * kWays + stale_slot;
  // CLOCK: from the hand on, a slot used since the hand passed gets a second chance (its bit is
  // cleared); the first without the bit goes. At most two turns of kWays.
  evicts = true;
  std::uint8_t& hand = hands_[set];
  for (std::size_t step = 0; step < 2 * kWays; ++step) {
    Slot& slot = slots[hand];
    const std::size_t way = hand;
    hand = static_cast<std::uint8_t>((hand + 1) % kWays);
    if (slot.used.load(std::memory_order_relaxed) == 0) return set * kWays + way;
    slot.used.store(0, std::memory_order_relaxed);
  }
  return set * kWays + hand;
}

// ---- TokenCache::Reader -----------------------------------------------------------------------

TokenCache::Reader::Reader(TokenCache& cache) : cache_(cache) {
  EVP_MAC* siphash = EVP_MAC_fetch(nullptr, "SIPHASH", nullptr);
  if (siphash != nullptr) mac_ = EVP_MAC_CTX_new(siphash);
  EVP_MAC_free(siphash);  // the context keeps its own reference
  std::size_t size = 16;
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                               OSSL_PARAM_construct_end()};
  if (mac_ == nullptr ||
      EVP_MAC_init(mac_, cache.siphash_key_, sizeof cache.siphash_key_, params) != 1) {
    EVP_MAC_CTX_free(mac_);
    throw std::runtime_error("TokenCache: OpenSSL has no SIPHASH MAC");
  }
}

TokenCache::Reader::~Reader() {
  EVP_MAC_CTX_free(mac_);
}

TokenDigest TokenCache::Reader::digest(std::string_view token) {
  unsigned char out[16] = {};
  std::size_t length = 0;
  // Without a key, init starts again from the one given first (OpenSSL keeps a copy).
  if (EVP_MAC_init(mac_, nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(mac_, reinterpret_cast<const unsigned char*>(token.data()), token.size()) !=
          1 ||
      EVP_MAC_final(mac_, out, &length, sizeof out) != 1 || length != sizeof out) {
    throw std::runtime_error("TokenCache: SipHash failed");
  }
  return {load_little_endian(out), load_little_endian(out + 8)};
}

std::optional<TokenCache::Entry> TokenCache::Reader::find(const TokenDigest& digest,
                                                          std::int64_t now) {
  const std::size_t set = cache_.set_of(digest);
  const Filter& filter = cache_.filters_[set];
  Slot* const slots = &cache_.slots_[set * kWays];
  for (std::size_t way = 0; way < kWays; ++way) {
    if (filter.digest_low[way].load(std::memory_order_relaxed) != digest.low) continue;
    Slot& slot = slots[way];
    // The seqlock's read side: the fields, then the version again; a write in between (or in
    // progress) makes this a miss, never a mix of two entries.
    const std::uint32_t before = slot.version.load(std::memory_order_acquire);
    if ((before & 1) != 0) continue;
    if (slot.digest_low.load(std::memory_order_relaxed) != digest.low ||
        slot.digest_high.load(std::memory_order_relaxed) != digest.high) {
      continue;
    }
    const Entry entry{slot.student_id.load(std::memory_order_relaxed),
                      slot.expires_at.load(std::memory_order_relaxed),
                      slot.key.load(std::memory_order_relaxed)};
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.version.load(std::memory_order_relaxed) != before || entry.student_id == 0 ||
        cache_.expired(entry.expires_at, now)) {
      break;
    }
    // Only a bit that is not set yet is written: hits on a hot entry share nothing.
    if (slot.used.load(std::memory_order_relaxed) == 0) {
      slot.used.store(1, std::memory_order_relaxed);
    }
    hits_.store(hits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return entry;
  }
  misses_.store(misses_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return std::nullopt;
}

void TokenCache::Reader::insert(const TokenDigest& digest, const Entry& entry, std::int64_t now) {
  if (entry.student_id == 0) return;  // 0 marks a free slot
  const std::lock_guard lock(cache_.insert_mutex_);
  bool evicts = false;
  const std::size_t set = cache_.set_of(digest);
  const std::size_t index = cache_.victim(set, digest, now, evicts);
  Slot& slot = cache_.slots_[index];
  std::atomic<std::uint64_t>& hint = cache_.filters_[set].digest_low[index % kWays];
  const bool was_free = slot.student_id.load(std::memory_order_relaxed) == 0;
  // The hint goes first, so that no reader starts on the slot while it is written; it is set
  // again once the slot holds the new entry.
  hint.store(0, std::memory_order_relaxed);
  // The seqlock's write side: odd version, the fields, even version.
  const std::uint32_t version = slot.version.load(std::memory_order_relaxed);
  slot.version.store(version + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  slot.digest_low.store(digest.low, std::memory_order_relaxed);
  slot.digest_high.store(digest.high, std::memory_order_relaxed);
  slot.student_id.store(entry.student_id, std::memory_order_relaxed);
  slot.expires_at.store(entry.expires_at, std::memory_order_relaxed);
  slot.key.store(entry.key, std::memory_order_relaxed);
  slot.used.store(0, std::memory_order_relaxed);
  slot.version.store(version + 2, std::memory_order_release);
  hint.store(digest.low, std::memory_order_release);
  if (was_free) cache_.size_.fetch_add(1, std::memory_order_relaxed);
  if (evicts)
    evictions_.store(evictions_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace attempts::auth
