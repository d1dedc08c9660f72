#include "attempts/db/attempt_map.hpp"

#include <algorithm>

namespace attempts::db {

std::size_t AttemptMap::home(AttemptId id) const {
  // Fibonacci hashing: consecutive ids (the usual case) spread over the whole table.
  const auto hash = static_cast<std::uint64_t>(id) * 0x9E3779B97F4A7C15ull;
  return static_cast<std::size_t>(hash >> 32) & (slots_.size() - 1);
}

std::size_t AttemptMap::probe(AttemptId id) const {
  std::size_t slot = home(id);
  while (slots_[slot].value != 0 && slots_[slot].id != id) slot = (slot + 1) & (slots_.size() - 1);
  return slot;
}

std::uint32_t AttemptMap::find(AttemptId id) const {
  if (size_ == 0) return 0;
  return slots_[probe(id)].value;
}

void AttemptMap::set(AttemptId id, std::uint32_t value) {
  // At most half full, so probes stay short and always end at an empty slot.
  if (2 * (size_ + 1) > slots_.size()) grow();
  Slot& slot = slots_[probe(id)];
  if (slot.value == 0) ++size_;
  slot = {id, value};
}

std::uint32_t AttemptMap::insert(AttemptId id, std::uint32_t value) {
  if (2 * (size_ + 1) > slots_.size()) grow();
  Slot& slot = slots_[probe(id)];
  if (slot.value != 0) return slot.value;
  ++size_;
  slot = {id, value};
  return 0;
}

void AttemptMap::increment(AttemptId id) {
  if (2 * (size_ + 1) > slots_.size()) grow();
  Slot& slot = slots_[probe(id)];
  if (slot.value == 0) {
    ++size_;
    slot.id = id;
  }
  ++slot.value;
}

std::uint32_t AttemptMap::decrement(AttemptId id) {
  if (size_ == 0) return 0;
  const std::size_t at = probe(id);
  if (slots_[at].value > 1) return --slots_[at].value;
  if (slots_[at].value == 1) remove_at(at);
  return 0;
}

void AttemptMap::erase(AttemptId id) {
  if (size_ == 0) return;
  const std::size_t at = probe(id);
  if (slots_[at].value != 0) remove_at(at);
}

void AttemptMap::remove_at(std::size_t hole) {
  const std::size_t mask = slots_.size() - 1;
  --size_;
  // Backward shift: each later entry of the run that may sit in the hole moves into it.
  for (std::size_t next = (hole + 1) & mask; slots_[next].value != 0; next = (next + 1) & mask) {
    const std::size_t want = home(slots_[next].id);
    // `next` may move back to `hole` unless its home lies cyclically in (hole, next].
    const bool stays = hole <= next ? (hole < want && want <= next) : (hole < want || want <= next);
    if (stays) continue;
    slots_[hole] = slots_[next];
    hole = next;
  }
  slots_[hole] = {};
}

void AttemptMap::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  size_ = 0;
}

void AttemptMap::grow() {
  std::vector<Slot> old(std::max<std::size_t>(16, slots_.size() * 2));
  old.swap(slots_);
  size_ = 0;
  for (const Slot& slot : old) {
    if (slot.value != 0) set(slot.id, slot.value);
  }
}

}  // namespace attempts::db
