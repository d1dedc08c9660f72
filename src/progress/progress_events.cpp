#include "attempts/progress/progress_events.hpp"

#include <charconv>

namespace attempts::progress {
namespace {

void append_digits(std::string& out, std::int64_t value, int width) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  for (auto length = end - digits; length < width; ++length) out.push_back('0');
  out.append(digits, end);
}

void append_time_or_null(std::string& out, const std::optional<UnixMicros>& at) {
  if (!at) {
    out.append("null");
    return;
  }
  out.push_back('"');
  append_rfc3339_micros(out, *at);
  out.push_back('"');
}

}  // namespace

void append_rfc3339_micros(std::string& out, UnixMicros at) {
  using namespace std::chrono;
  const sys_time<microseconds> time{microseconds(at)};
  const auto day = floor<days>(time);
  const year_month_day date{day};
  const auto of_day = time - day;
  const auto h = duration_cast<hours>(of_day);
  const auto m = duration_cast<minutes>(of_day - h);
  const auto s = duration_cast<seconds>(of_day - h - m);
  const auto us = of_day - h - m - s;
  append_digits(out, static_cast<int>(date.year()), 4);
  out.push_back('-');
  append_digits(out, static_cast<unsigned>(date.month()), 2);
  out.push_back('-');
  append_digits(out, static_cast<unsigned>(date.day()), 2);
  out.push_back('T');
  append_digits(out, h.count(), 2);
  out.push_back(':');
  append_digits(out, m.count(), 2);
  out.push_back(':');
  append_digits(out, s.count(), 2);
  out.push_back('.');
  append_digits(out, us.count(), 6);
  out.push_back('Z');
}

std::string event_id(std::string_view watch, std::uint64_t seq) {
  std::string id(watch);
  id.push_back('-');
  id.append(std::to_string(seq));
  return id;
}

std::optional<EventId> parse_event_id(std::string_view text) {
  const auto dash = text.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash + 1 == text.size()) return std::nullopt;
  EventId id;
  id.watch = text.substr(0, dash);
  for (const char c : id.watch) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum) return std::nullopt;
  }
  const std::string_view digits = text.substr(dash + 1);
  if (digits.size() > 1 && digits.front() == '0') return std::nullopt;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), id.seq);
  if (error != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return id;
}

std::string retry_field(std::chrono::milliseconds interval) {
  return "retry: " + std::to_string(interval.count()) + "\n";
}

void append_event_start(std::string& out, const ProgressEventHeader& header,
                        std::string_view kind) {
  out.append("id: ").append(header.watch).push_back('-');
  out.append(std::to_string(header.seq));
  out.append("\nevent: ").append(kind);
  out.append("\ndata: {\"exam_id\":").append(std::to_string(header.exam_id));
  out.append(",\"at\":\"");
  append_rfc3339_micros(out, header.at);
  out.push_back('"');
}

void append_totals(std::string& out, const ProgressTotals& totals) {
  out.append(",\"totals\":{\"attempts\":").append(std::to_string(totals.attempts));
  out.append(",\"saving\":").append(std::to_string(totals.saving));
  out.append(",\"quiet\":").append(std::to_string(totals.quiet));
  out.append(",\"submitted\":").append(std::to_string(totals.submitted));
  out.push_back('}');
}

void append_attempt(std::string& out, const ProgressAttempt& attempt) {
  out.append("{\"id\":").append(std::to_string(attempt.id));
  out.append(",\"student_id\":").append(std::to_string(attempt.student_id));
  out.append(",\"answered\":").append(std::to_string(attempt.answered));
  out.append(",\"started_at\":");
  append_time_or_null(out, attempt.started_at);
  out.append(",\"updated_at\":");
  append_time_or_null(out, attempt.updated_at);
  out.append(",\"submitted_at\":");
  append_time_or_null(out, attempt.submitted_at);
  out.append(",\"deadline\":");
  append_time_or_null(out, attempt.deadline);
  out.push_back('}');
}

std::string changes_event(const ProgressEventHeader& header,
                          const std::vector<ProgressAttempt>& attempts) {
  std::string out;
  out.reserve(256 + attempts.size() * 190);
  append_event_start(out, header, "changes");
  append_totals(out, header.totals);
  out.append(",\"attempts\":[");
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_attempt(out, attempts[i]);
  }
  out.append("]}\n\n");
  return out;
}

}  // namespace attempts::progress
