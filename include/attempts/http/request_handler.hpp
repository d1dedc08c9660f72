#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "attempts/domain/answers.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/router.hpp"
#include "attempts/http/types.hpp"

namespace attempts::http {

struct HandlerOptions {
  AnswersLimits answers_limits;
  // What 503 responses tell clients to wait before retrying.
  std::chrono::seconds retry_after{1};
  // The /metrics page (Prometheus text format); empty means /metrics answers 404.
  std::function<std::string()> metrics_text;
};

// Turns a complete request into a response: routing, validation, and the call to the store.
// Knows HTTP and the domain, nothing of SQL. Stateless apart from its references, so one
// instance serves every session on every thread.
class RequestHandler {
 public:
  // Called exactly once per request, possibly on a store thread; must not block.
  using Respond = std::function<void(Response)>;

  RequestHandler(AttemptStore& store, HandlerOptions options);

  // The answer for a request that can be refused on its header alone (unknown path, method,
  // malformed id, content type), or nullopt. Used before `100 Continue` so that a client is
  // never asked to send a body that would be refused.
  std::optional<Response> reject_early(const RequestHeader& header) const;

  void handle(Request&& request, Respond respond) const;

 private:
  std::optional<Response> reject(const RouteMatch& match, const RequestHeader& header) const;
  void save_answers(AttemptId id, const Request& request, Respond respond) const;

  AttemptStore& store_;
  HandlerOptions options_;
};

}  // namespace attempts::http
