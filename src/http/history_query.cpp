#include "attempts/http/history_query.hpp"

#include "attempts/http/query_string.hpp"

namespace attempts::http {

std::variant<HistoryQuery, std::string> parse_history_query(std::string_view target) {
  HistoryQuery query;
  bool seen_before = false;
  bool seen_limit = false;
  auto error = for_each_query_parameter(
      target, [&](std::string_view name, const std::string& value) -> std::optional<std::string> {
        if (name == "before") {
          const auto seq = parse_positive_decimal(value);
          if (seen_before || !seq) {
            return std::string(seen_before ? "before given twice"
                                           : "before must be a positive integer (a sequence "
                                             "number the last page gave as next)");
          }
          seen_before = true;
          query.before = *seq;
        } else if (name == "limit") {
          const auto limit = parse_positive_decimal(value);
          if (seen_limit || !limit || *limit > HistoryQuery::kMaxLimit) {
            return seen_limit ? std::string("limit given twice")
                              : "limit must be an integer from 1 to " +
                                    std::to_string(HistoryQuery::kMaxLimit);
          }
          seen_limit = true;
          query.limit = static_cast<std::int32_t>(*limit);
        } else if (name == "at") {
          if (query.at) return std::string("at given twice");
          if (!is_rfc3339_date_time(value)) {
            return std::string(
                "at must be an RFC 3339 date-time with its offset, e.g. 2026-12-07T10:03:00Z (a "
                "'+' offset written %2B)");
          }
          query.at = value;
          query.at_utc = rfc3339_in_utc(value);
        } else {
          return "unknown query parameter '" + std::string(name) +
                 "' (the history takes before, limit or at)";
        }
        return std::nullopt;
      });
  if (error) return std::move(*error);
  if (query.at && (seen_before || seen_limit)) {
    return std::string("at asks for one entry: it cannot be given with before or limit");
  }
  if (query.at) query.limit = 1;
  return query;
}

}  // namespace attempts::http
