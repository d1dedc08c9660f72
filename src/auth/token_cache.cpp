#include "attempts/auth/token_cache.hpp"

#include <algorithm>

namespace attempts::auth {

TokenCache::TokenCache(TokenCacheOptions options) : options_(options) {
  options_.leeway = std::max(options_.leeway, std::chrono::seconds{0});
  entries_.reserve(std::min<std::size_t>(options_.max_entries, 1 << 16));
}

bool TokenCache::expired(std::int64_t expires_at, std::int64_t now) const noexcept {
  // now > expires_at + leeway, written so that it cannot overflow.
  return now > expires_at && now - expires_at > options_.leeway.count();
}

std::optional<VerifiedToken> TokenCache::find(std::string_view token, std::int64_t now) {
  const auto found = entries_.find(token);
  if (found == entries_.end()) {
    bump(misses_);
    return std::nullopt;
  }
  const auto entry = found->second;
  if (expired(entry->verified.expires_at, now)) {
    erase(entry);
    bump(misses_);
    return std::nullopt;
  }
  recency_.splice(recency_.begin(), recency_, entry);
  bump(hits_);
  return entry->verified;
}

void TokenCache::insert(std::string_view token, const VerifiedToken& verified, std::int64_t now) {
  if (options_.max_entries == 0 || token.size() > options_.max_total_token_bytes) return;
  if (const auto found = entries_.find(token); found != entries_.end()) erase(found->second);
  const auto full = [&] {
    return entries_.size() + 1 > options_.max_entries ||
           token_bytes_ + token.size() > options_.max_total_token_bytes;
  };
  while (full()) {
    // The entry closest to expiry, if it has expired; otherwise the least recently used.
    const auto soonest = by_expiry_.begin();
    erase(expired(soonest->first, now) ? soonest->second : std::prev(recency_.end()));
    bump(evictions_);
  }
  recency_.push_front(Entry{std::string(token), verified, {}});
  const auto entry = recency_.begin();
  entry->expiry = by_expiry_.emplace(verified.expires_at, entry);
  entries_.emplace(entry->token, entry);
  token_bytes_ += token.size();
}

void TokenCache::erase(Recency::iterator entry) noexcept {
  entries_.erase(entry->token);
  by_expiry_.erase(entry->expiry);
  token_bytes_ -= entry->token.size();
  recency_.erase(entry);
}

void TokenCache::clear() noexcept {
  entries_.clear();
  by_expiry_.clear();
  recency_.clear();
  token_bytes_ = 0;
}

void TokenCache::reset(std::uint64_t generation) noexcept {
  clear();
  generation_ = generation;
}

}  // namespace attempts::auth
