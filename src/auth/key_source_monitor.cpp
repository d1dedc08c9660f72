#include "auth/key_source_monitor.hpp"

#include <spdlog/spdlog.h>

namespace attempts::auth {
namespace {

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string_view name(FetchOutcome outcome) noexcept {
  switch (outcome) {
    case FetchOutcome::ok:
      return "ok";
    case FetchOutcome::network_error:
      return "network_error";
    case FetchOutcome::timeout:
      return "timeout";
    case FetchOutcome::tls_error:
      return "tls_error";
    case FetchOutcome::http_error:
      return "http_error";
    case FetchOutcome::too_large:
      return "too_large";
    case FetchOutcome::too_many_redirects:
      return "too_many_redirects";
    case FetchOutcome::malformed:
      return "malformed";
    case FetchOutcome::issuer_mismatch:
      return "issuer_mismatch";
    case FetchOutcome::insecure:
      return "insecure";
  }
  return "unknown";
}

KeySourceMonitor::KeySourceMonitor(std::string source) {
  status_.source = std::move(source);
}

void KeySourceMonitor::fetch_succeeded(std::string source, std::size_t keys,
                                       std::size_t refused_keys) {
  count(FetchOutcome::ok);
  const std::lock_guard lock(mutex_);
  status_.source = std::move(source);
  status_.keys_known = true;
  status_.fetched_at = unix_seconds();
  status_.keys = keys;
  status_.refused_keys = refused_keys;
  status_.last_error.clear();
}

void KeySourceMonitor::fetch_failed(const KeyFetchFailure& failure, std::chrono::seconds next_try) {
  count(failure.outcome);
  KeySourceStatus now;
  {
    const std::lock_guard lock(mutex_);
    status_.last_error = failure.message;
    if (failure.refused_keys) status_.refused_keys = *failure.refused_keys;
    now = status_;
  }
  if (now.keys_known) {
    spdlog::warn("{} ({}); keeping the {} keys fetched {} s ago; next try in {} s", failure.message,
                 name(failure.outcome), now.keys, unix_seconds() - now.fetched_at,
                 next_try.count());
  } else {
    spdlog::error("{} ({}); no keys yet, so requests get 503; next try in {} s", failure.message,
                  name(failure.outcome), next_try.count());
  }
}

void KeySourceMonitor::token_asked(TokenError reason) noexcept {
  auto& counter =
      reason == TokenError::bad_signature ? bad_signature_refreshes_ : unknown_kid_refreshes_;
  counter.fetch_add(1, std::memory_order_relaxed);
}

KeySourceStatus KeySourceMonitor::status() const {
  const std::lock_guard lock(mutex_);
  return status_;
}

}  // namespace attempts::auth
