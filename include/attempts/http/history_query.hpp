#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "attempts/domain/attempt_store.hpp"

namespace attempts::http {

// The query of GET /attempts/{id}/history, from the request target (after `?`):
//   before=<seq>  entries older than this sequence number (the cursor the last page gave)
//   limit=<n>     at most n entries, 1..200 (default 50)
//   at=<time>     instead of a page: the entry in force at this RFC 3339 instant (with its
//                 offset: 2026-12-07T10:03:00Z, or 2026-12-07T11:03:00%2B01:00 since a `+`
//                 in a query is read as a space by some clients)
// Values are percent-decoded; a parameter given twice, an unknown one, or `at` with `before` or
// `limit` is refused. Returns the query, or the message of a 400.
std::variant<HistoryQuery, std::string> parse_history_query(std::string_view target);

// Whether `text` is an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM),
// with a valid date (leap years included), hours to 23, minutes to 59, seconds to 60 (a leap
// second) and offsets to 23:59; `T` and `Z` in either case.
bool is_rfc3339_date_time(std::string_view text);

// An RFC 3339 date-time (is_rfc3339_date_time) as the same instant in UTC,
// "YYYY-MM-DDTHH:MM:SS.ffffffZ" (a fraction past microseconds is cut, a leap second is the next
// minute's first), clamped to the years 1 to 9999 that every store takes: an offset moves the
// instant, and PostgreSQL refuses year 0 and offsets past 15:59.
std::string rfc3339_in_utc(std::string_view text);

}  // namespace attempts::http
