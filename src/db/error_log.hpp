#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace attempts::db {

// A connection's error lines, at most one per kind of error every few seconds: an outage
// would otherwise log the same line for every statement. The next line of a kind says how many
// were left out.
class ErrorLog {
 public:
  explicit ErrorLog(std::size_t index) : index_(index) {}

  // Logs "db connection <index>: <message>". The kind is `what` (saving, lost, ...) with the
  // first line of `cause`: counts and ids in the message do not make it another kind.
  void log(spdlog::level::level_enum level, std::string_view what, const std::string& message,
           std::string_view cause);

 private:
  using Clock = std::chrono::steady_clock;

  struct Logged {
    Clock::time_point at;
    unsigned left_out = 0;
  };

  const std::size_t index_;
  std::unordered_map<std::string, Logged> recent_;
};

}  // namespace attempts::db
