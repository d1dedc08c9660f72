#include "progress_rows.hpp"

#include <charconv>
#include <chrono>

namespace attempts::db {
namespace {

bool digits_at(std::string_view text, std::size_t at, std::size_t count, int& value) {
  if (at + count > text.size()) return false;
  const char* first = text.data() + at;
  const auto [end, error] = std::from_chars(first, first + count, value);
  return error == std::errc{} && end == first + count;
}

}  // namespace

std::optional<UnixMicros> micros_from_iso(std::string_view iso) {
  // YYYY-MM-DD HH:MM:SS[.f{1,6}]+00
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (iso.size() < 22 || iso[4] != '-' || iso[7] != '-' || iso[10] != ' ' || iso[13] != ':' ||
      iso[16] != ':' || !digits_at(iso, 0, 4, year) || !digits_at(iso, 5, 2, month) ||
      !digits_at(iso, 8, 2, day) || !digits_at(iso, 11, 2, hour) ||
      !digits_at(iso, 14, 2, minute) || !digits_at(iso, 17, 2, second)) {
    return std::nullopt;
  }
  std::size_t at = 19;
  std::int64_t fraction = 0;
  if (at < iso.size() && iso[at] == '.') {
    std::int64_t scale = 100000;
    for (++at; at < iso.size() && iso[at] >= '0' && iso[at] <= '9'; ++at) {
      if (scale == 0) return std::nullopt;
      fraction += (iso[at] - '0') * scale;
      scale /= 10;
    }
  }
  if (iso.substr(at) != "+00") return std::nullopt;
  using namespace std::chrono;
  const year_month_day date{std::chrono::year(year),
                            std::chrono::month(static_cast<unsigned>(month)),
                            std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return std::nullopt;
  const auto time = sys_days(date) + hours(hour) + minutes(minute) + seconds(second);
  return duration_cast<microseconds>(time.time_since_epoch()).count() + fraction;
}

bool read_progress_rows(const PGresult& rows, ProgressReadResult& result) {
  const auto integer = [&](int row, int column) {
    std::int64_t value = 0;
    const char* text = PQgetvalue(&rows, row, column);
    std::from_chars(text, text + PQgetlength(&rows, row, column), value);
    return value;
  };
  bool parsed = true;
  const auto time = [&](int row, int column) -> std::optional<UnixMicros> {
    if (PQgetisnull(&rows, row, column)) return std::nullopt;
    const auto micros =
        micros_from_iso({PQgetvalue(&rows, row, column),
                         static_cast<std::size_t>(PQgetlength(&rows, row, column))});
    if (!micros) parsed = false;
    return micros;
  };
  const int count = PQntuples(&rows);
  result.attempts.clear();
  result.attempts.reserve(static_cast<std::size_t>(count));
  for (int row = 0; row < count; ++row) {
    if (row == 0) result.at = time(0, 0).value_or(0);
    if (PQgetisnull(&rows, row, 1)) continue;  // the LEFT JOIN's lone row: nothing changed
    ProgressAttempt& attempt = result.attempts.emplace_back();
    attempt.id = integer(row, 1);
    attempt.student_id = integer(row, 2);
    attempt.answered = static_cast<std::int32_t>(integer(row, 3));
    attempt.started_at = time(row, 4).value_or(0);
    attempt.updated_at = time(row, 5);
    attempt.submitted_at = time(row, 6);
    attempt.deadline = time(row, 7);
  }
  if (!parsed) {
    result.outcome = ProgressReadOutcome::unavailable;
    result.problem = "a timestamp of the progress query is not in the ISO style in UTC";
    return false;
  }
  result.outcome = ProgressReadOutcome::done;
  return true;
}

}  // namespace attempts::db
