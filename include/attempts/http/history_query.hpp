#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/query_string.hpp"

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

}  // namespace attempts::http
