#include "attempts/domain/attempt_id.hpp"

#include <charconv>
#include <limits>

namespace attempts {

std::optional<std::int64_t> parse_positive_decimal(std::string_view text) noexcept {
  // from_chars alone would accept a leading '-' and stop at the first non-digit,
  // so the character set is checked first.
  if (text.empty() || text.front() == '0') return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace attempts
