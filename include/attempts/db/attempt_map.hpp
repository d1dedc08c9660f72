#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "attempts/domain/attempt_id.hpp"

namespace attempts::db {

// A small map from attempt id to a non-zero number, for the few hundred attempts a connection
// handles at once (which are in flight, which row of a batch holds one): open addressing with
// linear probing in a power-of-two table that only grows, so that once warm it allocates
// nothing, and erasing shifts the entries after it back instead of leaving tombstones.
class AttemptMap {
 public:
  // The number stored for `id`, or 0 if there is none.
  std::uint32_t find(AttemptId id) const;
  // Stores `value` (non-zero) for `id`, replacing what was there.
  void set(AttemptId id, std::uint32_t value);
  // Stores `value` (non-zero) for `id` unless it has one; returns the number stored before
  // (0: none, `value` was stored). One probe.
  std::uint32_t insert(AttemptId id, std::uint32_t value);
  // Adds one to the number for `id` (from 0 if absent).
  void increment(AttemptId id);
  // Subtracts one; at 0 the id is removed. Does nothing for an absent id. Returns the number
  // left (0: the id is absent now).
  std::uint32_t decrement(AttemptId id);
  void erase(AttemptId id);
  void clear();

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Slot {
    AttemptId id = 0;
    std::uint32_t value = 0;  // 0: the slot is empty
  };

  std::size_t home(AttemptId id) const;
  // The slot holding `id`, or the empty slot where it would go.
  std::size_t probe(AttemptId id) const;
  void grow();
  // Empties an occupied slot, shifting the entries after it back.
  void remove_at(std::size_t slot);

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace attempts::db
