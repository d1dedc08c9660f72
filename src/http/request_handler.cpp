#include "attempts/http/request_handler.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "attempts/auth/authenticator.hpp"
#include "attempts/http/export_format.hpp"
#include "attempts/http/history_query.hpp"
#include "attempts/http/responses.hpp"

namespace attempts::http {
namespace {

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::size_t kMaxIdempotencyKey = 255;

// An Idempotency-Key: 1 to 255 visible ASCII characters.
bool is_valid_idempotency_key(std::string_view key) {
  return !key.empty() && key.size() <= kMaxIdempotencyKey &&
         std::all_of(key.begin(), key.end(), [](char c) { return c > ' ' && c < 127; });
}

// 401: who is calling is unknown; RFC 6750 says what to put in WWW-Authenticate. While new
// keys that may verify the token are being fetched, Retry-After says when one more try is
// worthwhile (docs/auth.md, "Rotation at the provider").
Response unauthorized_response(const auth::AuthFailure& failure) {
  Response response = error_response(
      Status::unauthorized, failure.reason == auth::TokenError::missing
                                ? "a bearer token is required (Authorization: Bearer <JWT>)"
                                : "invalid token: " + std::string(auth::describe(failure.reason)));
  response.set(beast_http::field::www_authenticate, auth::www_authenticate(failure.reason));
  if (failure.retry_after.count() > 0) {
    response.set(beast_http::field::retry_after, std::to_string(failure.retry_after.count()));
  }
  return response;
}

// 400 for a path id that is not one (both ids follow the rules of attempt_id.hpp).
Response bad_id_response(std::string_view which) {
  return error_response(Status::bad_request,
                        std::string(which) +
                            " must be a positive decimal integer of at most 64 bits, without "
                            "sign or leading zeros");
}

}  // namespace

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

RequestHandler::RequestHandler(HandlerOptions options) : options_(std::move(options)) {}

HeaderVerdict RequestHandler::judge_header(const Request& header,
                                           auth::TokenCache::Reader* tokens) const {
  HeaderVerdict verdict;
  verdict.match = match_route(header.method, header.target);
  auto& match = verdict.match;
  // No route takes OPTIONS: a known path answers it 405, unless it is a CORS preflight, which
  // is answered here, before the token is looked at and without the store.
  if (match.route == Route::method_not_allowed && options_.cors.enabled() &&
      CorsPolicy::is_preflight(header)) {
    match.route = Route::preflight;
    verdict.rejection = options_.cors.preflight_response(header, match.allow);
    return verdict;
  }
  switch (match.route) {
    case Route::not_found:
      verdict.rejection = error_response(Status::not_found, "no such resource");
      return verdict;
    case Route::method_not_allowed:
      verdict.rejection = method_not_allowed_response(match.allow);
      return verdict;
    case Route::bad_attempt_id:
      verdict.rejection = bad_id_response("attempt id");
      return verdict;
    case Route::bad_exam_id:
      verdict.rejection = bad_id_response("exam id");
      return verdict;
    case Route::metrics:
      if (!options_.metrics_text)
        verdict.rejection = error_response(Status::not_found, "no such resource");
      return verdict;
    case Route::health:
    case Route::readiness:
    case Route::preflight:
      return verdict;
    case Route::save_answers:
    case Route::get_attempt:
    case Route::submit_attempt:
    case Route::start_attempt:
    case Route::export_attempts:
    case Route::progress_stream:
      break;
    case Route::get_history:
      if (!options_.history) {
        verdict.rejection = error_response(
            Status::not_found, "this server keeps no answer history (it runs with --history off)");
        return verdict;
      }
      break;
  }
  // Students own their attempts: every /attempts and /exams request says who is calling.
  // Without a cache to verify through, authentication fails closed.
  if (options_.authenticator != nullptr) {
    const auth::Authenticator& authenticator = *options_.authenticator;
    auth::AuthResult result = auth::AuthFailure{auth::TokenError::malformed};
    if (header.authorization_count <= 1 && tokens != nullptr) {
      if (authenticator.ready()) {
        result = authenticator.authenticate(header.authorization, *tokens, options_.clock());
      } else if (const auto bearer = auth::bearer_token(header.authorization);
                 std::holds_alternative<auth::TokenError>(bearer)) {
        result = auth::AuthFailure{std::get<auth::TokenError>(bearer)};
      } else {
        // The keys are still on their way from the identity provider: the token cannot be
        // judged yet, and a 401 would tell the client it is bad.
        verdict.rejection = unavailable_response(
            "the token signing keys are not known yet (waiting for the identity provider)",
            options_.retry_after);
        return verdict;
      }
    }
    if (const auto* failure = std::get_if<auth::AuthFailure>(&result)) {
      verdict.rejection = unauthorized_response(*failure);
      return verdict;
    }
    if (auto* staff = std::get_if<auth::StaffMember>(&result)) {
      verdict.staff_id = std::move(staff->id);
    } else {
      verdict.student = std::get<std::int64_t>(result);
    }
    if (auto refusal = check_role(match.route, verdict)) {
      verdict.rejection = std::move(refusal);
      return verdict;
    }
  }
  if (match.route == Route::save_answers &&
      (header.content_type_count != 1 || !is_json_content_type(header.content_type))) {
    verdict.rejection = error_response(Status::unsupported_media_type,
                                       "Content-Type must be application/json (UTF-8)");
    return verdict;
  }
  if (match.route == Route::start_attempt && header.idempotency_key_count > 0 &&
      (header.idempotency_key_count > 1 || !is_valid_idempotency_key(header.idempotency_key))) {
    verdict.rejection =
        error_response(Status::bad_request,
                       "Idempotency-Key must be one header of 1 to 255 visible ASCII characters");
    return verdict;
  }
  return verdict;
}

std::optional<Response> RequestHandler::begin(const Request& request, const HeaderVerdict& verdict,
                                              Clock::time_point deadline, StoreCall& call) const {
  if (verdict.rejection) return verdict.rejection;
  const auto& match = verdict.match;
  call.student = verdict.student;
  call.deadline = deadline;
  switch (match.route) {
    case Route::health:
      return json_response(Status::ok, R"({"status":"ok"})");
    case Route::metrics:
      return text_response(Status::ok, options_.metrics_text(), kMetricsContentType);
    case Route::readiness:
      if (options_.key_status) {
        if (const auto keys = options_.key_status(); !keys.keys_known) {
          return unavailable_response(
              "no token signing keys yet: " +
                  (keys.last_error.empty() ? "the first fetch from " + keys.source + " is under way"
                                           : keys.last_error),
              options_.retry_after);
        }
      }
      call.kind = StoreCall::Kind::ping;
      call.deadline = std::min(deadline, Clock::now() + options_.readiness_timeout);
      return std::nullopt;
    case Route::save_answers:
      call.kind = StoreCall::Kind::save_answers;
      call.attempt_id = match.attempt_id;
      return begin_save(request, call);
    case Route::get_attempt:
      call.kind = StoreCall::Kind::load_attempt;
      call.attempt_id = match.attempt_id;
      call.staff_id = verdict.staff_id;
      return std::nullopt;
    case Route::submit_attempt:
      call.kind = StoreCall::Kind::submit_attempt;
      call.attempt_id = match.attempt_id;
      return std::nullopt;
    case Route::get_history: {
      auto query = parse_history_query(request.target);
      if (auto* error = std::get_if<std::string>(&query)) {
        return error_response(Status::bad_request, *error);
      }
      call.kind = StoreCall::Kind::load_history;
      call.attempt_id = match.attempt_id;
      call.staff_id = verdict.staff_id;
      call.history_query = std::move(std::get<HistoryQuery>(query));
      return std::nullopt;
    }
    case Route::start_attempt:
      call.kind = StoreCall::Kind::start_attempt;
      call.exam_id = match.exam_id;
      return begin_start(request, verdict, call);
    default:
      break;
  }
  return error_response(Status::not_found, "no such resource");
}

std::optional<Response> RequestHandler::check_role(Route route,
                                                   const HeaderVerdict& verdict) const {
  switch (route) {
    case Route::save_answers:
    case Route::submit_attempt:
    case Route::start_attempt:
      // Answers are the students' own: a staff member reads them, never writes them.
      if (verdict.staff_id) {
        return error_response(Status::forbidden,
                              "staff members read attempts; only a student writes answers");
      }
      return std::nullopt;
    case Route::export_attempts:
      if (!verdict.staff_id) {
        return error_response(Status::forbidden,
                              "exporting an exam's attempts is for its staff (a staff token)");
      }
      return std::nullopt;
    case Route::progress_stream:
      if (!verdict.staff_id) {
        return error_response(Status::forbidden,
                              "an exam's progress is for its staff (a staff token)");
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::optional<Response> RequestHandler::begin_export(const Request& request,
                                                     const HeaderVerdict& verdict,
                                                     Clock::time_point deadline, ExportCall& call,
                                                     Response& head) const {
  if (verdict.rejection) return verdict.rejection;
  auto filter = parse_export_query(request.target);
  if (auto* error = std::get_if<std::string>(&filter)) {
    return error_response(Status::bad_request, *error);
  }
  const auto format = negotiate_export_format(request.accept);
  if (!format) {
    return error_response(Status::not_acceptable,
                          "the attempts are exported as application/x-ndjson or text/csv");
  }
  call.exam_id = verdict.match.exam_id;
  call.staff_id = verdict.staff_id;
  call.filter = std::move(std::get<ExportFilter>(filter));
  call.encoder = &export_encoder(*format);
  call.deadline = deadline;
  head = export_head_response(*format, call.exam_id);
  return std::nullopt;
}

Response RequestHandler::refuse_export(const ExportCall& call) const {
  return export_refusal_response(call, options_.retry_after);
}

std::optional<Response> RequestHandler::begin_progress(const Request& request,
                                                       const HeaderVerdict& verdict) const {
  if (verdict.rejection) return verdict.rejection;
  if (!accepts_event_stream(request.accept)) {
    return error_response(Status::not_acceptable,
                          "an exam's progress is sent as text/event-stream only");
  }
  if (request.last_event_id_count > 1) {
    return error_response(Status::bad_request, "Last-Event-ID must be one header");
  }
  return std::nullopt;
}

Response RequestHandler::progress_head(bool gzip) const {
  Response response{Status::ok, 11};
  response.set(beast_http::field::content_type, "text/event-stream; charset=utf-8");
  if (gzip) response.set(beast_http::field::content_encoding, "gzip");
  response.set(beast_http::field::vary, "Accept-Encoding");
  response.set(beast_http::field::cache_control, "no-store");
  response.set("X-Accel-Buffering", "no");
  response.set("X-Content-Type-Options", "nosniff");
  return response;
}

Response RequestHandler::refuse_progress(ExamId exam, ProgressReadOutcome why) const {
  if (why == ProgressReadOutcome::not_found) {
    // A missing exam and another's exam look alike: exam ids cannot be probed.
    return error_response(Status::not_found, "exam " + std::to_string(exam) + " not found");
  }
  return unavailable_response(
      "the exam's progress could not be read from the database; retry later", options_.retry_after);
}

Response RequestHandler::progress_streams_full() const {
  return unavailable_response(
      "as many progress streams are open as this server allows (--max-progress-streams); retry "
      "later or on another instance",
      options_.retry_after);
}

std::optional<Response> RequestHandler::begin_save(const Request& request, StoreCall& call) const {
  AnswersDocument document;
  document.json = std::move(call.answers_json);  // its buffer is reused
  auto error = parse_answers_document(request.body, options_.answers_limits, document);
  call.answers_json = std::move(document.json);
  if (error) return error_response(Status::bad_request, error->message);
  call.revision = document.revision;
  call.answered = static_cast<std::int32_t>(document.question_count);
  return std::nullopt;
}

std::optional<Response> RequestHandler::begin_start(const Request& request,
                                                    const HeaderVerdict& verdict,
                                                    StoreCall& call) const {
  call.idempotency_key = request.idempotency_key;
  if (verdict.student) return std::nullopt;
  // Authentication is off (trusted networks): the body names the student.
  const auto body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  const auto student = body.is_object() ? body.find("student_id") : body.end();
  if (!body.is_object() || student == body.end() || !student->is_number_integer() ||
      student->get<std::int64_t>() <= 0) {
    return error_response(Status::bad_request,
                          "with authentication off, the body must be {\"student_id\": <positive "
                          "integer>}");
  }
  call.student = student->get<std::int64_t>();
  return std::nullopt;
}

Response RequestHandler::respond(const StoreCall& call) const {
  if (call.kind == StoreCall::Kind::ping && options_.key_status &&
      call.outcome == StoreOutcome::done) {
    return readiness_response(call, options_.key_status(), options_.clock());
  }
  return store_response(call, options_.retry_after);
}

}  // namespace attempts::http
