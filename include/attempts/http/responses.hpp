#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "attempts/auth/remote_keys.hpp"
#include "attempts/domain/attempt_exports.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/export_format.hpp"
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

// An attempt as the API shows it: {"id", "exam_id", "student_id", "answers", "revision",
// "started_at", "deadline", "updated_at", "submitted_at"} (timestamps ISO 8601 UTC or null).
std::string attempt_json(const AttemptRecord& record);
// A completed load_history call as GET /attempts/{id}/history answers it: a page of entries,
// newest first, with the cursor of the next page, or with `at`, the entry in force then.
std::string history_json(const StoreCall& call);

// The response to a completed store call.
Response store_response(const StoreCall& call, std::chrono::seconds retry_after);

// The head of an export's 200, sent before its first chunk: the media type, no-store (the
// answers of a whole exam), and for CSV a file name a browser saves it under.
Response export_head_response(ExportFormat format, ExamId exam_id);
// An export refused at its first step: 404 (no such exam, or not one of its staff), 429 with
// Retry-After (as many exports run as allowed) or 503.
Response export_refusal_response(const ExportCall& call, std::chrono::seconds retry_after);

// 200 to /readyz when the database answered (`call` is a ping completed `done`) and the keys
// come from an identity provider: {"status": "ready", "keys": {"source", "count",
// "age_seconds", "last_fetch": "ok" or why it failed}} (plus "degraded" when the store says).
Response readiness_response(const StoreCall& call, const auth::KeySourceStatus& keys,
                            std::int64_t now_unix_seconds);

// The bytes of a response as sent, appended to `out`: status line, fields, then `extra_fields`
// (whole lines, each ending in CRLF: the CORS fields, written once at start-up), blank line,
// then the body unless `omit_body` (HEAD). Version, keep-alive and Content-Length must already
// be set. One contiguous buffer is far cheaper to write than Beast's general serializer.
void serialize_response(const Response& response, bool omit_body, std::string& out,
                        std::string_view extra_fields = {});

}  // namespace attempts::http
