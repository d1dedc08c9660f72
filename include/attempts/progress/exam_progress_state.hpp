#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "attempts/domain/exam_progress.hpp"

namespace attempts::progress {

// The counts a proctor's page shows above the table, as of one instant.
struct ProgressTotals {
  std::int64_t attempts = 0;   // rows of the exam: every row is a started attempt
  std::int64_t saving = 0;     // not submitted, saved within the saving window
  std::int64_t quiet = 0;      // not submitted, last save (or the start) older than quiet_after
  std::int64_t submitted = 0;  // submitted_at set

  friend bool operator==(const ProgressTotals&, const ProgressTotals&) = default;
};

// "Saving": saved within this window.
inline constexpr std::chrono::seconds kSavingWindow{60};

// The totals of `attempts` as of `at`.
template <typename Range>
ProgressTotals count_totals(const Range& attempts, UnixMicros at,
                            std::chrono::microseconds quiet_after);

// One exam's progress as the database showed it, and the recent changes: no I/O, no threads
// (its watch calls it under its own lock). Each read of the database is applied as one event
// with the next sequence number; the attempts it changed are kept in a ring of the last
// `ring_events` events, so that a client that reconnects with an event id still in the ring
// gets what changed after it instead of the whole exam.
class ExamProgressState {
 public:
  explicit ExamProgressState(std::size_t ring_events);

  bool ready() const { return seq_ > 0; }
  // The event the state is as of (0: nothing read yet); grows by one per apply().
  std::uint64_t seq() const { return seq_; }
  // The database time of the last read.
  UnixMicros at() const { return at_; }
  // Every attempt, by id.
  const std::map<AttemptId, ProgressAttempt>& attempts() const { return attempts_; }

  // Applies a read's rows as of `at`: the attempts that are new or differ from the state, by
  // id. Rows equal to the state (the reads overlap on purpose) are left out. The first read
  // makes the state (and returns every row); later ones are recorded in the ring.
  std::vector<ProgressAttempt> apply(const std::vector<ProgressAttempt>& rows, UnixMicros at);

  // The attempts changed after event `seq`, merged (each as it is now), by id; nullopt when the
  // ring no longer holds every event after it (or `seq` was never issued).
  std::optional<std::vector<ProgressAttempt>> changed_after(std::uint64_t seq) const;

  ProgressTotals totals(std::chrono::microseconds quiet_after) const;

 private:
  struct Event {
    std::uint64_t seq = 0;
    std::vector<AttemptId> changed;
  };

  const std::size_t ring_events_;
  std::uint64_t seq_ = 0;
  // Resuming after any event from this one on is possible.
  std::uint64_t oldest_resumable_ = 0;
  UnixMicros at_ = 0;
  std::map<AttemptId, ProgressAttempt> attempts_;
  std::deque<Event> ring_;
};

template <typename Range>
ProgressTotals count_totals(const Range& attempts, UnixMicros at,
                            std::chrono::microseconds quiet_after) {
  ProgressTotals totals;
  const UnixMicros saving_since =
      at - std::chrono::duration_cast<std::chrono::microseconds>(kSavingWindow).count();
  const UnixMicros quiet_before = at - quiet_after.count();
  for (const auto& entry : attempts) {
    const ProgressAttempt& attempt = entry.second;
    ++totals.attempts;
    if (attempt.submitted_at) {
      ++totals.submitted;
      continue;
    }
    if (attempt.updated_at && *attempt.updated_at > saving_since) ++totals.saving;
    if (attempt.updated_at.value_or(attempt.started_at) < quiet_before) ++totals.quiet;
  }
  return totals;
}

}  // namespace attempts::progress
