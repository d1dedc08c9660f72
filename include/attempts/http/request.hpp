#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "attempts/http/types.hpp"

namespace attempts::http {

// A request as the service reads it: the request line, the few header fields it acts on, and
// the body. A connection keeps one and reuses its buffers for each request, so reading a
// request allocates nothing once they have grown to a typical size. Trailer fields of a
// chunked body are not kept: nothing in them can change how a request is judged.
struct Request {
  Verb method = Verb::unknown;
  std::string method_text;  // as received, for logs
  std::string target;
  unsigned version = 11;   // 10 or 11
  bool keep_alive = true;  // after Connection and the version's default
  bool chunked = false;    // Transfer-Encoding ends in chunked
  bool has_transfer_encoding = false;
  std::string content_type;
  std::string authorization;
  std::string expect;
  std::string idempotency_key;
  // Every Accept field's value, joined by ", " (a list field may be split over several lines):
  // which representation of an export the client wants.
  std::string accept;
  // Every Accept-Encoding field's value, joined likewise: whether a progress stream is gzipped.
  std::string accept_encoding;
  // Where a progress stream resumes (Server-Sent Events); the first one if repeated.
  std::string last_event_id;
  unsigned last_event_id_count = 0;
  // CORS (cors.hpp): where a browser's page comes from, and the method a preflight asks about.
  std::string origin;
  std::string access_control_request_method;
  // How often each of those fields appeared: a second one is refused, not silently ignored.
  unsigned content_type_count = 0;
  unsigned authorization_count = 0;
  unsigned idempotency_key_count = 0;
  unsigned origin_count = 0;
  unsigned access_control_request_method_count = 0;
  std::string body;

  // Ready for the next request; keeps buffers up to `kept` bytes and frees larger ones.
  void clear(std::size_t kept = 1024);
};

}  // namespace attempts::http
