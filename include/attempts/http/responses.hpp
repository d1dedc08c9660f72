#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/types.hpp"

namespace attempts::http {

// The one place where domain and store outcomes become HTTP statuses and bodies.
// Version and keep-alive are left to the session.

// `{"error": "<message>"}` with the given status.
Response error_response(Status status, std::string_view message);
// A JSON document the caller has already serialised.
Response json_response(Status status, std::string body);
// A body of another media type (the /metrics page).
Response text_response(Status status, std::string body, std::string_view content_type);
Response no_content_response();
// 503 with Retry-After: the failure is temporary and nothing was changed.
Response unavailable_response(std::string_view message, std::chrono::seconds retry_after);
Response method_not_allowed_response(std::string_view allow);

// The bytes of a response as sent: status line, fields, blank line, then the body unless
// `omit_body` (HEAD). Version, keep-alive and Content-Length must already be set. One
// contiguous buffer is far cheaper to write than Beast's general serializer.
std::string serialize_response(const Response& response, bool omit_body);

Response save_outcome_response(SaveOutcome outcome, AttemptId id, std::chrono::seconds retry_after);
Response load_result_response(const LoadResult& result, AttemptId id,
                              std::chrono::seconds retry_after);

}  // namespace attempts::http
