#include "attempts/http/request_handler.hpp"

#include "attempts/http/responses.hpp"
#include "attempts/http/router.hpp"

namespace attempts::http {
namespace {

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

RequestHandler::RequestHandler(AttemptStore& store, HandlerOptions options)
    : store_(store), options_(options) {}

std::optional<Response> RequestHandler::reject_early(const RequestHeader& header) const {
  return reject(match_route(header.method(), header.target()), header);
}

std::optional<Response> RequestHandler::reject(const RouteMatch& match,
                                               const RequestHeader& header) const {
  switch (match.route) {
    case Route::not_found:
      return error_response(Status::not_found, "no such resource");
    case Route::method_not_allowed:
      return method_not_allowed_response(match.allow);
    case Route::bad_attempt_id:
      return error_response(Status::bad_request,
                            "attempt id must be a positive decimal integer of at most 64 bits, "
                            "without sign or leading zeros");
    case Route::save_answers:
      if (!is_json_content_type(header[beast_http::field::content_type])) {
        return error_response(Status::unsupported_media_type,
                              "Content-Type must be application/json (UTF-8)");
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

void RequestHandler::handle(Request&& request, Respond respond) const {
  const RouteMatch match = match_route(request.method(), request.target());
  if (auto rejection = reject(match, request)) {
    respond(std::move(*rejection));
    return;
  }
  const auto retry_after = options_.retry_after;
  switch (match.route) {
    case Route::save_answers:
      save_answers(match.attempt_id, request, std::move(respond));
      return;
    case Route::get_attempt:
      store_.load_attempt(match.attempt_id,
                          [id = match.attempt_id, retry_after, respond](LoadResult result) {
                            respond(load_result_response(result, id, retry_after));
                          });
      return;
    case Route::health:
      respond(json_response(Status::ok, R"({"status":"ok"})"));
      return;
    case Route::metrics:
      if (!options_.metrics_text) break;
      respond(text_response(Status::ok, options_.metrics_text(), kMetricsContentType));
      return;
    case Route::readiness:
      store_.check_ready([retry_after, respond](bool ready) {
        respond(ready ? json_response(Status::ok, R"({"status":"ready"})")
                      : unavailable_response("database unreachable", retry_after));
      });
      return;
    default:  // every other route was answered by reject()
      break;
  }
  respond(error_response(Status::not_found, "no such resource"));
}

void RequestHandler::save_answers(AttemptId id, const Request& request, Respond respond) const {
  auto parsed = parse_answers_document(request.body(), options_.answers_limits);
  if (auto* error = std::get_if<AnswersError>(&parsed)) {
    respond(error_response(Status::bad_request, error->message));
    return;
  }
  auto& document = std::get<AnswersDocument>(parsed);
  const auto retry_after = options_.retry_after;
  store_.save_answers(id, std::move(document.json),
                      [id, retry_after, respond = std::move(respond)](SaveOutcome outcome) {
                        respond(save_outcome_response(outcome, id, retry_after));
                      });
}

}  // namespace attempts::http
