#include "attempts/http/responses.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace attempts::http {
namespace {

constexpr std::string_view kJson = "application/json";

std::string attempt_label(AttemptId id) {
  return "attempt " + std::to_string(id);
}

// dump() with `replace` keeps the body valid JSON whatever bytes a message quotes.
std::string dump(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response error_with(Status status, nlohmann::json body) {
  return json_response(status, dump(body));
}

nlohmann::json nullable(const std::optional<std::string>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

// A student's attempt (answers, deadline, submission) for that student alone: no shared cache
// may keep it, and no browser cache may answer a later read with it (RFC 9111 5.2.2.5).
Response attempt_response(Status status, const AttemptRecord& record) {
  Response response = json_response(status, attempt_json(record));
  response.set(beast_http::field::cache_control, "no-store");
  return response;
}

Response with_retry_after(Response response, std::chrono::seconds retry_after) {
  response.set(beast_http::field::retry_after, std::to_string(retry_after.count()));
  return response;
}

// 504: the write was sent but its reply was lost or late; it may have been applied.
Response unknown_outcome_response(std::string_view what, std::chrono::seconds retry_after) {
  return with_retry_after(
      error_with(Status::gateway_timeout,
                 {{"error", std::string("the database did not confirm ") + std::string(what) +
                                " in time: it may or may not have been applied; read the attempt "
                                "or retry (retries are safe, see the API documentation)"},
                  {"outcome", "unknown"}}),
      retry_after);
}

// Why the store could not do it, with what that means for the client.
std::string unavailable_message(const StoreCall& call, std::string_view consequence) {
  if (!call.problem.empty())
    return "database misconfigured: " + call.problem + "; " + std::string(consequence);
  return "database unavailable; " + std::string(consequence);
}

Response save_response(const StoreCall& call, std::chrono::seconds retry_after) {
  const auto& record = call.record;
  switch (call.outcome) {
    case StoreOutcome::done:
    case StoreOutcome::replayed:
      return no_content_response();
    case StoreOutcome::not_found:
      return error_response(Status::not_found, attempt_label(call.attempt_id) + " not found");
    case StoreOutcome::submitted:
      return error_with(Status::conflict, {{"error", attempt_label(call.attempt_id) +
                                                         " is submitted; its answers are final"},
                                           {"submitted_at", nullable(record.submitted_at)}});
    case StoreOutcome::deadline_passed:
      return error_with(
          Status::conflict,
          {{"error", "the deadline of " + attempt_label(call.attempt_id) + " passed at " +
                         record.deadline.value_or("?") + "; its answers can no longer change"},
           {"deadline", nullable(record.deadline)}});
    case StoreOutcome::stale_revision:
      return error_with(Status::conflict,
                        {{"error", "revision " + std::to_string(call.revision.value_or(0)) +
                                       " is not newer than the stored revision " +
                                       std::to_string(record.revision) + "; nothing changed"},
                         {"revision", record.revision}});
    case StoreOutcome::unknown:
      return unknown_outcome_response("this write", retry_after);
    case StoreOutcome::overloaded:
      return unavailable_response("too many requests queued; nothing was saved, retry later",
                                  retry_after);
    case StoreOutcome::key_reused:
    case StoreOutcome::unavailable:
      break;
  }
  return unavailable_response(unavailable_message(call, "nothing was saved, retry later"),
                              retry_after);
}

Response read_response(const StoreCall& call, std::chrono::seconds retry_after) {
  switch (call.outcome) {
    case StoreOutcome::done:
      return attempt_response(Status::ok, call.record);
    case StoreOutcome::not_found:
      return error_response(Status::not_found, attempt_label(call.attempt_id) + " not found");
    case StoreOutcome::overloaded:
      return unavailable_response("too many requests queued; retry later", retry_after);
    default:
      return unavailable_response(unavailable_message(call, "retry later"), retry_after);
  }
}

Response submit_response(const StoreCall& call, std::chrono::seconds retry_after) {
  switch (call.outcome) {
    case StoreOutcome::done:
      return attempt_response(Status::ok, call.record);
    case StoreOutcome::not_found:
      return error_response(Status::not_found, attempt_label(call.attempt_id) + " not found");
    case StoreOutcome::unknown:
      return unknown_outcome_response("this submit", retry_after);
    case StoreOutcome::overloaded:
      return unavailable_response("too many requests queued; nothing was submitted, retry later",
                                  retry_after);
    default:
      return unavailable_response(unavailable_message(call, "nothing was submitted, retry later"),
                                  retry_after);
  }
}

Response start_response(const StoreCall& call, std::chrono::seconds retry_after) {
  switch (call.outcome) {
    case StoreOutcome::done:
    case StoreOutcome::replayed: {
      Response response = attempt_response(Status::created, call.record);
      response.set(beast_http::field::location, "/attempts/" + std::to_string(call.record.id));
      // The same answer as the first time, marked as a replay (Stripe's and the IETF
      // Idempotency-Key draft's practice).
      if (call.outcome == StoreOutcome::replayed) response.set("Idempotent-Replayed", "true");
      return response;
    }
    case StoreOutcome::not_found:
      return error_response(Status::not_found,
                            "exam " + std::to_string(call.exam_id) + " not found");
    case StoreOutcome::key_reused:
      return error_response(Status::unprocessable_entity,
                            "this Idempotency-Key was used to start an attempt of another exam");
    case StoreOutcome::unknown:
      return unknown_outcome_response("this start", retry_after);
    case StoreOutcome::overloaded:
      return unavailable_response("too many requests queued; nothing was started, retry later",
                                  retry_after);
    default:
      return unavailable_response(unavailable_message(call, "nothing was started, retry later"),
                                  retry_after);
  }
}

}  // namespace

Response json_response(Status status, std::string body) {
  Response response{status, 11};
  response.set(beast_http::field::content_type, kJson);
  response.body() = std::move(body);
  return response;
}

Response error_response(Status status, std::string_view message) {
  return error_with(status, {{"error", message}});
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
  return with_retry_after(error_response(Status::service_unavailable, message), retry_after);
}

Response method_not_allowed_response(std::string_view allow) {
  Response response = error_response(Status::method_not_allowed, "method not allowed");
  response.set(beast_http::field::allow, allow);
  return response;
}

std::string attempt_json(const AttemptRecord& record) {
  const auto timestamp = [](const std::optional<std::string>& value) {
    return value ? nlohmann::json(*value).dump() : std::string("null");
  };
  // The stored answers are already JSON (PostgreSQL's jsonb output): spliced, not re-parsed.
  std::string body;
  body.reserve(192 + record.answers_json.size());
  body.append("{\"id\":").append(std::to_string(record.id));
  body.append(",\"exam_id\":").append(std::to_string(record.exam_id));
  body.append(",\"student_id\":").append(std::to_string(record.student_id));
  body.append(",\"answers\":").append(record.answers_json);
  body.append(",\"revision\":").append(std::to_string(record.revision));
  body.append(",\"started_at\":").append(nlohmann::json(record.started_at).dump());
  body.append(",\"deadline\":").append(timestamp(record.deadline));
  body.append(",\"updated_at\":").append(timestamp(record.updated_at));
  body.append(",\"submitted_at\":").append(timestamp(record.submitted_at));
  body.push_back('}');
  return body;
}

std::string history_json(const StoreCall& call) {
  const auto entry_json = [](std::string& body, const HistoryEntry& entry) {
    body.append("{\"seq\":").append(std::to_string(entry.seq));
    body.append(",\"kind\":\"")
        .append(entry.kind == HistoryEntry::Kind::start    ? "start"
                : entry.kind == HistoryEntry::Kind::submit ? "submit"
                                                           : "save")
        .append("\"");
    body.append(",\"written_at\":").append(nlohmann::json(entry.written_at).dump());
    body.append(",\"revision\":")
        .append(entry.revision ? std::to_string(*entry.revision) : std::string("null"));
    body.append(",\"writes\":").append(std::to_string(entry.writes));
    body.append(",\"answers\":").append(entry.answers_json);
    body.push_back('}');
  };
  std::string body;
  std::size_t size = 96;
  for (const auto& entry : call.history) size += 112 + entry.answers_json.size();
  body.reserve(size);
  body.append("{\"id\":").append(std::to_string(call.attempt_id));
  body.append(",\"saves\":").append(std::to_string(call.saves));
  const HistoryQuery& query = call.history_query;
  if (query.at) {
    // The entry in force at that instant, and its answers ({} before the first).
    body.append(",\"at\":").append(nlohmann::json(*query.at).dump());
    body.append(",\"entry\":");
    if (call.history.empty()) {
      body.append("null,\"answers\":{}}");
    } else {
      entry_json(body, call.history.front());
      body.append(",\"answers\":").append(call.history.front().answers_json).push_back('}');
    }
    return body;
  }
  body.append(",\"entries\":[");
  for (std::size_t i = 0; i < call.history.size(); ++i) {
    if (i > 0) body.push_back(',');
    entry_json(body, call.history[i]);
  }
  body.append("],\"next\":");
  // A full page may have older entries: the cursor is the oldest one's sequence number.
  const bool more = !call.history.empty() &&
                    static_cast<std::int32_t>(call.history.size()) == query.limit &&
                    call.history.back().seq > 0;
  if (more) {
    body.append("\"/attempts/")
        .append(std::to_string(call.attempt_id))
        .append("/history?before=")
        .append(std::to_string(call.history.back().seq))
        .append("&limit=")
        .append(std::to_string(query.limit))
        .append("\"");
  } else {
    body.append("null");
  }
  body.push_back('}');
  return body;
}

Response history_response(const StoreCall& call, std::chrono::seconds retry_after) {
  switch (call.outcome) {
    case StoreOutcome::done: {
      // Like the attempt itself: for its student alone (attempt_response).
      Response response = json_response(Status::ok, history_json(call));
      response.set(beast_http::field::cache_control, "no-store");
      return response;
    }
    case StoreOutcome::not_found:
      return error_response(Status::not_found, attempt_label(call.attempt_id) + " not found");
    case StoreOutcome::overloaded:
      return unavailable_response("too many requests queued; retry later", retry_after);
    default:
      return unavailable_response(unavailable_message(call, "retry later"), retry_after);
  }
}

Response store_response(const StoreCall& call, std::chrono::seconds retry_after) {
  switch (call.kind) {
    case StoreCall::Kind::save_answers:
      return save_response(call, retry_after);
    case StoreCall::Kind::load_attempt:
      return read_response(call, retry_after);
    case StoreCall::Kind::submit_attempt:
      return submit_response(call, retry_after);
    case StoreCall::Kind::start_attempt:
      return start_response(call, retry_after);
    case StoreCall::Kind::load_history:
      return history_response(call, retry_after);
    case StoreCall::Kind::ping:
      break;
  }
  if (call.outcome == StoreOutcome::done) {
    if (call.degraded.empty()) return json_response(Status::ok, R"({"status":"ready"})");
    // Ready: what is down is worked around, but an operator should know.
    return json_response(Status::ok, dump({{"status", "ready"}, {"degraded", call.degraded}}));
  }
  return unavailable_response(
      call.problem.empty() ? "database unreachable" : "database misconfigured: " + call.problem,
      retry_after);
}

Response export_head_response(ExportFormat format, ExamId exam_id) {
  Response response{Status::ok, 11};
  response.set(beast_http::field::content_type, content_type(format));
  response.set(beast_http::field::cache_control, "no-store");
  response.set("X-Content-Type-Options", "nosniff");
  if (format == ExportFormat::csv) {
    response.set(beast_http::field::content_disposition,
                 "attachment; filename=\"exam-" + std::to_string(exam_id) + "-attempts.csv\"");
  }
  return response;
}

Response export_refusal_response(const ExportCall& call, std::chrono::seconds retry_after) {
  switch (call.outcome) {
    case ExportOutcome::not_found:
      // A missing exam and another's exam look alike: exam ids cannot be probed.
      return error_response(Status::not_found,
                            "exam " + std::to_string(call.exam_id) + " not found");
    case ExportOutcome::busy:
      return with_retry_after(
          error_response(Status::too_many_requests,
                         "as many exports run as this server allows (--max-exports); nothing "
                         "was read, retry later"),
          retry_after);
    default:
      // What went wrong is the operator's (the session logs call.problem), not the client's.
      return unavailable_response("the export could not be read from the database; retry later",
                                  retry_after);
  }
}

Response readiness_response(const StoreCall& call, const auth::KeySourceStatus& keys,
                            std::int64_t now_unix_seconds) {
  nlohmann::json body{{"status", "ready"}};
  if (!call.degraded.empty()) body["degraded"] = call.degraded;
  body["keys"] = {{"source", keys.source},
                  {"count", keys.keys},
                  {"age_seconds", std::max<std::int64_t>(0, now_unix_seconds - keys.fetched_at)},
                  {"last_fetch", keys.last_error.empty() ? std::string("ok") : keys.last_error}};
  return json_response(Status::ok, dump(body));
}

void serialize_response(const Response& response, bool omit_body, std::string& out,
                        std::string_view extra_fields) {
  const auto reason = response.reason();
  out.reserve(out.size() + 64 + reason.size() + extra_fields.size() +
              (omit_body ? 0 : response.body().size()));
  out.append(response.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char status[4] = {static_cast<char>('0' + response.result_int() / 100),
                    static_cast<char>('0' + response.result_int() / 10 % 10),
                    static_cast<char>('0' + response.result_int() % 10), ' '};
  out.append(status, 4);
  out.append(reason.data(), reason.size());
  out.append("\r\n");
  for (const auto& field : response) {
    const auto name = field.name_string();
    const auto value = field.value();
    out.append(name.data(), name.size());
    out.append(": ");
    out.append(value.data(), value.size());
    out.append("\r\n");
  }
  out.append(extra_fields);
  out.append("\r\n");
  if (!omit_body) out.append(response.body());
}

}  // namespace attempts::http
