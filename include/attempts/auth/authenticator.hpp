#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>

#include "attempts/auth/token_cache.hpp"
#include "attempts/auth/token_verifier.hpp"

namespace attempts::auth {

struct AuthFailure {
  TokenError reason;

  friend bool operator==(const AuthFailure&, const AuthFailure&) = default;
};

// The authenticated student's id, or why the request is not authenticated.
using AuthResult = std::variant<std::int64_t, AuthFailure>;

// The bearer token of an Authorization header value (RFC 6750 section 2.1): the scheme Bearer
// in any case, one space, then token68 characters. Missing when the value is empty or has
// another scheme; malformed when a Bearer credential does not have that shape.
std::variant<std::string_view, TokenError> bearer_token(std::string_view authorization);

// From an Authorization header value to a student id, through a per-thread TokenCache and the
// current TokenVerifier. The verifier can be replaced at any time (key rotation); every
// authentication that starts after replace() returns uses the new one, and caches filled
// under the old one are emptied before they answer again.
class Authenticator {
 public:
  explicit Authenticator(std::shared_ptr<const TokenVerifier> verifier);

  AuthResult authenticate(std::string_view authorization, TokenCache& cache,
                          std::int64_t now_unix_seconds) const;

  // Thread-safe; concurrent authentications keep the verifier they started with.
  void replace(std::shared_ptr<const TokenVerifier> verifier);

  // Starts at 1 and grows by one at each replace().
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
  std::shared_ptr<const TokenVerifier> verifier() const { return current().verifier; }

  // Rejections so far with this reason, for /metrics.
  std::uint64_t rejections(TokenError reason) const noexcept {
    return rejections_[static_cast<std::size_t>(reason)].load(std::memory_order_relaxed);
  }

 private:
  // A verifier and its generation, replaced as one so that no reader pairs one with the other's.
  struct Current {
    std::shared_ptr<const TokenVerifier> verifier;
    std::uint64_t generation = 0;
  };

  Current current() const;
  AuthResult reject(TokenError reason) const noexcept;

  // A mutex rather than GCC 12's std::atomic<std::shared_ptr>, whose load() releases its lock
  // with a relaxed fetch_sub: a data race with store() that ThreadSanitizer reports. It is taken
  // once per cache miss, next to a signature verification that costs far more.
  mutable std::mutex current_mutex_;
  Current current_;
  // current_.generation, readable without the mutex: what a cache hit checks.
  std::atomic<std::uint64_t> generation_{0};
  mutable std::array<std::atomic<std::uint64_t>, kTokenErrorCount> rejections_{};
};

// The WWW-Authenticate value of a 401 (RFC 6750 section 3): `Bearer` for a request without
// credentials, otherwise `Bearer error="invalid_token", error_description="..."`. A non-empty
// realm is added first; quotes and backslashes in it are escaped.
std::string www_authenticate(TokenError reason, std::string_view realm = {});

}  // namespace attempts::auth
