#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace attempts::db {

// PostgreSQL array literals, sent as the text of one bound parameter: the values never become
// SQL text, so nothing in them is interpreted as SQL.
std::string to_pg_array(std::span<const std::int64_t> values);

// Each element is double-quoted, with '"' and '\' escaped, so any text survives the round trip.
std::string to_pg_array(std::span<const std::string_view> values);

}  // namespace attempts::db
