#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/http/request.hpp"
#include "attempts/http/types.hpp"

namespace attempts::http {

// Why `text` is not an origin as a browser sends it in the Origin header (the Fetch standard's
// ASCII serialization of an origin: `scheme "://" host [":" port]`, lower case, http or https,
// no default port, no path, no user info), or nullopt when it is one. `*` and `null` are
// refused: an allowed origin is always named exactly.
std::optional<std::string> origin_error(std::string_view text);

// The value of the first Origin field in what the parser left of a request header it could not
// finish (a 431, a 408): the request line or the first field it had not handed over yet, and
// what follows. Empty when there is none before the header's end; a line not yet ended is not
// read.
std::string_view find_origin_field(std::string_view raw_header) noexcept;

// Cross-origin resource sharing (the Fetch standard's CORS protocol) for browsers on other
// origins. Off unless origins are named. Immutable once built, so every loop shares one.
//
// - A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) of a known path is
//   answered from the header alone, before authentication and without the store: 204 with
//   Access-Control-Allow-{Origin,Methods,Headers} and Access-Control-Max-Age for an allowed
//   origin; 403 without any Access-Control-Allow-* field for any other.
// - Every response to a request from an allowed origin, errors included, carries
//   Access-Control-Allow-Origin (that origin), and Access-Control-Expose-Headers when it has a
//   field that needs it (a 204 has none: its bytes stay few); every response carries
//   `Vary: Origin` (the answer depends on it) while CORS is on.
//
// The fields of each allowed origin are written once, at construction: answering a request
// costs a comparison with each allowed origin and no allocation.
class CorsPolicy {
 public:
  // Long enough that one preflight per URL covers a whole exam (Chromium caps the value at
  // 7200 s, Firefox at 86400); short enough that a removed origin stops sending writes within
  // two hours. README "CORS" has the reasoning.
  static constexpr std::chrono::seconds kMaxAge{7200};
  // Request fields a page may send: Authorization, Idempotency-Key and Last-Event-ID (a
  // progress stream's reconnect) are never CORS-safelisted, nor is Content-Type with
  // application/json.
  static constexpr std::string_view kAllowHeaders =
      "authorization, content-type, idempotency-key, last-event-id";
  // Response fields a page may read beyond the CORS-safelisted ones (Content-Type, ...).
  static constexpr std::string_view kExposeHeaders =
      "Location, Retry-After, WWW-Authenticate, Idempotent-Replayed";

  CorsPolicy() = default;  // off: nothing is added to any response
  // `origins` must each pass origin_error (the configuration checks them); throws
  // std::invalid_argument naming the first that does not. Duplicates are kept once.
  explicit CorsPolicy(const std::vector<std::string>& origins);

  bool enabled() const noexcept { return !allowed_.empty(); }
  bool allows(std::string_view origin) const noexcept;
  std::vector<std::string> origins() const;

  // Header lines (each ending in CRLF) to add to a response to a request that carried the
  // Origin field `count` times, the first with the value `origin`: empty with CORS off;
  // Access-Control-Allow-Origin, Access-Control-Expose-Headers when `expose`, and Vary for an
  // allowed origin; `Vary: Origin` alone otherwise (two Origin fields match nothing).
  std::string_view response_fields(std::string_view origin, unsigned count,
                                   bool expose = true) const noexcept;

  // Whether `response` has a field of kExposeHeaders, which a page reads only if exposed.
  static bool needs_expose(const Response& response) noexcept;

  // The Fetch standard's test: OPTIONS carrying Origin and Access-Control-Request-Method.
  static bool is_preflight(const Request& request) noexcept;

  // The answer to a preflight of a path that accepts `allow` (as in an Allow header). The
  // fields of response_fields() are added by whoever writes it, as for every response.
  Response preflight_response(const Request& request, std::string_view allow) const;

 private:
  struct Allowed {
    std::string origin;
    std::string fields;  // Access-Control-Allow-Origin, Access-Control-Expose-Headers, Vary
    std::string fields_no_expose;  // the same without Access-Control-Expose-Headers
  };
  const Allowed* find(std::string_view origin) const noexcept;

  std::vector<Allowed> allowed_;
};

}  // namespace attempts::http
