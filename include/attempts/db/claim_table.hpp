#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "attempts/domain/attempt_id.hpp"
#include "attempts/metrics/metrics.hpp"

namespace attempts::db {

// Which pool connection may send statements of an attempt, across the whole process.
//
// A connection sends nothing of an attempt while a statement of it that it sent may still
// apply (SavePlanner), and a loop sends an attempt's calls to the connection that holds it
// (LoopRouter). A student's second HTTP connection can land on another event loop, though, and
// a write answered 504 is still in flight when the client's next write arrives there. So before
// a connection sends anything of an attempt it claims the attempt here, and it gives the claim
// back only when nothing it sent of the attempt can still apply; meanwhile the other
// connections keep their calls of it queued. A call is therefore sent only after every call of
// its attempt that was answered before it arrived can no longer apply: a write acknowledged 204
// is never overwritten by one its client sent earlier.
//
// Claims are counted per stripe (attempt ids hashed into a fixed table of atomic words), so two
// attempts can share one: that only makes one wait for the other's statement, never reorders.
// The table is read and written by every event loop without a lock; it allocates only when
// built.
class ClaimTable {
 public:
  // Connections are numbered from 1; 0 is nobody.
  using Owner = std::uint32_t;

  static constexpr std::size_t kDefaultStripes = std::size_t{1} << 14;

  // `stripes` is rounded up to a power of two. `waits`, if given, counts the claims that found
  // another owner holding a stripe that nobody waited for yet.
  explicit ClaimTable(std::size_t stripes = kDefaultStripes, metrics::Counter* waits = nullptr);

  // Claims `attempt` for `owner` (once more if it already holds its stripe). False if another
  // owner holds the stripe; the stripe is then marked contended, so that its release says so.
  bool claim(AttemptId attempt, Owner owner);
  // Gives back one claim of `owner` on `attempt`'s stripe. True if the stripe is now free and a
  // claim of another owner failed while it was held: the connections that wait should look
  // again.
  bool release(AttemptId attempt, Owner owner);

  // The owner holding `attempt`'s stripe, 0 if none (for tests and assertions).
  Owner holder(AttemptId attempt) const;
  std::size_t stripes() const { return mask_ + 1; }

 private:
  std::atomic<std::uint64_t>& stripe(AttemptId attempt) const;

  std::size_t mask_;
  metrics::Counter* waits_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
};

}  // namespace attempts::db
