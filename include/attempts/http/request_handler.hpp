#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "attempts/auth/remote_keys.hpp"
#include "attempts/auth/token_cache.hpp"
#include "attempts/domain/answers.hpp"
#include "attempts/domain/attempt_exports.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/domain/exam_progress.hpp"
#include "attempts/http/cors.hpp"
#include "attempts/http/request.hpp"
#include "attempts/http/router.hpp"
#include "attempts/http/types.hpp"

namespace attempts::auth {
class Authenticator;
}  // namespace attempts::auth

namespace attempts::http {

// Seconds since the Unix epoch: the clock tokens are checked with.
std::int64_t unix_now();

struct HandlerOptions {
  AnswersLimits answers_limits{};
  // What 503 and 504 responses tell clients to wait before retrying.
  std::chrono::seconds retry_after{1};
  // /readyz answers within this, whatever the database does.
  std::chrono::milliseconds readiness_timeout{2000};
  // The /metrics page (Prometheus text format); empty means /metrics answers 404.
  std::function<std::string()> metrics_text{};
  // Verifies bearer tokens; null when authentication is off (--auth none), and then requests
  // act for no one in particular (an attempt's owner is not checked).
  const auth::Authenticator* authenticator = nullptr;
  // With keys fetched from an identity provider: where they stand, for /readyz. Empty with a
  // key file (or no authentication).
  std::function<auth::KeySourceStatus()> key_status{};
  std::int64_t (*clock)() = &unix_now;
  // Which browser origins may call the API (off by default).
  CorsPolicy cors{};
  // Whether the store keeps the answer history (--history): without it, the history route
  // answers 404 saying so.
  bool history = true;
};

// What a request's header alone decides, judged once, before its body is read.
struct HeaderVerdict {
  RouteMatch match;
  // The answer when the header alone decides the request, a refusal or a CORS preflight (then
  // its body is never used).
  std::optional<Response> rejection;
  // The authenticated caller: a student or a staff member; neither with auth off.
  std::optional<StudentId> student;
  std::optional<std::string> staff_id;
};

// Turns requests into responses: routing, validation, and what to ask of the store. Knows HTTP
// and the domain, nothing of SQL or sockets. Stateless apart from its options, so one instance
// serves every connection on every loop.
class RequestHandler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RequestHandler(HandlerOptions options);

  // Judges a request's header (its body is not read yet): route, method, id, Content-Type.
  // Used before `100 Continue`, so a client is never asked to send a body that would be
  // refused.
  // `tokens` is the calling event loop's reader of the token cache (with authentication on).
  HeaderVerdict judge_header(const Request& header, auth::TokenCache::Reader* tokens) const;

  // A complete request whose header was judged acceptable. Returns its response when it needs
  // nothing from the store; otherwise fills `call` (answer by `deadline`) and returns nullopt:
  // the caller runs the call and then asks respond().
  std::optional<Response> begin(const Request& request, const HeaderVerdict& verdict,
                                Clock::time_point deadline, StoreCall& call) const;

  // The response to a call the store has completed.
  Response respond(const StoreCall& call) const;

  // GET or HEAD /exams/{id}/attempts, judged acceptable by judge_header: returns a refusal
  // (400, 406), or nullopt with `call` filled (answer its first step by `deadline`) and `head`
  // the response to send, chunked, before the first chunk.
  std::optional<Response> begin_export(const Request& request, const HeaderVerdict& verdict,
                                       Clock::time_point deadline, ExportCall& call,
                                       Response& head) const;
  // The response to an export whose first step did not give rows: 404, 429 or 503.
  Response refuse_export(const ExportCall& call) const;

  // GET /exams/{id}/progress, judged acceptable by judge_header: a refusal (406, 400 for a
  // repeated Last-Event-ID), or nullopt when the stream may be opened.
  std::optional<Response> begin_progress(const Request& request,
                                         const HeaderVerdict& verdict) const;
  // The head of a progress stream (sent chunked before its first event).
  Response progress_head(bool gzip) const;
  // A stream that could not start: 404 (no such exam, or not its staff) or 503.
  Response refuse_progress(ExamId exam, ProgressReadOutcome why) const;
  // 503: --max-progress-streams are open.
  Response progress_streams_full() const;

  // Whoever writes a response adds the fields this policy gives for the request's Origin.
  const CorsPolicy& cors() const { return options_.cors; }

 private:
  std::optional<Response> begin_save(const Request& request, StoreCall& call) const;
  std::optional<Response> begin_start(const Request& request, const HeaderVerdict& verdict,
                                      StoreCall& call) const;
  // 403 for a caller whose role may not use the route; nullopt when it may.
  std::optional<Response> check_role(Route route, const HeaderVerdict& verdict) const;

  HandlerOptions options_;
};

}  // namespace attempts::http
