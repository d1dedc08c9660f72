// libFuzzer target: arbitrary bytes as what one client sends on one connection, through what a
// Session does with them (src/http/session.cpp): a fresh RequestReader per request with the
// server's limits (SessionOptions: body 64 KiB, header 8 KiB, a read buffer of at most
// read_buffer_limit() bytes), reading the header then the body over that buffer, the
// Transfer-Encoding and `Expect: 100-continue` checks (HTTP/1.1 only),
// RequestHandler::judge_header, begin and respond with a synchronous in-memory store, then the
// response prepared and serialised as Session::send does. Pipelined requests are served in
// order until the input ends, an error closes the connection, or a response is not keep-alive.
//
// One input in four is served with authentication on (the published test keys; the corpus has
// requests with a token valid at the fuzzer's fixed clock), the others with it off. Half the
// inputs, and every one that names an Origin, are served with CORS on (one allowed origin,
// kAllowedOrigin), the others with it off.
//
// Each input is served twice: all bytes arriving at once, and in two reads split at a point
// derived from the input (so every mutation moves it). Both must give the same bytes back.
// FUZZ_HTTP_VERBOSE=1 prints what the server wrote (run the binary on one file to see it).
//
// Invariants (a violation prints what broke and aborts, which libFuzzer reports as a crash):
//   - every response parses back (beast response_parser) as one complete HTTP/1.x response with
//     the same status, body and keep-alive, and Content-Length = body size (HEAD: of the body
//     left out); a body is left out exactly when the request it answers was a HEAD;
//   - statuses are among those the API documents; every 4xx/5xx body is a JSON object with a
//     non-empty "error" string; 503 and 504 carry Retry-After, 401 WWW-Authenticate starting
//     with Bearer; 204 has neither body nor Content-Length; 405 carries the Allow of its route;
//     201 carries a Location; 200 JSON bodies are objects;
//   - the status fits the route (match_route): a PATCH reaches the store exactly when the
//     validator accepts its body, with what the validator made of it; 204 stored it; a request
//     refused on its header never reaches the store; with authentication on, attempt routes
//     without a valid token are 401 and reach nothing;
//   - with CORS off no response has an Access-Control-* or Vary field; with it on every one has
//     `Vary: Origin` once, and Access-Control-Allow-Origin only ever names the allowed origin
//     (never another, never a reflection); a preflight is answered on its header alone (204 with
//     Access-Control-Max-Age, 400 or 403) and reaches nothing; 403 answers nothing else. The
//     CORS fields are left out of the at-once/in-two comparison: for a header the parser could
//     not finish, whether its Origin line had arrived depends on the reads;
//   - the read buffer never holds more than its ceiling; the parser always progresses.

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/jwks.hpp"
#include "attempts/auth/token_cache.hpp"
#include "attempts/auth/token_verifier.hpp"
#include "attempts/domain/answers.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/request.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/request_reader.hpp"
#include "attempts/http/responses.hpp"
#include "attempts/http/router.hpp"
#include "attempts/http/session.hpp"
#include "attempts/http/types.hpp"
#include "token/insecure_test_keys.hpp"
#include "token/token_tools.hpp"

namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace http = attempts::http;
namespace bh = boost::beast::http;
namespace auth = attempts::auth;
using json = nlohmann::json;
using attempts::AttemptId;
using attempts::StoreCall;
using attempts::StoreOutcome;

// The fixed clock tokens are checked against; corpus tokens are valid at it.
constexpr std::int64_t kNow = 1'700'000'000;

std::string_view g_input;  // for the report of a violation

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr,
               "fuzz_http_request: INVARIANT VIOLATED: %s\n  detail: %s\n  input (%zu bytes)\n",
               what, detail.c_str(), g_input.size());
  std::abort();
}

