#include "attempts/db/claim_table.hpp"

#include <bit>
#include <cassert>

namespace attempts::db {
namespace {

// A stripe's word: the owner in the low 32 bits, the claims it holds in the next 31, and
// whether a claim of another owner failed meanwhile in the top bit.
constexpr std::uint64_t kContended = std::uint64_t{1} << 63;
constexpr std::uint64_t kCountOne = std::uint64_t{1} << 32;
constexpr std::uint64_t kCountMask = ~kContended & ~std::uint64_t{0xffffffff};

ClaimTable::Owner owner_of(std::uint64_t word) {
  return static_cast<ClaimTable::Owner>(word);
}

std::uint64_t count_of(std::uint64_t word) {
  return (word & kCountMask) >> 32;
}

}  // namespace

ClaimTable::ClaimTable(std::size_t stripes, metrics::Counter* waits)
    : mask_(std::bit_ceil(stripes < 2 ? std::size_t{2} : stripes) - 1),
      waits_(waits),
      words_(std::make_unique<std::atomic<std::uint64_t>[]>(mask_ + 1)) {}

std::atomic<std::uint64_t>& ClaimTable::stripe(AttemptId attempt) const {
  // Fibonacci hashing: consecutive ids (as seeded, as started) land far apart.
  const auto hash = static_cast<std::uint64_t>(attempt) * 0x9e3779b97f4a7c15u;
  return words_[(hash >> 32) & mask_];
}

bool ClaimTable::claim(AttemptId attempt, Owner owner) {
  assert(owner != 0);
  auto& word = stripe(attempt);
  std::uint64_t seen = word.load(std::memory_order_acquire);
  for (;;) {
    std::uint64_t wanted = 0;
    if (count_of(seen) == 0) {
      wanted = owner | kCountOne;
    } else if (owner_of(seen) == owner) {
      wanted = seen + kCountOne;
    } else if (seen & kContended) {
      return false;
    } else {
      wanted = seen | kContended;
    }
    if (word.compare_exchange_weak(seen, wanted, std::memory_order_acq_rel,
                                   std::memory_order_acquire)) {
      if (owner_of(wanted) == owner) return true;
      if (waits_ != nullptr) waits_->add();
      return false;
    }
  }
}

bool ClaimTable::release(AttemptId attempt, Owner owner) {
  auto& word = stripe(attempt);
  std::uint64_t seen = word.load(std::memory_order_acquire);
  for (;;) {
    assert(owner_of(seen) == owner && count_of(seen) > 0);
    if (owner_of(seen) != owner || count_of(seen) == 0) return false;
    const std::uint64_t wanted = count_of(seen) == 1 ? 0 : seen - kCountOne;
    if (word.compare_exchange_weak(seen, wanted, std::memory_order_acq_rel,
                                   std::memory_order_acquire)) {
      return wanted == 0 && (seen & kContended) != 0;
    }
  }
}

ClaimTable::Owner ClaimTable::holder(AttemptId attempt) const {
  const std::uint64_t seen = stripe(attempt).load(std::memory_order_acquire);
  return count_of(seen) == 0 ? 0 : owner_of(seen);
}

}  // namespace attempts::db
