#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace attempts::db {

enum class PushResult { queued, full, stopped };

// The queue in front of one pool connection: bounded, so that a burst beyond capacity is refused
// at once instead of growing without limit, and drained in runs, so that everything waiting when
// the connection frees up goes out together.
template <typename T>
class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

  explicit WorkQueue(std::size_t capacity) : capacity_(capacity) {}

  // Moves from `item` only when it was queued; otherwise the caller still owns it.
  PushResult push(T& item) {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return PushResult::stopped;
      if (items_.size() >= capacity_) return PushResult::full;
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
    return PushResult::queued;
  }

  // Waits until there is work, the queue is stopped, or `deadline` (if any) has passed; then
  // appends up to `max` items to `out`, oldest first. Returns false once the queue is stopped
  // and empty: the consumer is done.
  bool wait_take(std::vector<T>& out, std::size_t max, std::optional<Clock::time_point> deadline) {
    std::unique_lock lock(mutex_);
    const auto has_work = [this] { return !items_.empty() || stopped_; };
    if (deadline) {
      ready_.wait_until(lock, *deadline, has_work);
    } else {
      ready_.wait(lock, has_work);
    }
    if (stopped_ && items_.empty()) return false;
    const std::size_t take = std::min(items_.size(), max);
    for (std::size_t i = 0; i < take; ++i) {
      out.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    return true;
  }

  // Refuses new items; what is queued can still be taken.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    ready_.notify_all();
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
  bool stopped_ = false;
};

}  // namespace attempts::db
