#include "attempts/http/responses.hpp"

#include <nlohmann/json.hpp>

namespace attempts::http {
namespace {

constexpr std::string_view kJson = "application/json";

std::string attempt_label(AttemptId id) {
  return "attempt " + std::to_string(id);
}

}  // namespace

Response json_response(Status status, std::string body) {
  Response response{status, 11};
  response.set(beast_http::field::content_type, kJson);
  response.body() = std::move(body);
  return response;
}

Response error_response(Status status, std::string_view message) {
  // dump() with `replace` keeps the body valid JSON whatever bytes the message quotes.
  nlohmann::json body = {{"error", message}};
  return json_response(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Response text_response(Status status, std::string body, std::string_view content_type) {
  Response response{status, 11};
  response.set(beast_http::field::content_type, content_type);
  response.body() = std::move(body);
  return response;
}

Response no_content_response() {
  return Response{Status::no_content, 11};
}

Response unavailable_response(std::string_view message, std::chrono::seconds retry_after) {
  Response response = error_response(Status::service_unavailable, message);
  response.set(beast_http::field::retry_after, std::to_string(retry_after.count()));
  return response;
}

Response method_not_allowed_response(std::string_view allow) {
  Response response = error_response(Status::method_not_allowed, "method not allowed");
  response.set(beast_http::field::allow, allow);
  return response;
}

std::string serialize_response(const Response& response, bool omit_body) {
  const auto reason = response.reason();
  std::string wire;
  wire.reserve(64 + reason.size() + (omit_body ? 0 : response.body().size()));
  wire.append(response.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  wire.append(std::to_string(response.result_int()));
  wire.push_back(' ');
  wire.append(reason.data(), reason.size());
  wire.append("\r\n");
  for (const auto& field : response) {
    const auto name = field.name_string();
    const auto value = field.value();
    wire.append(name.data(), name.size());
    wire.append(": ");
    wire.append(value.data(), value.size());
    wire.append("\r\n");
  }
  wire.append("\r\n");
  if (!omit_body) wire.append(response.body());
  return wire;
}

Response save_outcome_response(SaveOutcome outcome, AttemptId id,
                               std::chrono::seconds retry_after) {
  switch (outcome) {
    case SaveOutcome::saved:
      return no_content_response();
    case SaveOutcome::not_found:
      return error_response(Status::not_found, attempt_label(id) + " not found");
    case SaveOutcome::already_submitted:
      return error_response(Status::conflict,
                            attempt_label(id) + " is already submitted; its answers are final");
    case SaveOutcome::overloaded:
      return unavailable_response("too many requests queued; retry later", retry_after);
    case SaveOutcome::unavailable:
      break;
  }
  return unavailable_response("database unavailable; nothing was saved, retry later", retry_after);
}

Response load_result_response(const LoadResult& result, AttemptId id,
                              std::chrono::seconds retry_after) {
  switch (result.outcome) {
    case LoadOutcome::found: {
      const auto& record = result.record;
      const auto timestamp = [](const std::optional<std::string>& value) {
        return value ? nlohmann::json(*value).dump() : std::string("null");
      };
      // The stored answers are already JSON (PostgreSQL's jsonb output): spliced, not re-parsed.
      std::string body = "{\"id\":" + std::to_string(record.id) +
                         ",\"exam_id\":" + std::to_string(record.exam_id) +
                         ",\"answers\":" + record.answers_json +
                         ",\"updated_at\":" + timestamp(record.updated_at) +
                         ",\"submitted_at\":" + timestamp(record.submitted_at) + "}";
      return json_response(Status::ok, std::move(body));
    }
    case LoadOutcome::not_found:
      return error_response(Status::not_found, attempt_label(id) + " not found");
    case LoadOutcome::overloaded:
      return unavailable_response("too many requests queued; retry later", retry_after);
    case LoadOutcome::unavailable:
      break;
  }
  return unavailable_response("database unavailable; retry later", retry_after);
}

}  // namespace attempts::http
