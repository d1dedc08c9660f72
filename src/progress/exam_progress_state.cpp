#include "attempts/progress/exam_progress_state.hpp"

#include <algorithm>

namespace attempts::progress {

ExamProgressState::ExamProgressState(std::size_t ring_events)
    : ring_events_(std::max<std::size_t>(ring_events, 1)) {}

std::vector<ProgressAttempt> ExamProgressState::apply(const std::vector<ProgressAttempt>& rows,
                                                      UnixMicros at) {
  const std::uint64_t seq = seq_ + 1;
  std::vector<ProgressAttempt> changed;
  for (const ProgressAttempt& row : rows) {
    auto [found, inserted] = attempts_.try_emplace(row.id, TrackedAttempt{row, seq});
    if (!inserted) {
      if (found->second.attempt == row) continue;
      found->second = {row, seq};
    }
    changed.push_back(row);
  }
  std::sort(changed.begin(), changed.end(),
            [](const ProgressAttempt& a, const ProgressAttempt& b) { return a.id < b.id; });
  at_ = std::max(at_, at);
  seq_ = seq;
  return changed;
}

std::optional<std::vector<ProgressAttempt>> ExamProgressState::changed_after(
    std::uint64_t seq) const {
  // The first read made the state: clients resume from it on, and from the last ring_events.
  const std::uint64_t oldest =
      seq_ > ring_events_ ? std::max<std::uint64_t>(1, seq_ - ring_events_) : 1;
  if (seq_ == 0 || seq < oldest || seq > seq_) return std::nullopt;
  std::vector<ProgressAttempt> changed;
  for (const auto& [id, tracked] : attempts_) {
    if (tracked.changed_at_seq > seq) changed.push_back(tracked.attempt);
  }
  return changed;
}

ProgressTotals ExamProgressState::totals(std::chrono::microseconds quiet_after) const {
  return count_totals(attempts_, at_, quiet_after);
}

}  // namespace attempts::progress
