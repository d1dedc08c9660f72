#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace attempts::http {

// A query value percent-decoded; nullopt if an escape is malformed. A `+` stays a `+`.
std::optional<std::string> percent_decoded(std::string_view value);

// Whether `text` is an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM),
// with a valid date (leap years included), hours to 23, minutes to 59, seconds to 60 (a leap
// second) and offsets to 23:59; `T` and `Z` in either case.
bool is_rfc3339_date_time(std::string_view text);

// An RFC 3339 date-time (is_rfc3339_date_time) as the same instant in UTC,
// "YYYY-MM-DDTHH:MM:SS.ffffffZ" (a fraction past microseconds is cut, a leap second is the next
// minute's first), clamped to the years 1 to 9999 that every store takes: an offset moves the
// instant, and PostgreSQL refuses year 0 and offsets past 15:59.
std::string rfc3339_in_utc(std::string_view text);

// Calls `visit` with each name=value pair of the request target's query (after `?`; empty pairs
// skipped), the value percent-decoded. Stops at the first message `visit` returns, or at a
// malformed %-escape, and returns that message (a 400's); nullopt when every pair was visited.
std::optional<std::string> for_each_query_parameter(
    std::string_view target,
    const std::function<std::optional<std::string>(std::string_view name,
                                                   const std::string& value)>& visit);

}  // namespace attempts::http
