#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
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
  // Above zero when new keys that may verify this token are on their way (a remote key source
  // is fetching them): the 401's Retry-After, after which one more try is worthwhile.
  std::chrono::seconds retry_after{0};

  friend bool operator==(const AuthFailure&, const AuthFailure&) = default;
};

// A staff member (StaffRule): reads the attempts of the exams exam_staff lists for them, never
// writes answers.
struct StaffMember {
  std::string id;

  friend bool operator==(const StaffMember&, const StaffMember&) = default;
};

// Who is calling: a student's id or a staff member; or why the request is not authenticated.
using AuthResult = std::variant<std::int64_t, StaffMember, AuthFailure>;

// The bearer token of an Authorization header value (RFC 6750 section 2.1): the scheme Bearer
// in any case, one space, then token68 characters. Missing when the value is empty or has
// another scheme; malformed when a Bearer credential does not have that shape.
std::variant<std::string_view, TokenError> bearer_token(std::string_view authorization);

// What a cached token is tagged with: the key that verified it (VerificationKey::fingerprint)
// and the options it was verified under (issuer, audience, leeway). Never 0.
std::uint64_t cache_tag(std::uint64_t key_fingerprint, const TokenVerifier& verifier) noexcept;

// The tags of the keys in force under the current verifier, readable by every thread without a
// lock: a cached token answers only while its tag is one of them, so a key that leaves the set
// (or a change of options) takes its tokens with it, and the tokens of the keys that stay keep
// their entries. Holds the first kMax keys of a set; tokens verified by others are not cached.
class KeysInForce {
 public:
  static constexpr std::size_t kMax = 64;

  // Replaces the tags. A reader meanwhile may see some of the old ones a moment longer, as if
  // its request had come a moment earlier.
  void set(const TokenVerifier& verifier) noexcept;
  bool contains(std::uint64_t tag) const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kMax> tags_{};
};

// From an Authorization header value to a student id, through the process's TokenCache and the
// current TokenVerifier. The verifier can be replaced at any time (key rotation); every
// authentication that starts after replace() returns uses the new one, and a cached token
// answers only while the key that verified it is still in force.
//
// The hit path does the least it can: the scheme, the token's digest, one cache set, the key
// check. A token the cache holds was verified, so its shape was checked then; the rest (token68
// characters, the signature, the claims) runs on a miss.
class Authenticator {
 public:
  // Without a verifier: not ready() until the first replace() (keys still being fetched).
  Authenticator() = default;
  explicit Authenticator(std::shared_ptr<const TokenVerifier> verifier);

  // Whether there are keys to verify with. Until then a request cannot be judged: the caller
  // answers 503, not 401 (authenticate() would refuse every token as unknown_key).
  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }

  // Called (from any thread, on the request path: it must not block) whenever a token names a
  // key the verifier does not have (unknown_key), or the key it names does not verify it
  // (bad_signature), so that a remote key source can look for new keys: a provider may rotate
  // under a new kid, under the same one, or without kids at all. Returns when the new keys will
  // be there (AuthFailure::retry_after; 0: none are coming). Set before requests are served.
  using KeyMissHook = std::function<std::chrono::seconds(TokenError reason)>;
  void on_key_miss(KeyMissHook hook) { key_miss_hook_ = std::move(hook); }

  AuthResult authenticate(std::string_view authorization, TokenCache::Reader& cache,
                          std::int64_t now_unix_seconds) const;

  // Thread-safe; concurrent authentications keep the verifier they started with. The first
  // call makes the authenticator ready().
  void replace(std::shared_ptr<const TokenVerifier> verifier);

  std::shared_ptr<const TokenVerifier> verifier() const;

  // Rejections so far with this reason, for /metrics.
  std::uint64_t rejections(TokenError reason) const noexcept {
    return rejections_[static_cast<std::size_t>(reason)].load(std::memory_order_relaxed);
  }

 private:
  AuthResult reject(TokenError reason, std::chrono::seconds retry_after = {}) const noexcept;
  // A cache hit on a staff member's token: the id read again from the token (see the cache).
  AuthResult staff_from_hit(std::string_view token) const;

  // A mutex rather than GCC 12's std::atomic<std::shared_ptr>, whose load() releases its lock
  // with a relaxed fetch_sub: a data race with store() that ThreadSanitizer reports. It is taken
  // once per cache miss, next to a signature verification that costs far more.
  mutable std::mutex verifier_mutex_;
  std::shared_ptr<const TokenVerifier> verifier_;
  std::atomic<bool> ready_{false};
  KeyMissHook key_miss_hook_;
  KeysInForce keys_in_force_;
  // Longer tokens are refused without being hashed (the verifier's limit; the same for every
  // verifier, from the configuration).
  std::atomic<std::size_t> max_token_bytes_{0};
  mutable std::array<std::atomic<std::uint64_t>, kTokenErrorCount> rejections_{};
};

// The WWW-Authenticate value of a 401 (RFC 6750 section 3): `Bearer` for a request without
// credentials, otherwise `Bearer error="invalid_token", error_description="..."`. A non-empty
// realm is added first; quotes and backslashes in it are escaped.
std::string www_authenticate(TokenError reason, std::string_view realm = {});

}  // namespace attempts::auth
