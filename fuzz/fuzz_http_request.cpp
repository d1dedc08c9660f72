// libFuzzer target: arbitrary bytes as what one client sends on one connection, through what a
// Session does with them (src/http/session.cpp): a fresh beast request_parser<string_body> per
// request with the server's limits (SessionOptions: body 64 KiB, header 8 KiB), read_header
// (eager off) then read (eager on) over a flat buffer, the Transfer-Encoding and
// `Expect: 100-continue` checks, RequestHandler::reject_early and handle with a synchronous
// in-memory store, then the response prepared and serialised as Session::send does. Pipelined
// requests are served in order until the input ends, an error closes the connection, or a
// response is not keep-alive.
//
// Each input is served twice: all bytes arriving at once, and in two reads split at a point
// derived from the input (so every mutation moves it). Both must give the same bytes back.
// FUZZ_HTTP_VERBOSE=1 prints what the server wrote (run the binary on one file to see it).
//
// Invariants (a violation prints what broke and aborts, which libFuzzer reports as a crash):
//   - every response parses back (beast response_parser) as one complete HTTP/1.x response with
//     the same status, body and keep-alive, and Content-Length = body size (HEAD: of the body
//     left out); a body is left out exactly when the request it answers was a HEAD;
//   - statuses are among those the API documents; every 4xx/5xx body is {"error": "<non-empty>"}
//     served as application/json; 503 carries Retry-After; 204 has neither body nor
//     Content-Length; 405 carries the Allow of its route; 200 JSON bodies are objects;
//   - the status fits the route (match_route), a 204 PATCH stored exactly what
//     parse_answers_document made of the body, a 400 PATCH is one the validator rejected, and a
//     200 GET shows the stored answers;
//   - a request reject_early refuses on its header is answered that way, never saved;
//   - handle() answers exactly once; the parser always progresses.

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
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "attempts/domain/answers.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/responses.hpp"
#include "attempts/http/router.hpp"
#include "attempts/http/session.hpp"
#include "attempts/http/types.hpp"

namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace http = attempts::http;
namespace bh = boost::beast::http;
using json = nlohmann::json;
using attempts::AttemptId;

std::string_view g_input;  // for the report of a violation

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr,
               "fuzz_http_request: INVARIANT VIOLATED: %s\n  detail: %s\n  input (%zu bytes)\n",
               what, detail.c_str(), g_input.size());
  std::abort();
}

