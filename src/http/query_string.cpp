#include "attempts/http/query_string.hpp"

#include <charconv>
#include <cstdint>
#include <cstdio>

namespace attempts::http {
namespace {

// The decimal number of `digits` digits at `text`, or -1.
int number_at(std::string_view text, std::size_t at, std::size_t digits) {
  if (at + digits > text.size()) return -1;
  int value = 0;
  for (std::size_t i = at; i < at + digits; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

int days_in_month(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard Hinnant's algorithms).
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

void civil_from_days(std::int64_t days, std::int64_t& year, unsigned& month, unsigned& day) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned shifted_month = (5 * day_of_year + 2) / 153;
  day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  year = static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2);
}

}  // namespace

// Percent-decodes a query value; nullopt if an escape is malformed. A `+` stays a `+`.
std::optional<std::string> percent_decoded(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      out.push_back(value[i]);
      continue;
    }
    unsigned byte = 0;
    if (i + 2 >= value.size() ||
        std::from_chars(value.data() + i + 1, value.data() + i + 3, byte, 16).ptr !=
            value.data() + i + 3) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(byte));
    i += 2;
  }
  return out;
}

bool is_rfc3339_date_time(std::string_view text) {
  const int year = number_at(text, 0, 4);
  const int month = number_at(text, 5, 2);
  const int day = number_at(text, 8, 2);
  const int hour = number_at(text, 11, 2);
  const int minute = number_at(text, 14, 2);
  const int second = number_at(text, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 ||
      minute > 59 || second < 0 || second > 60 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':' ||
      day > days_in_month(year, month)) {
    return false;
  }
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    const std::size_t digits = text.find_first_not_of("0123456789", at + 1);
    if (digits == at + 1) return false;
    at = digits == std::string_view::npos ? text.size() : digits;
  }
  if (at == text.size()) return false;  // the offset is required
  if (text[at] == 'Z' || text[at] == 'z') return at + 1 == text.size();
  if (text[at] != '+' && text[at] != '-') return false;
  const int offset_hours = number_at(text, at + 1, 2);
  const int offset_minutes = number_at(text, at + 4, 2);
  return at + 6 == text.size() && text[at + 3] == ':' && offset_hours >= 0 && offset_hours <= 23 &&
         offset_minutes >= 0 && offset_minutes <= 59;
}

std::string rfc3339_in_utc(std::string_view text) {
  std::int64_t seconds =
      days_from_civil(number_at(text, 0, 4), static_cast<unsigned>(number_at(text, 5, 2)),
                      static_cast<unsigned>(number_at(text, 8, 2))) *
          86400 +
      number_at(text, 11, 2) * 3600 + number_at(text, 14, 2) * 60 + number_at(text, 17, 2);
  std::string micros = "000000";
  std::size_t at = 19;
  if (text[at] == '.') {
    for (std::size_t i = 0;
         at + 1 + i < text.size() && text[at + 1 + i] >= '0' && text[at + 1 + i] <= '9'; ++i) {
      if (i < micros.size()) micros[i] = text[at + 1 + i];
    }
    at = text.find_first_not_of("0123456789", at + 1);
  }
  if (text[at] == '+' || text[at] == '-') {
    const std::int64_t offset = number_at(text, at + 1, 2) * 3600 + number_at(text, at + 4, 2) * 60;
    seconds += text[at] == '+' ? -offset : offset;  // local = UTC + offset
  }
  static const std::int64_t kFirst = days_from_civil(1, 1, 1) * 86400;
  static const std::int64_t kLast = days_from_civil(9999, 12, 31) * 86400 + 86399;
  if (seconds < kFirst) return "0001-01-01T00:00:00.000000Z";
  if (seconds > kLast) return "9999-12-31T23:59:59.999999Z";
  std::int64_t days = seconds / 86400;
  std::int64_t in_day = seconds % 86400;
  if (in_day < 0) {
    in_day += 86400;
    --days;
  }
  std::int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days, year, month, day);
  char out[40];
  std::snprintf(out, sizeof out, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%sZ",
                static_cast<long long>(year), month, day, static_cast<long long>(in_day / 3600),
                static_cast<long long>(in_day / 60 % 60), static_cast<long long>(in_day % 60),
                micros.c_str());
  return out;
}

std::optional<std::string> for_each_query_parameter(
    std::string_view target,
    const std::function<std::optional<std::string>(std::string_view name,
                                                   const std::string& value)>& visit) {
  const auto question = target.find('?');
  if (question == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const auto equals = pair.find('=');
    const std::string_view name = pair.substr(0, equals);
    const auto value = percent_decoded(equals == std::string_view::npos ? std::string_view{}
                                                                        : pair.substr(equals + 1));
    if (!value) return "the value of '" + std::string(name) + "' has a malformed %-escape";
    if (auto error = visit(name, *value)) return error;
  }
  return std::nullopt;
}

}  // namespace attempts::http
