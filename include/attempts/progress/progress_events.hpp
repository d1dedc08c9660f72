#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/domain/exam_progress.hpp"
#include "attempts/progress/exam_progress_state.hpp"

namespace attempts::progress {

// The Server-Sent Events of the progress stream (docs/openapi.yaml, ProgressSnapshot and
// ProgressChanges): every event's data is one line of compact JSON, so no data needs splitting.
// Pure functions: each event is built once and its bytes shared by every stream.

// "2026-12-07T06:10:17.123456Z": RFC 3339 in UTC with microseconds, as the export writes times.
void append_rfc3339_micros(std::string& out, UnixMicros at);

// An event id: "<watch>-<seq>".
std::string event_id(std::string_view watch, std::uint64_t seq);

// A Last-Event-ID split back into its watch and sequence number; nullopt when malformed.
struct EventId {
  std::string_view watch;
  std::uint64_t seq = 0;
};
std::optional<EventId> parse_event_id(std::string_view text);

// What every event of one exam says besides its attempts.
struct ProgressEventHeader {
  ExamId exam_id = 0;
  std::string_view watch;
  std::uint64_t seq = 0;
  UnixMicros at = 0;
  ProgressTotals totals;
};

// `event: snapshot` with every attempt (interval and quiet setting included, as the page needs
// them), and `event: changes` with the ones given. Each ends with the blank line of an event.
template <typename Attempts>
std::string snapshot_event(const ProgressEventHeader& header, const Attempts& attempts,
                           std::chrono::milliseconds interval, std::chrono::seconds quiet_after);
std::string changes_event(const ProgressEventHeader& header,
                          const std::vector<ProgressAttempt>& attempts);

// The comment that keeps an idle stream open through proxies.
inline constexpr std::string_view kHeartbeat = ": keep-alive\n\n";
// The field that tells EventSource-like clients how long to wait before reconnecting, written
// before the first event of a response.
std::string retry_field(std::chrono::milliseconds interval);

// Used by snapshot_event.
void append_event_start(std::string& out, const ProgressEventHeader& header, std::string_view kind);
void append_totals(std::string& out, const ProgressTotals& totals);
void append_attempt(std::string& out, const ProgressAttempt& attempt);

template <typename Attempts>
std::string snapshot_event(const ProgressEventHeader& header, const Attempts& attempts,
                           std::chrono::milliseconds interval, std::chrono::seconds quiet_after) {
  std::string out;
  out.reserve(256 + attempts.size() * 190);
  append_event_start(out, header, "snapshot");
  out.append(",\"interval_ms\":").append(std::to_string(interval.count()));
  out.append(",\"quiet_after_s\":").append(std::to_string(quiet_after.count()));
  append_totals(out, header.totals);
  out.append(",\"attempts\":[");
  bool first = true;
  for (const auto& entry : attempts) {
    if (!first) out.push_back(',');
    first = false;
    append_attempt(out, attempt_of(entry.second));
  }
  out.append("]}\n\n");
  return out;
}

}  // namespace attempts::progress