#define CHECK(cond, detail)                       \
  do {                                            \
    if (!(cond)) violated(#cond, std::string(detail)); \
  } while (false)

// Attempts in a std::map, answering synchronously. What an id does is fixed by its last digit,
// so the fuzzer reaches every outcome: 0 no such attempt, 7 overloaded, 8 database unavailable,
// 9 submitted; others exist and are writable. Readiness alternates, starting ready.
class SyncStore : public attempts::AttemptStore {
 public:
  struct Save {
    AttemptId id;
    std::string json;
  };

  void save_answers(AttemptId id, std::string answers_json, SaveCallback done) override {
    saves.push_back({id, answers_json});
    switch (id % 10) {
      case 0:
        return done(attempts::SaveOutcome::not_found);
      case 7:
        return done(attempts::SaveOutcome::overloaded);
      case 8:
        return done(attempts::SaveOutcome::unavailable);
      case 9:
        return done(attempts::SaveOutcome::already_submitted);
      default:
        stored[id] = std::move(answers_json);
        return done(attempts::SaveOutcome::saved);
    }
  }

  void load_attempt(AttemptId id, LoadCallback done) override {
    attempts::LoadResult result;
    switch (id % 10) {
      case 0:
        result.outcome = attempts::LoadOutcome::not_found;
        return done(std::move(result));
      case 7:
        result.outcome = attempts::LoadOutcome::overloaded;
        return done(std::move(result));
      case 8:
        result.outcome = attempts::LoadOutcome::unavailable;
        return done(std::move(result));
      default:
        break;
    }
    result.outcome = attempts::LoadOutcome::found;
    result.record.id = id;
    result.record.exam_id = id / 10;
    result.record.answers_json = answers_of(id);
    if (stored.count(id)) result.record.updated_at = "2024-06-01T12:00:00Z";
    if (id % 10 == 9) result.record.submitted_at = "2024-06-01T13:00:00Z";
    done(std::move(result));
  }

  void check_ready(ReadyCallback done) override { done(readiness_checks++ % 2 == 0); }

  std::string answers_of(AttemptId id) const {
    const auto found = stored.find(id);
    return found == stored.end() ? "{}" : found->second;
  }

  std::vector<Save> saves;  // every call, whatever its outcome
  std::map<AttemptId, std::string> stored;
  int readiness_checks = 0;
};

bool has_error_body(const http::Response& response) {
  if (response[bh::field::content_type] != "application/json") return false;
  const json body = json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
  return body.is_object() && body.size() == 1 && body.contains("error") &&
         body["error"].is_string() && !body["error"].get<std::string>().empty();
}

bool is_decimal(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

// One connection, as a Session serves it.
class Connection {
 public:
  Connection(std::string_view input, std::size_t split) : input_(input), split_(split) {}

  static constexpr std::string_view kMetricsPage = "# fuzz\nattempts_up 1\n";

  struct Outcome {
    std::vector<std::string> writes;  // what the server wrote, in order (100 Continue included)
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
  using Parser = bh::request_parser<bh::string_body>;

  // Session::do_read .. on_read_body for one request; false once the connection is done.
  bool serve_one() {
    Parser parser;
    parser.body_limit(session_options_.body_limit);
    parser.header_limit(session_options_.header_limit);
    current_is_head_ = false;  // until a header says otherwise
    // As Session::do_read: nothing of the previous request shapes the answer to this one.
    version_ = 11;
    keep_alive_ = true;
    head_request_ = false;

    beast::error_code ec = read(parser, /*whole_message=*/false);
    if (ec) return on_read_error(ec);

    const auto& message = parser.get();
    const http::RequestHeader& header = message;
    version_ = header.version();
    keep_alive_ = message.keep_alive();
    head_request_ = header.method() == http::Verb::head;
    current_is_head_ = head_request_;
    CHECK(version_ == 10 || version_ == 11, std::to_string(version_));

    const http::RouteMatch match = http::match_route(header.method(), header.target());
    std::optional<http::Response> early = handler_.reject_early(header);
    const bool header_rejectable = match.route == http::Route::not_found ||
                                   match.route == http::Route::method_not_allowed ||
                                   match.route == http::Route::bad_attempt_id ||
                                   (match.route == http::Route::save_answers &&
                                    !http::is_json_content_type(header[bh::field::content_type]));
    CHECK(early.has_value() == header_rejectable, std::string(header.target()));

    if (header.count(bh::field::transfer_encoding) > 0 && !parser.chunked()) {
      send(http::error_response(http::Status::bad_request,
                                "unsupported Transfer-Encoding: only chunked is accepted"),
           /*close_after=*/true);
      return false;
    }
    if (beast::iequals(header[bh::field::expect], "100-continue")) {
      if (early) {
        send(std::move(*early), /*close_after=*/true);
        return false;
      }
      outcome_.writes.emplace_back("HTTP/1.1 100 Continue\r\n\r\n");
    }

    ec = read(parser, /*whole_message=*/true);
    if (ec) return on_read_error(ec);
    // As Session::on_read_body: a request refused on its header gets that answer; handle() is
    // not asked, since a chunked body's trailer (merged into the fields) could change its mind.
    if (early) return send(std::move(*early), /*close_after=*/false);

    http::Request request = parser.release();
    const std::string body = request.body();
    const std::string target(request.target());
    std::vector<http::Response> responses;
    const std::size_t saves_before = store_.saves.size();
    handler_.handle(std::move(request), [&responses](http::Response response) {
      responses.push_back(std::move(response));
    });
    CHECK(responses.size() == 1, std::to_string(responses.size()) + " responses to " + target);
    http::Response& response = responses.front();
    check_route_outcome(match, body, response, saves_before);
    return send(std::move(response), /*close_after=*/false);
  }

  // beast::http::async_read_header (whole_message false) or async_read over the flat buffer:
  // put() what is buffered, read more on need_more, put_eof() at the end of the input.
  beast::error_code read(Parser& parser, bool whole_message) {
    parser.eager(whole_message);
    for (;;) {
      if (whole_message ? parser.is_done() : parser.is_header_done()) return {};
      if (!buffer_.empty()) {
        beast::error_code ec;
        const std::size_t used = parser.put(net::buffer(buffer_), ec);
        CHECK(used <= buffer_.size(), "put() used more than it was given");
        buffer_.erase(0, used);
        if (ec != bh::error::need_more) {
          if (ec) return ec;
          CHECK(used > 0 || parser.is_done() || parser.is_header_done(),
                "put() made no progress and asked for nothing");
          continue;
        }
      }
      if (!read_some()) {  // end of input: the client has closed its side
        if (!parser.got_some()) return bh::error::end_of_stream;
        beast::error_code ec;
        parser.put_eof(ec);
        if (ec) return ec;
        CHECK(parser.is_done(), "put_eof() succeeded on an unfinished message");
        return {};
      }
    }
  }

  // One socket read: at most 64 KiB (Beast's read size), never across the split point.
  bool read_some() {
    if (offset_ >= input_.size()) return false;
    const std::size_t end = offset_ < split_ ? split_ : input_.size();
    const std::size_t n = std::min<std::size_t>(end - offset_, 65536);
    buffer_.append(input_.substr(offset_, n));
    offset_ += n;
    return true;
  }

  // Session::on_read_error.
  bool on_read_error(beast::error_code ec) {
    outcome_.read_error = true;
    outcome_.header_too_large = ec == bh::error::header_limit;
    outcome_.error_answered = ec == bh::error::header_limit || ec == bh::error::body_limit ||
                              (ec != bh::error::end_of_stream && ec != bh::error::partial_message &&
                               ec.category() == bh::make_error_code(bh::error::bad_target).category());
    if (ec == bh::error::header_limit) {
      send(http::error_response(http::Status::request_header_fields_too_large,
                                "request header larger than " +
                                    std::to_string(session_options_.header_limit) + " bytes"),
           true);
      return false;
    }
    if (ec == bh::error::body_limit) {
      send(http::error_response(http::Status::payload_too_large,
                                "request body larger than " +
                                    std::to_string(session_options_.body_limit) + " bytes"),
           true);
      return false;
    }
    const bool peer_gone = ec == bh::error::end_of_stream || ec == bh::error::partial_message;
    if (!peer_gone && ec.category() == bh::make_error_code(bh::error::bad_target).category()) {
      send(http::error_response(http::Status::bad_request, "malformed HTTP request: " + ec.message()),
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
    response.prepare_payload();
    if (response.result() == http::Status::no_content) {
      response.erase(bh::field::content_length);
    }
    const std::string wire = http::serialize_response(response, head_request_);
    check_response(response);
    check_wire(wire, response, keep_alive);
    outcome_.writes.push_back(wire);
    return keep_alive;
  }

  static void check_response(const http::Response& response) {
    const unsigned status = response.result_int();
    static const std::set<unsigned> kDocumented = {200, 204, 400, 404, 405,
                                                   409, 413, 415, 431, 503};
    CHECK(kDocumented.count(status) == 1, std::to_string(status));
    if (status >= 400) CHECK(has_error_body(response), response.body());
    if (status == 503) CHECK(is_decimal(response[bh::field::retry_after]), "no Retry-After");
    if (status == 405) CHECK(!response[bh::field::allow].empty(), "no Allow");
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

  // What handle() answered fits the route and what the store and the validator did.
  void check_route_outcome(const http::RouteMatch& match, const std::string& body,
                           const http::Response& response, std::size_t saves_before) const {
    const unsigned status = response.result_int();
    const std::string what = std::to_string(status) + " " + response.body();
    const std::size_t saves = store_.saves.size() - saves_before;
    switch (match.route) {
      case http::Route::not_found:
        CHECK(status == 404, what);
        break;
      case http::Route::method_not_allowed:
        CHECK(status == 405 && response[bh::field::allow] == match.allow, what);
        break;
      case http::Route::bad_attempt_id:
        CHECK(status == 400, what);
        break;
      case http::Route::save_answers: {
        CHECK(status == 204 || status == 400 || status == 404 || status == 409 ||
                  status == 415 || status == 503,
              what);
        if (status == 415) {
          CHECK(saves == 0, what);
          break;
        }
        const auto parsed = attempts::parse_answers_document(body, options_.answers_limits);
        const auto* document = std::get_if<attempts::AnswersDocument>(&parsed);
        if (document == nullptr) {
          CHECK(status == 400 && saves == 0, what);
          break;
        }
        CHECK(saves == 1 && store_.saves.back().id == match.attempt_id &&
                  store_.saves.back().json == document->json,
              what);
        if (status == 204) CHECK(store_.answers_of(match.attempt_id) == document->json, what);
        break;
      }
      case http::Route::get_attempt: {
        CHECK(status == 200 || status == 404 || status == 503, what);
        if (status != 200) break;
        const json got = json::parse(response.body(), nullptr, false);
        CHECK(got.is_object() && got.contains("id") && got["id"] == match.attempt_id, what);
        CHECK(got.contains("answers") &&
                  got["answers"] == json::parse(store_.answers_of(match.attempt_id)),
              what);
        break;
      }
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
      default:  // a route this target does not know yet: the generic checks only
        break;
    }
  }

  std::string_view input_;
  std::size_t split_;
  std::size_t offset_ = 0;
  std::string buffer_;  // Session::buffer_: read but not yet parsed
  Outcome outcome_;

  const http::SessionOptions session_options_{};
  http::HandlerOptions options_{.answers_limits = {},
                                .retry_after = std::chrono::seconds{1},
                                .metrics_text = [] { return std::string(kMetricsPage); }};
  SyncStore store_;
  const http::RequestHandler handler_{store_, options_};

  // Session state that outlives a request, as in Session.
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
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
//    earlier put() do not count, so a header somewhat over the limit (in the server: by up to
//    its first read, 512 bytes) is accepted when it arrives in pieces and refused when whole.
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
  for (const auto& write : outcome.writes) text += write + "\n";
  return text + (outcome.read_error ? "(ended on a read error)\n" : "") + outcome.saves;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  g_input = input;
  const auto at_once = Connection(input, size).serve();
  const std::size_t split = static_cast<std::size_t>(fnv1a(input) % (size + 1));
  const auto in_two = Connection(input, split).serve();

  static const bool verbose = std::getenv("FUZZ_HTTP_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "--- server wrote:\n%s---\n", describe(at_once).c_str());
  const std::string detail = "split at " + std::to_string(split) + ":\n--- at once:\n" +
                             describe(at_once) + "--- in two reads:\n" + describe(in_two);
  CHECK(same(at_once, in_two) || tolerable(at_once, in_two) || tolerable(in_two, at_once),
        detail);
  return 0;
}
