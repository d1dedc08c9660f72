#pragma once

#include <atomic>
#include <chrono>

namespace attempts::auth {

// When the remote key source fetches: at start until a fetch succeeds (with backoff), every
// refresh interval, when a token asks, and when an operator asks. No I/O and no clock of its
// own (every time is passed in), so that its rules can be checked against a model
// (tests/unit/test_refresh_schedule.cpp):
// - a fetch asked for by a token starts at least min_refresh after the previous fetch started
//   (a flood of made-up kids costs the provider one request per min_refresh), and after the
//   ask: a fetch already under way may have read the document before the key was published,
//   so an ask made while one runs is answered by the next;
// - a fetch asked for by an operator (SIGHUP) starts at once, or as soon as the one under way
//   ends: an operator removing a compromised key must not wait;
// - the 401 of a token that asked says when to try again (retry_after): once the fetch that
//   answers it has started, plus a second for it to end.
// The ask methods may be called from any thread; the others from the fetching thread only.
class RefreshSchedule {
 public:
  using Clock = std::chrono::steady_clock;

  RefreshSchedule(std::chrono::seconds min_refresh, Clock::time_point now) noexcept;

  struct TokenAsk {
    bool first;  // no fetch was asked for yet: this ask is the one counted and woken for
    std::chrono::seconds retry_after;
  };
  // A token named a kid the keys do not have, or its key did not verify it: the provider may
  // have rotated (under a new kid, or the same one).
  TokenAsk ask_for_token(Clock::time_point now) noexcept;
  // An operator's SIGHUP. False when one is already waiting.
  bool ask_for_operator() noexcept;

  // When the next fetch is due: the scheduled one, or sooner when asked.
  Clock::time_point next_fetch() const noexcept;
  // A fetch starts now: the asks made until now are answered by it.
  void fetch_started(Clock::time_point now) noexcept;
  // It succeeded: the next one is due after `interval`.
  void fetch_succeeded(Clock::time_point now, std::chrono::seconds interval) noexcept;
  // It failed: tried again after 1 s, 2, 4... up to kMaxRetryDelay (or `interval`, when that is
  // shorter). Returns that delay.
  std::chrono::seconds fetch_failed(Clock::time_point now, std::chrono::seconds interval) noexcept;

 private:
  const std::chrono::seconds min_refresh_;
  // Read by ask_for_token on request threads; written by the fetching thread.
  std::atomic<Clock::rep> last_start_;
  std::atomic<bool> token_asked_{false};
  std::atomic<bool> operator_asked_{false};
  // The fetching thread's own.
  Clock::time_point due_;
  std::chrono::seconds retry_delay_{1};
};

}  // namespace attempts::auth
