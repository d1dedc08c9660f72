#include "attempts/http/router.hpp"

#include <algorithm>

namespace attempts::http {
namespace {

constexpr std::string_view kAttemptsPrefix = "/attempts/";
constexpr std::string_view kExamsPrefix = "/exams/";
constexpr std::string_view kSubmitSuffix = "/submit";
constexpr std::string_view kHistorySuffix = "/history";
constexpr std::string_view kAttemptsSuffix = "/attempts";
constexpr std::string_view kProgressSuffix = "/progress";
constexpr std::string_view kGetOnly = "GET";
constexpr std::string_view kReadOnlyMethods = "GET, HEAD";
constexpr std::string_view kAttemptMethods = "GET, HEAD, PATCH";
constexpr std::string_view kPostOnly = "POST";
constexpr std::string_view kExamAttemptsMethods = "GET, HEAD, POST";

bool is_read(Verb method) {
  return method == Verb::get || method == Verb::head;
}

RouteMatch probe(Verb method, Route route) {
  if (is_read(method)) return {route, 0, 0, {}};
  return {Route::method_not_allowed, 0, 0, kReadOnlyMethods};
}

// ASCII only, as HTTP tokens are; inline, since it runs for every request's Content-Type.
bool iequals(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [&](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

// /attempts/{id}, /attempts/{id}/submit and /attempts/{id}/history
RouteMatch match_attempt(Verb method, std::string_view rest) {
  const auto slash = rest.find('/');
  const std::string_view segment = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view suffix = rest.substr(slash);
    if (suffix == kHistorySuffix) {
      if (!is_read(method)) return {Route::method_not_allowed, 0, 0, kReadOnlyMethods};
      const auto id = parse_attempt_id(segment);
      if (!id) return {Route::bad_attempt_id, 0, 0, {}};
      return {Route::get_history, *id, 0, {}};
    }
    if (suffix != kSubmitSuffix) return {};
    if (method != Verb::post) return {Route::method_not_allowed, 0, 0, kPostOnly};
    const auto id = parse_attempt_id(segment);
    if (!id) return {Route::bad_attempt_id, 0, 0, {}};
    return {Route::submit_attempt, *id, 0, {}};
  }
  if (method != Verb::patch && !is_read(method)) {
    return {Route::method_not_allowed, 0, 0, kAttemptMethods};
  }
  const auto id = parse_attempt_id(segment);
  if (!id) return {Route::bad_attempt_id, 0, 0, {}};
  return {method == Verb::patch ? Route::save_answers : Route::get_attempt, *id, 0, {}};
}

// /exams/{exam_id}/attempts: POST starts one, GET streams them all (staff);
// /exams/{exam_id}/progress: GET streams the exam's progress (staff; no HEAD: a stream has no
// length to announce)
RouteMatch match_exam(Verb method, std::string_view rest) {
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return {};
  if (rest.substr(slash) == kProgressSuffix) {
    if (method != Verb::get) return {Route::method_not_allowed, 0, 0, kGetOnly};
    const auto id = parse_positive_decimal(rest.substr(0, slash));
    if (!id) return {Route::bad_exam_id, 0, 0, {}};
    return {Route::progress_stream, 0, *id, {}};
  }
  if (rest.substr(slash) != kAttemptsSuffix) return {};
  if (method != Verb::post && !is_read(method)) {
    return {Route::method_not_allowed, 0, 0, kExamAttemptsMethods};
  }
  const auto id = parse_positive_decimal(rest.substr(0, slash));
  if (!id) return {Route::bad_exam_id, 0, 0, {}};
  return {method == Verb::post ? Route::start_attempt : Route::export_attempts, 0, *id, {}};
}

}  // namespace

const std::array<PathTemplate, 8> kPaths = {{
    {"/attempts/{id}", kAttemptMethods},
    {"/attempts/{id}/submit", kPostOnly},
    {"/attempts/{id}/history", kReadOnlyMethods},
    {"/exams/{exam_id}/attempts", kExamAttemptsMethods},
    {"/exams/{exam_id}/progress", kGetOnly},
    {"/healthz", kReadOnlyMethods},
    {"/readyz", kReadOnlyMethods},
    {"/metrics", kReadOnlyMethods},
}};

RouteMatch match_route(Verb method, std::string_view target) noexcept {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/healthz") return probe(method, Route::health);
  if (path == "/readyz") return probe(method, Route::readiness);
  if (path == "/metrics") return probe(method, Route::metrics);
  if (path.starts_with(kAttemptsPrefix)) {
    return match_attempt(method, path.substr(kAttemptsPrefix.size()));
  }
  if (path.starts_with(kExamsPrefix)) return match_exam(method, path.substr(kExamsPrefix.size()));
  return {};
}

bool is_json_content_type(std::string_view content_type) noexcept {
  const auto semicolon = content_type.find(';');
  if (!iequals(trim(content_type.substr(0, semicolon)), "application/json")) return false;
  std::string_view parameters =
      semicolon == std::string_view::npos ? std::string_view{} : content_type.substr(semicolon + 1);
  while (!parameters.empty()) {
    const auto next = parameters.find(';');
    const std::string_view parameter = trim(parameters.substr(0, next));
    parameters = next == std::string_view::npos ? std::string_view{} : parameters.substr(next + 1);
    const auto equals = parameter.find('=');
    if (equals == std::string_view::npos) continue;
    if (!iequals(trim(parameter.substr(0, equals)), "charset")) continue;
    std::string_view charset = trim(parameter.substr(equals + 1));
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') {
      charset = charset.substr(1, charset.size() - 2);
    }
    if (!iequals(charset, "utf-8") && !iequals(charset, "utf8")) return false;
  }
  return true;
}

}  // namespace attempts::http
