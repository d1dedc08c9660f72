#include "error_log.hpp"

#include <spdlog/spdlog.h>

namespace attempts::db {

void ErrorLog::log(spdlog::level::level_enum level, std::string_view what,
                   const std::string& message, std::string_view cause) {
  constexpr auto kInterval = std::chrono::seconds(10);
  constexpr std::size_t kMaxKinds = 64;  // distinct errors remembered; bounded memory
  std::string key(what);
  key.append("|").append(cause.substr(0, cause.find('\n')));
  if (recent_.size() >= kMaxKinds && !recent_.contains(key)) recent_.clear();
  auto& seen = recent_[key];
  const auto now = Clock::now();
  if (seen.at != Clock::time_point{} && now - seen.at < kInterval) {
    ++seen.left_out;
    return;
  }
  if (seen.left_out > 0) {
    spdlog::log(level, "db connection {}: {} ({} similar errors not logged in the last {}s)",
                index_, message, seen.left_out, kInterval.count());
  } else {
    spdlog::log(level, "db connection {}: {}", index_, message);
  }
  seen = {now, 0};
}

}  // namespace attempts::db
