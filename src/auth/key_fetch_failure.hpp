#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "attempts/auth/remote_keys.hpp"
#include "http_fetch.hpp"

namespace attempts::auth {

// Why one fetch of the remote keys (discovery, then the JWKS) left the keys in force as they
// were: the metric's label, and a message for /readyz and the log.
struct KeyFetchFailure {
  FetchOutcome outcome;
  std::string message;
  // Keys refused in a JWKS that had none usable left, when one was read (the metric of refused
  // keys then says so); unset when no JWKS was read.
  std::optional<std::size_t> refused_keys{};
};

// The metric's label for how the network part of a fetch failed.
FetchOutcome outcome_of(FetchFailure failure) noexcept;

// `error` as a failure, its message after `what` ("JWKS", "OpenID configuration ...").
KeyFetchFailure fetch_failure(const FetchError& error, const std::string& what);

}  // namespace attempts::auth
