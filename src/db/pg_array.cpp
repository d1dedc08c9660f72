#include "attempts/db/pg_array.hpp"

#include <charconv>

namespace attempts::db {

std::string to_pg_array(std::span<const std::int64_t> values) {
  std::string out;
  out.reserve(2 + values.size() * 8);
  out.push_back('{');
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    char digits[24];
    const auto result = std::to_chars(digits, digits + sizeof digits, values[i]);
    out.append(digits, result.ptr);
  }
  out.push_back('}');
  return out;
}

std::string to_pg_array(std::span<const std::string_view> values) {
  std::size_t size = 2;
  for (const auto value : values) size += value.size() + 3;
  std::string out;
  out.reserve(size);
  out.push_back('{');
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (const char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace attempts::db
