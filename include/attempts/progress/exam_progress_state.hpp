#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
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

// An attempt as the state keeps it: with the event that last changed it, so that a resume finds
// what changed after an event without a list of changes per event.
struct TrackedAttempt {
  ProgressAttempt attempt;
  std::uint64_t changed_at_seq = 0;
};

inline const ProgressAttempt& attempt_of(const ProgressAttempt& attempt) {
  return attempt;
}
inline const ProgressAttempt& attempt_of(const TrackedAttempt& tracked) {
  return tracked.attempt;
}

// The totals of `attempts` (a map by id) as of `at`.
template <typename Range>
ProgressTotals count_totals(const Range& attempts, UnixMicros at,
                            std::chrono::microseconds quiet_after);

// One exam's progress as the database showed it: no I/O, no threads (its watch calls it under
// its own lock). Each read of the database is applied as one event with the next sequence
// number, and each attempt remembers the event that last changed it: a client that reconnects
// with one of the last `ring_events` event ids gets what changed after it instead of the whole
// exam, at no memory cost per event (a list of changed ids per event would hold 20,000 ids per
// event of a busy exam).
class ExamProgressState {
 public:
  explicit ExamProgressState(std::size_t ring_events);

  bool ready() const { return seq_ > 0; }
  // The event the state is as of (0: nothing read yet); grows by one per apply().
  std::uint64_t seq() const { return seq_; }
  // The database time of the last read.
  UnixMicros at() const { return at_; }
  // Every attempt, by id.
  const std::map<AttemptId, TrackedAttempt>& attempts() const { return attempts_; }

  // Applies a read's rows as of `at`: the attempts that are new or differ from the state, by
  // id. Rows equal to the state (the reads overlap on purpose) are left out. The first read
  // makes the state (and returns every row); later ones are recorded in the ring.
  std::vector<ProgressAttempt> apply(const std::vector<ProgressAttempt>& rows, UnixMicros at);

  // The attempts changed after event `seq`, merged (each as it is now), by id; nullopt when
  // `seq` is older than the last `ring_events` events (or was never issued).
  std::optional<std::vector<ProgressAttempt>> changed_after(std::uint64_t seq) const;

  ProgressTotals totals(std::chrono::microseconds quiet_after) const;

 private:
  const std::size_t ring_events_;
  std::uint64_t seq_ = 0;
  UnixMicros at_ = 0;
  std::map<AttemptId, TrackedAttempt> attempts_;
};

template <typename Range>
ProgressTotals count_totals(const Range& attempts, UnixMicros at,
                            std::chrono::microseconds quiet_after) {
  ProgressTotals totals;
  const UnixMicros saving_since =
      at - std::chrono::duration_cast<std::chrono::microseconds>(kSavingWindow).count();
  const UnixMicros quiet_before = at - quiet_after.count();
  for (const auto& entry : attempts) {
    const ProgressAttempt& attempt = attempt_of(entry.second);
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
