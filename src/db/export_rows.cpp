#include "export_rows.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace attempts::db {
namespace {

std::int64_t integer_at(const PGresult& result, int row, int column) {
  const char* text = PQgetvalue(&result, row, column);
  std::int64_t value = 0;
  std::from_chars(text, text + PQgetlength(&result, row, column), value);
  return value;
}

std::string_view text_at(const PGresult& result, int row, int column) {
  return {PQgetvalue(&result, row, column),
          static_cast<std::size_t>(PQgetlength(&result, row, column))};
}

}  // namespace

std::string_view rfc3339_from_iso(std::string_view iso, char* out) {
  // YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]
  const bool shaped = iso.size() >= 22 && iso[4] == '-' && iso[10] == ' ' && iso[13] == ':';
  std::memcpy(out, iso.data(), iso.size());
  if (!shaped) return {out, iso.size()};
  out[10] = 'T';
  const std::size_t sign = iso.find_last_of("+-");
  if (sign > 18 && iso.size() - sign == 3) {  // +HH: the minutes, as RFC 3339 requires them
    std::memcpy(out + iso.size(), ":00", 3);
    return {out, iso.size() + 3};
  }
  return {out, iso.size()};
}

ExportedAttempt ExportRowReader::read(const PGresult& result, int row) {
  const auto timestamp = [&](int column, std::size_t slot) -> std::optional<std::string_view> {
    if (PQgetisnull(&result, row, column)) return std::nullopt;
    const std::string_view iso = text_at(result, row, column);
    if (iso.size() + 3 > timestamps_[slot].size()) return iso;  // never from PostgreSQL
    return rfc3339_from_iso(iso, timestamps_[slot].data());
  };
  ExportedAttempt attempt;
  attempt.id = integer_at(result, row, 0);
  attempt.student_id = integer_at(result, row, 1);
  attempt.answers_json = text_at(result, row, 2);
  attempt.revision = integer_at(result, row, 3);
  attempt.started_at = timestamp(4, 0).value_or(std::string_view{});
  attempt.updated_at = timestamp(5, 1);
  attempt.submitted_at = timestamp(6, 2);
  attempt.deadline = timestamp(7, 3);
  attempt.saves = integer_at(result, row, 8);
  return attempt;
}

}  // namespace attempts::db