#define CHECK(cond, detail)                            \
  do {                                                 \
    if (!(cond)) violated(#cond, std::string(detail)); \
  } while (false)

std::int64_t fixed_clock() {
  return kNow;
}

const auth::Authenticator& authenticator() {
  static const auth::Authenticator* instance = [] {
    const json private_jwks = json::parse(auth::tools::insecure_test_private_jwks());
    json public_jwks = {{"keys", json::array()}};
    for (const auto& jwk : private_jwks["keys"]) {
      public_jwks["keys"].push_back(auth::tools::public_jwk(jwk));
    }
    auto parsed = auth::KeySet::parse(public_jwks.dump(), auth::KeyOrigin::file);
    auto keys = std::make_shared<const auth::KeySet>(
        std::move(std::get<auth::LoadedKeySet>(parsed).key_set));
    return new auth::Authenticator(
        std::make_shared<const auth::TokenVerifier>(keys, auth::VerifierOptions{}));
  }();
  return *instance;
}

// Attempts in a std::map, answering synchronously. What an id does is fixed by its last digit,
// so the fuzzer reaches every outcome: 0 no such attempt, 5 past its deadline, 6 reply lost
// (unknown), 7 overloaded, 8 database unavailable, 9 submitted; others exist and are writable,
// with revisions checked. Readiness alternates, starting ready. Exams ending in 0 do not exist.
class SyncStore : public attempts::AttemptStore {
 public:
  struct Save {
    AttemptId id;
    std::string json;
  };

  void execute(StoreCall& call, attempts::StoreCompletion& completion) override {
    call.outcome = outcome_of(call);
    completion.on_store_complete(call);
  }

  std::string answers_of(AttemptId id) const {
    const auto found = stored.find(id);
    return found == stored.end() ? "{}" : found->second.first;
  }

  std::vector<Save> saves;  // every save call, whatever its outcome
  std::map<AttemptId, std::pair<std::string, attempts::Revision>> stored;
  int readiness_checks = 0;

 private:
  StoreOutcome outcome_of(StoreCall& call) {
    const AttemptId id =
        call.kind == StoreCall::Kind::start_attempt ? call.exam_id : call.attempt_id;
    switch (call.kind) {
      case StoreCall::Kind::ping:
        return readiness_checks++ % 2 == 0 ? StoreOutcome::done : StoreOutcome::unavailable;
      case StoreCall::Kind::start_attempt:
        if (id % 10 == 0) return StoreOutcome::not_found;
        fill(call, 1'000'000 + id);
        return call.idempotency_key.empty() ? StoreOutcome::done : StoreOutcome::replayed;
      default:
        break;
    }
    if (call.kind == StoreCall::Kind::save_answers) saves.push_back({id, call.answers_json});
    switch (id % 10) {
      case 0:
        return StoreOutcome::not_found;
      case 5:
        if (call.kind != StoreCall::Kind::save_answers) break;
        call.record.deadline = "2024-06-01T12:00:00+00:00";
        return StoreOutcome::deadline_passed;
      case 6:
        return call.kind == StoreCall::Kind::load_attempt ? StoreOutcome::unavailable
                                                          : StoreOutcome::unknown;
      case 7:
        return StoreOutcome::overloaded;
      case 8:
        return StoreOutcome::unavailable;
      case 9:
        if (call.kind != StoreCall::Kind::save_answers) break;
        call.record.submitted_at = "2024-06-01T13:00:00+00:00";
        return StoreOutcome::submitted;
      default:
        break;
    }
    if (call.kind == StoreCall::Kind::save_answers) {
      auto& [answers, revision] = stored[id];
      if (call.revision && *call.revision <= revision) {
        call.record.revision = revision;
        return StoreOutcome::stale_revision;
      }
      answers = call.answers_json;
      if (call.revision) revision = *call.revision;
      return StoreOutcome::done;
    }
    fill(call, id);
    return StoreOutcome::done;
  }

  void fill(StoreCall& call, AttemptId id) {
    call.record.id = id;
    call.record.exam_id = id / 10 + 1;
    call.record.student_id = call.student.value_or(1);
    call.record.answers_json = answers_of(id);
    call.record.started_at = "2024-06-01T11:00:00+00:00";
  }
};

// The store's completion, as the session's: it only notes that the call ended.
class Completion final : public attempts::StoreCompletion {
 public:
  void on_store_complete(StoreCall&) override { ++completed; }
  int completed = 0;
};

bool has_error_body(const http::Response& response) {
  if (response[bh::field::content_type] != "application/json") return false;
  const json body = json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
  return body.is_object() && body.contains("error") && body["error"].is_string() &&
         !body["error"].get<std::string>().empty();
}

bool is_decimal(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

bool is_attempt_route(http::Route route) {
  return route == http::Route::save_answers || route == http::Route::get_attempt ||
         route == http::Route::submit_attempt || route == http::Route::start_attempt;
}

// One connection, as a Session serves it.
constexpr std::string_view kAllowedOrigin = "http://127.0.0.1:18700";

const http::CorsPolicy& cors_policy() {
  static const http::CorsPolicy policy({std::string(kAllowedOrigin)});
  return policy;
}

class Connection {
 public:
  Connection(std::string_view input, std::size_t split, bool authenticated, bool cors)
      : input_(input), split_(split), authenticated_(authenticated), cors_(cors) {}

  static constexpr std::string_view kMetricsPage = "# fuzz\nattempts_up 1\n";

  struct Outcome {
    std::vector<std::string> writes;  // what the server wrote, in order (100 Continue included)
    std::vector<std::string> wires;   // the same with the CORS fields, as sent (for describe())
    bool read_error = false;          // the connection ended on an error reading a request
    bool error_answered = false;      // ... and the last write answers that error
    bool header_too_large = false;    // ... which was 431
    std::string saves;                // what reached the store
  };

  Outcome serve() {
    for (;;) {
      if (!serve_one()) break;
    }
    for (const auto& save : store_.saves) {
      outcome_.saves += "[save " + std::to_string(save.id) + " " + save.json + "]\n";
    }
    return std::move(outcome_);
  }

 private:
  // Session::begin_request .. on_read_body for one request; false once the connection is done.
  bool serve_one() {
    http::RequestReader reader(request_);
    reader_ = &reader;
    reader.body_limit(session_options_.body_limit);
    reader.header_limit(session_options_.header_limit);
    current_is_head_ = false;  // until a header says otherwise
    // As Session::begin_request: nothing of the previous request shapes the answer to this one.
    version_ = 11;
    keep_alive_ = true;
    head_request_ = false;
    route_ = http::Route::not_found;

    beast::error_code ec = read(reader, /*whole_message=*/false);
    if (ec) return on_read_error(ec, reader);

    const http::Request& header = request_;
    version_ = header.version;
    keep_alive_ = header.keep_alive;
    head_request_ = header.method == http::Verb::head;
    current_is_head_ = head_request_;
    CHECK(version_ == 10 || version_ == 11, std::to_string(version_));

    if (header.has_transfer_encoding && !header.chunked) {
      send(http::error_response(http::Status::bad_request,
                                "unsupported Transfer-Encoding: only chunked is accepted"),
           /*close_after=*/true);
      return false;
    }
    const http::RouteMatch match = http::match_route(header.method, header.target);
    http::HeaderVerdict verdict =
        handler_.judge_header(header, authenticated_ ? &tokens_.reader() : nullptr);
    route_ = verdict.match.route;
    if (route_ == http::Route::preflight) {
      // Only with CORS on, only for an OPTIONS the router refuses, and always from the header.
      CHECK(cors_ && match.route == http::Route::method_not_allowed &&
                header.method == http::Verb::options && verdict.rejection.has_value(),
            header.target);
      const unsigned status = verdict.rejection->result_int();
      CHECK(status == 204 || status == 400 || status == 403, std::to_string(status));
    } else {
      CHECK(verdict.match.route == match.route, header.target);
    }
    const bool header_refused =
        match.route == http::Route::not_found || match.route == http::Route::method_not_allowed ||
        match.route == http::Route::bad_attempt_id || match.route == http::Route::bad_exam_id;
    if (header_refused) CHECK(verdict.rejection.has_value(), header.target);
    if (authenticated_ && is_attempt_route(match.route) && !verdict.rejection) {
      CHECK(verdict.student.has_value() && *verdict.student > 0, header.target);
    }
    if (!authenticated_) CHECK(!verdict.student.has_value(), header.target);

    if (version_ == 11 && beast::iequals(header.expect, "100-continue")) {
      if (verdict.rejection) {
        send(std::move(*verdict.rejection), /*close_after=*/true);
        return false;
      }
      outcome_.writes.emplace_back("HTTP/1.1 100 Continue\r\n\r\n");
      outcome_.wires.push_back(outcome_.writes.back());
    }

    ec = read(reader, /*whole_message=*/true);
    if (ec) return on_read_error(ec, reader);
    const std::size_t saves_before = store_.saves.size();
    if (verdict.rejection) {
      const http::Response refused = std::move(*verdict.rejection);
      CHECK(store_.saves.size() == saves_before, "a refused request reached the store");
      return send(refused, /*close_after=*/false);
    }

    StoreCall call;
    auto response = handler_.begin(request_, verdict, std::chrono::steady_clock::now(), call);
    if (!response) {
      Completion completion;
      store_.execute(call, completion);
      CHECK(completion.completed == 1,
            "the store answered " + std::to_string(completion.completed));
      response = handler_.respond(call);
    }
    check_route_outcome(match, *response, saves_before);
    return send(std::move(*response), /*close_after=*/false);
  }

  // beast::http::async_read_header (whole_message false) or async_read over a flat buffer with
  // the session's ceiling: put() what is buffered, read more on need_more (buffer_overflow when
  // full), put_eof() at the end of the input.
  beast::error_code read(http::RequestReader& reader, bool whole_message) {
    reader.eager(whole_message);
    for (;;) {
      if (whole_message ? reader.is_done() : reader.is_header_done()) return {};
      if (!buffer_.empty()) {
        beast::error_code ec;
        const std::size_t used = reader.put(net::buffer(buffer_), ec);
        CHECK(used <= buffer_.size(), "put() used more than it was given");
        buffer_.erase(0, used);
        if (ec != bh::error::need_more) {
          if (ec) return ec;
          CHECK(used > 0 || reader.is_done() || reader.is_header_done(),
                "put() made no progress and asked for nothing");
          continue;
        }
      }
      if (buffer_.size() >= session_options_.read_buffer_limit()) {
        return bh::error::buffer_overflow;
      }
      if (!read_some()) {  // end of input: the client has closed its side
        if (!reader.got_some()) return bh::error::end_of_stream;
        beast::error_code ec;
        reader.put_eof(ec);
        if (ec) return ec;
        CHECK(reader.is_done(), "put_eof() succeeded on an unfinished message");
        return {};
      }
      CHECK(buffer_.size() <= session_options_.read_buffer_limit(), "the read buffer overflowed");
    }
  }

  // One socket read: as much as fits under the buffer's ceiling, never across the split point.
  bool read_some() {
    if (offset_ >= input_.size()) return false;
    const std::size_t end = offset_ < split_ ? split_ : input_.size();
    const std::size_t room = session_options_.read_buffer_limit() - buffer_.size();
    const std::size_t n = std::min(end - offset_, room);
    buffer_.append(input_.substr(offset_, n));
    offset_ += n;
    return true;
  }

  // Session::on_read_error.
  bool on_read_error(beast::error_code ec, const http::RequestReader& reader) {
    outcome_.read_error = true;
    const bool header_overflow = ec == bh::error::buffer_overflow && !reader.is_header_done();
    outcome_.header_too_large = ec == bh::error::header_limit || header_overflow;
    outcome_.error_answered =
        ec == bh::error::header_limit || ec == bh::error::body_limit ||
        ec == bh::error::buffer_overflow ||
        (ec != bh::error::end_of_stream && ec != bh::error::partial_message &&
         ec.category() == bh::make_error_code(bh::error::bad_target).category());
    if (outcome_.header_too_large) {
      send(http::error_response(http::Status::request_header_fields_too_large, "too large"), true);
      return false;
    }
    if (ec == bh::error::body_limit) {
      send(http::error_response(http::Status::payload_too_large, "too large"), true);
      return false;
    }
    if (ec == bh::error::buffer_overflow) {
      send(http::error_response(http::Status::bad_request, "chunk line or trailer too long"), true);
      return false;
    }
    const bool peer_gone = ec == bh::error::end_of_stream || ec == bh::error::partial_message;
    if (!peer_gone && ec.category() == bh::make_error_code(bh::error::bad_target).category()) {
      send(http::error_response(http::Status::bad_request,
                                "malformed HTTP request: " + ec.message()),
           true);
    }
    return false;
  }

  // Session::send, then the checks on what goes on the wire. Returns whether the connection
  // stays open for another request.
  bool send(http::Response response, bool close_after) {
    response.version(version_);
    const bool keep_alive = keep_alive_ && !close_after;
    response.keep_alive(keep_alive);
    if (response.result() != http::Status::no_content) response.prepare_payload();
    const std::string_view cors = cors_fields(response);
    std::string wire;
    http::serialize_response(response, head_request_, wire, cors);
    check_response(response);
    check_wire(wire, response, keep_alive);
    check_cors(wire, response);
    std::string compared;
    http::serialize_response(response, head_request_, compared);
    outcome_.writes.push_back(compared);
    outcome_.wires.push_back(wire);
    return keep_alive;
  }

  // Session::cors_fields.
  std::string_view cors_fields(const http::Response& response) const {
    const http::CorsPolicy& cors = handler_.cors();
    if (!cors.enabled()) return {};
    const bool expose = http::CorsPolicy::needs_expose(response);
    if (request_.origin_count == 0 && reader_ != nullptr && !reader_->is_header_done()) {
      const std::string_view origin = http::find_origin_field(buffer_);
      return cors.response_fields(origin, origin.empty() ? 0 : 1, expose);
    }
    return cors.response_fields(request_.origin, request_.origin_count, expose);
  }

  void check_cors(const std::string& wire, const http::Response& response) const {
    const std::string_view header = std::string_view(wire).substr(0, wire.find("\r\n\r\n") + 2);
    const auto count = [&](std::string_view text) {
      std::size_t n = 0;
      for (auto at = header.find(text); at != std::string_view::npos;
           at = header.find(text, at + 1)) {
        ++n;
      }
      return n;
    };
    const unsigned status = response.result_int();
    CHECK(status != 403 || route_ == http::Route::preflight, "403 outside a preflight: " + wire);
    if (!cors_) {
      CHECK(count("\r\nAccess-Control-") == 0 && count("\r\nVary:") == 0, wire);
      return;
    }
    CHECK(count("\r\nVary: Origin\r\n") == 1 && count("\r\nVary:") == 1, wire);
    const std::size_t allowed = count("\r\nAccess-Control-Allow-Origin: ");
    CHECK(allowed ==
              count("\r\nAccess-Control-Allow-Origin: " + std::string(kAllowedOrigin) + "\r\n"),
          "another origin allowed: " + wire);
    if (route_ == http::Route::preflight && status == 204) {
      CHECK(allowed == 1 && count("\r\nAccess-Control-Max-Age: 7200\r\n") == 1, wire);
    }
    if (status == 403) CHECK(count("\r\nAccess-Control-Allow-") == 0, wire);
  }

  static void check_response(const http::Response& response) {
    const unsigned status = response.result_int();
    static const std::set<unsigned> kDocumented = {200, 201, 204, 400, 401, 403, 404, 405,
                                                   409, 413, 415, 422, 431, 503, 504};
    CHECK(kDocumented.count(status) == 1, std::to_string(status));
    if (status >= 400) CHECK(has_error_body(response), response.body());
    if (status == 503 || status == 504) {
      CHECK(is_decimal(response[bh::field::retry_after]), "no Retry-After");
    }
    if (status == 401) {
      CHECK(response[bh::field::www_authenticate].starts_with("Bearer"), "no challenge");
    }
    if (status == 405) CHECK(!response[bh::field::allow].empty(), "no Allow");
    if (status == 201)
      CHECK(response[bh::field::location].starts_with("/attempts/"), "no Location");
    if (status == 204) {
      CHECK(response.body().empty(), response.body());
      CHECK(response.count(bh::field::content_length) == 0, "Content-Length in a 204");
    }
    if (status == 200) {
      CHECK(!response[bh::field::content_type].empty(), "200 without Content-Type");
      if (response[bh::field::content_type] == "application/json") {
        const json body = json::parse(response.body(), nullptr, false);
        CHECK(body.is_object(), response.body());
      }
    }
  }

  // The bytes must read back as the response meant, by an HTTP client that knows whether it
  // sent HEAD.
  void check_wire(const std::string& wire, const http::Response& response, bool keep_alive) const {
    bh::response_parser<bh::string_body> client;
    client.header_limit(1u << 20);
    client.body_limit(std::uint64_t{1} << 30);
    client.eager(true);
    if (current_is_head_) client.skip(true);
    beast::error_code ec;
    const std::size_t used = client.put(net::buffer(wire), ec);
    CHECK(!ec && client.is_done(),
          (ec ? ec.message() : std::string("incomplete response")) + ": " + wire);
    CHECK(used == wire.size(), "trailing bytes after the response: " + wire);
    const auto& parsed = client.get();
    CHECK(parsed.result_int() == response.result_int(), wire);
    CHECK(parsed.version() == (version_ == 10 ? 10u : 11u), wire);
    CHECK(parsed.keep_alive() == keep_alive, wire);
    if (current_is_head_) {
      CHECK(parsed.body().empty(), wire);
      if (response.result() != http::Status::no_content) {
        CHECK(parsed[bh::field::content_length] == std::to_string(response.body().size()), wire);
      }
    } else {
      CHECK(parsed.body() == response.body(), wire);
    }
  }

  // What the handler answered fits the route and what the store and the validator did.
  void check_route_outcome(const http::RouteMatch& match, const http::Response& response,
                           std::size_t saves_before) const {
    const unsigned status = response.result_int();
    const std::string what = std::to_string(status) + " " + response.body();
    const std::size_t saves = store_.saves.size() - saves_before;
    switch (match.route) {
      case http::Route::save_answers: {
        CHECK(status == 204 || status == 400 || status == 404 || status == 409 || status == 503 ||
                  status == 504,
              what);
        attempts::AnswersDocument document;
        const auto error =
            attempts::parse_answers_document(request_.body, options_.answers_limits, document);
        if (error) {
          CHECK(status == 400 && saves == 0, what);
          break;
        }
        CHECK(saves == 1 && store_.saves.back().id == match.attempt_id &&
                  store_.saves.back().json == document.json,
              what);
        if (status == 204) CHECK(store_.answers_of(match.attempt_id) == document.json, what);
        break;
      }
      case http::Route::get_attempt: {
        CHECK(saves == 0 && (status == 200 || status == 404 || status == 503), what);
        if (status != 200) break;
        const json got = json::parse(response.body(), nullptr, false);
        CHECK(got.is_object() && got.contains("id") && got["id"] == match.attempt_id, what);
        CHECK(got.contains("answers") &&
                  got["answers"] == json::parse(store_.answers_of(match.attempt_id)),
              what);
        break;
      }
      case http::Route::submit_attempt:
        CHECK(saves == 0 && (status == 200 || status == 404 || status == 503 || status == 504),
              what);
        break;
      case http::Route::start_attempt:
        CHECK(saves == 0 && (status == 201 || status == 400 || status == 404 || status == 503 ||
                             status == 504),
              what);
        break;
      case http::Route::health:
        CHECK(status == 200, what);
        break;
      case http::Route::readiness:
        CHECK(status == 200 || status == 503, what);
        break;
      case http::Route::metrics:
        CHECK(status == 200 && response.body() == kMetricsPage &&
                  response[bh::field::content_type].starts_with("text/plain"),
              what);
        break;
      default:
        CHECK(false, "a route refused on its header reached begin(): " + what);
    }
  }

  std::string_view input_;
  std::size_t split_;
  bool authenticated_;
  bool cors_;
  const http::RequestReader* reader_ = nullptr;  // of the request being served
  std::size_t offset_ = 0;
  std::string buffer_;  // Session::buffer_: read but not yet parsed
  http::Request request_;
  Outcome outcome_;

  const http::SessionOptions session_options_{};
  http::HandlerOptions options_{.answers_limits = {},
                                .retry_after = std::chrono::seconds{1},
                                .metrics_text = [] { return std::string(kMetricsPage); },
                                .authenticator = authenticated_ ? &authenticator() : nullptr,
                                .clock = &fixed_clock,
                                .cors = cors_ ? cors_policy() : http::CorsPolicy{}};
  SyncStore store_;
  auth::TokenCache tokens_{{.capacity = 1024}};
  const http::RequestHandler handler_{options_};

  // Session state that outlives a request, as in Session.
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  http::Route route_ = http::Route::not_found;
  // Whether the request being answered is a HEAD (false while its header is unread).
  bool current_is_head_ = false;
};

std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

bool same(const Connection::Outcome& a, const Connection::Outcome& b) {
  return a.writes == b.writes && a.read_error == b.read_error && a.saves == b.saves;
}

// Where Beast's verdict on a request header legitimately depends on how the bytes arrived:
//  - it finds some malformed headers before their end when it has them whole, but once it has
//    asked for more it waits for the blank line (or the header limit) before looking again, so
//    a header that never ends gets 400, 431 or no answer depending on the reads;
//  - header_limit bounds what is buffered in one put(): the complete fields consumed by an
//    earlier put() do not count, so a header somewhat over the limit is accepted when it
//    arrives in pieces and refused when whole.
// `a` ended by answering a read error; `b` must agree up to that request, and there either say
// nothing, answer an error too, or (if `a` said 431) have accepted the header.
bool tolerable(const Connection::Outcome& a, const Connection::Outcome& b) {
  if (!a.read_error || !a.error_answered) return false;
  const std::size_t n = a.writes.size() - 1;
  if (b.writes.size() < n ||
      !std::equal(a.writes.begin(), a.writes.begin() + static_cast<std::ptrdiff_t>(n),
                  b.writes.begin())) {
    return false;
  }
  if (b.writes.size() == n) return b.read_error && !b.error_answered;
  if (b.read_error && b.error_answered && b.writes.size() == n + 1) return true;
  return a.header_too_large;
}

std::string describe(const Connection::Outcome& outcome) {
  std::string text;
  for (const auto& write : outcome.wires) text += write + "\n";
  return text + (outcome.read_error ? "(ended on a read error)\n" : "") + outcome.saves;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  g_input = input;
  const std::uint64_t hash = fnv1a(input);
  const bool authenticated =
      hash % 4 == 0 || input.find("Authorization:") != std::string_view::npos;
  const bool cors = (hash >> 2) % 2 == 0 || input.find("Origin:") != std::string_view::npos;
  const auto at_once = Connection(input, size, authenticated, cors).serve();
  const std::size_t split = static_cast<std::size_t>(hash % (size + 1));
  const auto in_two = Connection(input, split, authenticated, cors).serve();

  static const bool verbose = std::getenv("FUZZ_HTTP_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "--- server wrote:\n%s---\n", describe(at_once).c_str());
  const std::string detail = "split at " + std::to_string(split) + ":\n--- at once:\n" +
                             describe(at_once) + "--- in two reads:\n" + describe(in_two);
  CHECK(same(at_once, in_two) || tolerable(at_once, in_two) || tolerable(in_two, at_once), detail);
  return 0;
}
