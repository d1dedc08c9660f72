#pragma once

#include <array>
#include <string_view>

#include "attempts/domain/attempt_id.hpp"
#include "attempts/http/types.hpp"

namespace attempts::http {

enum class Route {
  not_found,           // no such path
  method_not_allowed,  // known path, other method: answer 405 with `allow`
  bad_attempt_id,      // /attempts/<segment>[/submit|/history] where the segment is not an id
  bad_exam_id,         // /exams/<segment>/attempts where the segment is not a valid id
  save_answers,        // PATCH /attempts/{id}
  get_attempt,         // GET or HEAD /attempts/{id}
  submit_attempt,      // POST /attempts/{id}/submit
  start_attempt,       // POST /exams/{exam_id}/attempts
  export_attempts,     // GET or HEAD /exams/{exam_id}/attempts: stream the exam's attempts (staff)
  progress_stream,     // GET /exams/{exam_id}/progress: Server-Sent Events of the exam's progress
  get_history,         // GET or HEAD /attempts/{id}/history
  health,              // GET or HEAD /healthz
  readiness,           // GET or HEAD /readyz
  metrics,             // GET or HEAD /metrics
  preflight,           // a CORS preflight of a known path (OPTIONS; cors.hpp), with CORS on
};

inline constexpr std::size_t kRouteCount = 15;

struct RouteMatch {
  Route route = Route::not_found;
  AttemptId attempt_id = 0;  // save_answers, get_attempt, submit_attempt, get_history
  std::int64_t exam_id = 0;  // start_attempt, export_attempts, progress_stream
  std::string_view allow;    // the methods the path accepts, for 405
};

// A path the service serves, as the OpenAPI document writes it, with the methods it accepts.
struct PathTemplate {
  std::string_view path;
  std::string_view methods;  // as in an Allow header
};

// Every path the router knows; docs/openapi.yaml must describe exactly these.
extern const std::array<PathTemplate, 8> kPaths;

// Maps a method and request target to an endpoint. The query string is ignored; paths match
// exactly (no trailing slash, no percent-decoding).
RouteMatch match_route(Verb method, std::string_view target) noexcept;

// Whether a Content-Type names JSON: `application/json`, case-insensitive, with optional
// parameters; a charset, if given, must be UTF-8 (RFC 8259 requires it).
bool is_json_content_type(std::string_view content_type) noexcept;

}  // namespace attempts::http
