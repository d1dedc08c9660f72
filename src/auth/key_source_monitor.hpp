#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "attempts/auth/remote_keys.hpp"
#include "attempts/auth/token_verifier.hpp"
#include "auth/key_fetch_failure.hpp"

namespace attempts::auth {

// What the remote key source shows: its status (/readyz), its counters (/metrics) and the log
// line of a failed fetch, which says what is kept meanwhile. Written by the fetching thread
// (the token asks, by request threads), read by any.
class KeySourceMonitor {
 public:
  explicit KeySourceMonitor(std::string source);

  void fetch_succeeded(std::string source, std::size_t keys, std::size_t refused_keys);
  // Logs the failure: a warning while keys are in use, an error while there are none.
  void fetch_failed(const KeyFetchFailure& failure, std::chrono::seconds next_try);
  // A token asked for a fetch (the first of a wave): unknown_key or bad_signature.
  void token_asked(TokenError reason) noexcept;

  KeySourceStatus status() const;
  std::uint64_t fetches(FetchOutcome outcome) const noexcept {
    return fetches_[static_cast<std::size_t>(outcome)].load(std::memory_order_relaxed);
  }
  std::uint64_t unknown_kid_refreshes() const noexcept {
    return unknown_kid_refreshes_.load(std::memory_order_relaxed);
  }
  std::uint64_t bad_signature_refreshes() const noexcept {
    return bad_signature_refreshes_.load(std::memory_order_relaxed);
  }

 private:
  void count(FetchOutcome outcome) noexcept {
    fetches_[static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  }

  std::array<std::atomic<std::uint64_t>, kFetchOutcomeCount> fetches_{};
  std::atomic<std::uint64_t> unknown_kid_refreshes_{0};
  std::atomic<std::uint64_t> bad_signature_refreshes_{0};
  mutable std::mutex mutex_;
  KeySourceStatus status_;
};

}  // namespace attempts::auth
