#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace attempts {

// Primary key of an attempt: a positive 64-bit integer (PostgreSQL bigint).
using AttemptId = std::int64_t;

// Parses a positive decimal integer with no sign, no leading zeros and no suffix,
// that fits in a signed 64-bit integer. Anything else is rejected as malformed.
std::optional<std::int64_t> parse_positive_decimal(std::string_view text) noexcept;

inline std::optional<AttemptId> parse_attempt_id(std::string_view text) noexcept {
  return parse_positive_decimal(text);
}

}  // namespace attempts
