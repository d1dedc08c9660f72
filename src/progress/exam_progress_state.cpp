#include "attempts/progress/exam_progress_state.hpp"

#include <algorithm>
#include <unordered_map>

namespace attempts::progress {

ExamProgressState::ExamProgressState(std::size_t ring_events)
    : ring_events_(std::max<std::size_t>(ring_events, 1)) {}

std::vector<ProgressAttempt> ExamProgressState::apply(const std::vector<ProgressAttempt>& rows,
                                                      UnixMicros at) {
  std::vector<ProgressAttempt> changed;
  for (const ProgressAttempt& row : rows) {
    auto [found, inserted] = attempts_.try_emplace(row.id, row);
    if (!inserted) {
      if (found->second == row) continue;
      found->second = row;
    }
    changed.push_back(row);
  }
  std::sort(changed.begin(), changed.end(),
            [](const ProgressAttempt& a, const ProgressAttempt& b) { return a.id < b.id; });
  at_ = std::max(at_, at);
  ++seq_;
  if (seq_ == 1) {
    // The first read is the state itself: clients resume from it on, never before it.
    oldest_resumable_ = 1;
    return changed;
  }
  Event& event = ring_.emplace_back();
  event.seq = seq_;
  event.changed.reserve(changed.size());
  for (const auto& attempt : changed) event.changed.push_back(attempt.id);
  while (ring_.size() > ring_events_) {
    oldest_resumable_ = ring_.front().seq;
    ring_.pop_front();
  }
  return changed;
}

std::optional<std::vector<ProgressAttempt>> ExamProgressState::changed_after(
    std::uint64_t seq) const {
  if (seq_ == 0 || seq < oldest_resumable_ || seq > seq_) return std::nullopt;
  std::vector<AttemptId> ids;
  for (const Event& event : ring_) {
    if (event.seq > seq) ids.insert(ids.end(), event.changed.begin(), event.changed.end());
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<ProgressAttempt> changed;
  changed.reserve(ids.size());
  for (const AttemptId id : ids) changed.push_back(attempts_.at(id));
  return changed;
}

ProgressTotals ExamProgressState::totals(std::chrono::microseconds quiet_after) const {
  return count_totals(attempts_, at_, quiet_after);
}

}  // namespace attempts::progress
