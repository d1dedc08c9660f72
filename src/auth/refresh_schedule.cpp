#include "auth/refresh_schedule.hpp"

#include <algorithm>
#include <boost/beast/core/string.hpp>

#include "attempts/auth/remote_keys.hpp"

namespace attempts::auth {

using std::chrono::seconds;

namespace {

// The fetch asked for takes tens of milliseconds on a healthy provider; a client told to wait
// this much longer than its start finds it done.
constexpr seconds kFetchAllowance{1};

}  // namespace

std::optional<seconds> max_age(std::string_view cache_control) {
  constexpr std::string_view kMaxAge = "max-age=";
  std::optional<seconds> found;
  while (!cache_control.empty()) {
    const std::size_t comma = cache_control.find(',');
    std::string_view directive = cache_control.substr(0, comma);
    cache_control = comma == std::string_view::npos ? "" : cache_control.substr(comma + 1);
    directive.remove_prefix(std::min(directive.find_first_not_of(" \t"), directive.size()));
    directive = directive.substr(0, directive.find_last_not_of(" \t") + 1);
    if (boost::beast::iequals(directive, "no-cache") ||
        boost::beast::iequals(directive, "no-store")) {
      return seconds{0};
    }
    if (found || directive.size() <= kMaxAge.size() ||
        !boost::beast::iequals(directive.substr(0, kMaxAge.size()), kMaxAge)) {
      continue;
    }
    std::string_view value = directive.substr(kMaxAge.size());
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    // Delta-seconds; too large a value means "a long time" (RFC 9111 section 1.2.2).
    if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) continue;
    std::int64_t number = 0;
    for (const char c : value) number = std::min<std::int64_t>(number * 10 + (c - '0'), 1ll << 31);
    found = seconds{number};
  }
  return found;
}

seconds refresh_interval(const RemoteKeysOptions& options, std::string_view cache_control) {
  if (options.refresh) return *options.refresh;
  const auto asked = max_age(cache_control);
  if (!asked) return kDefaultRefresh;
  return std::clamp(*asked, kMinAutoRefresh, kMaxAutoRefresh);
}

RefreshSchedule::RefreshSchedule(seconds min_refresh, Clock::time_point now) noexcept
    : min_refresh_(min_refresh),
      last_start_((now - min_refresh).time_since_epoch().count()),
      due_(now) {}

RefreshSchedule::TokenAsk RefreshSchedule::ask_for_token(Clock::time_point now) noexcept {
  const bool first = !token_asked_.exchange(true);
  const Clock::time_point last_start{Clock::duration{last_start_.load()}};
  const auto starts = std::max(now, last_start + min_refresh_);
  return {first, std::chrono::ceil<seconds>(starts - now) + kFetchAllowance};
}

bool RefreshSchedule::ask_for_operator() noexcept {
  return !operator_asked_.exchange(true);
}

RefreshSchedule::Clock::time_point RefreshSchedule::next_fetch() const noexcept {
  if (operator_asked_.load()) return Clock::time_point::min();
  auto next = due_;
  if (token_asked_.load()) {
    next = std::min(next, Clock::time_point{Clock::duration{last_start_.load()}} + min_refresh_);
  }
  return next;
}

void RefreshSchedule::fetch_started(Clock::time_point now) noexcept {
  last_start_.store(now.time_since_epoch().count());
  token_asked_.store(false);
  operator_asked_.store(false);
}

void RefreshSchedule::fetch_succeeded(Clock::time_point now, seconds interval) noexcept {
  retry_delay_ = seconds{1};
  due_ = now + interval;
}

seconds RefreshSchedule::fetch_failed(Clock::time_point now, seconds interval) noexcept {
  const auto delay = std::min({retry_delay_, kMaxRetryDelay, interval});
  retry_delay_ = std::min(retry_delay_ * 2, kMaxRetryDelay);
  due_ = now + delay;
  return delay;
}

}  // namespace attempts::auth
