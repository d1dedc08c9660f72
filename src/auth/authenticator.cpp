#include "attempts/auth/authenticator.hpp"

#include <array>
#include <optional>
#include <stdexcept>
#include <utility>

namespace attempts::auth {
namespace {

// The token68 characters but '=' (RFC 7235 section 2.1), as a table: the header of every
// request is scanned, and a table costs one load per character instead of a chain of branches.
constexpr std::array<bool, 256> kToken68Characters = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) {
    table[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
  }
  return table;
}();

bool is_token68_character(char c) noexcept {
  return kToken68Characters[static_cast<unsigned char>(c)];
}

// token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" (RFC 7235 section 2.1)
bool is_token68(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size() && is_token68_character(text[i])) ++i;
  if (i == 0) return false;
  while (i < text.size() && text[i] == '=') ++i;
  return i == text.size();
}

bool is_bearer_scheme(std::string_view scheme) noexcept {
  constexpr std::string_view kBearer = "bearer";
  if (scheme.size() != kBearer.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    const char c =
        scheme[i] >= 'A' && scheme[i] <= 'Z' ? static_cast<char>(scheme[i] + 32) : scheme[i];
    if (c != kBearer[i]) return false;
  }
  return true;
}

// The credential after "Bearer ", without looking at its characters yet.
std::variant<std::string_view, TokenError> bearer_credential(std::string_view authorization) {
  if (authorization.empty()) return TokenError::missing;
  const std::size_t space = authorization.find(' ');
  const std::string_view scheme = authorization.substr(0, space);
  if (!is_bearer_scheme(scheme)) return TokenError::missing;
  if (space == std::string_view::npos) return TokenError::malformed;
  return authorization.substr(space + 1);
}

}  // namespace

std::variant<std::string_view, TokenError> bearer_token(std::string_view authorization) {
  auto credential = bearer_credential(authorization);
  if (const auto* token = std::get_if<std::string_view>(&credential);
      token && !is_token68(*token)) {
    return TokenError::malformed;
  }
  return credential;
}

std::uint64_t cache_tag(std::uint64_t key_fingerprint, const TokenVerifier& verifier) noexcept {
  // Never 0, the mark of an unused place.
  const std::uint64_t tag =
      key_fingerprint ^ (verifier.options_fingerprint() * 0x9E3779B97F4A7C15ull);
  return tag == 0 ? 1 : tag;
}

void KeysInForce::set(const TokenVerifier& verifier) noexcept {
  std::size_t i = 0;
  for (const auto& key : verifier.keys().keys()) {
    if (i == kMax) break;
    tags_[i++].store(cache_tag(key.fingerprint, verifier), std::memory_order_release);
  }
  for (; i < kMax; ++i) tags_[i].store(0, std::memory_order_release);
}

bool KeysInForce::contains(std::uint64_t tag) const noexcept {
  for (const auto& known : tags_) {
    const std::uint64_t value = known.load(std::memory_order_acquire);
    if (value == tag) return true;
    if (value == 0) return false;  // the set is packed at the front
  }
  return false;
}

Authenticator::Authenticator(std::shared_ptr<const TokenVerifier> verifier) {
  replace(std::move(verifier));
}

void Authenticator::replace(std::shared_ptr<const TokenVerifier> verifier) {
  if (!verifier) throw std::invalid_argument("Authenticator::replace needs a verifier");
  std::shared_ptr<const TokenVerifier> previous;  // released after the unlock: it may hold the
                                                  // last reference to its keys
  {
    const std::lock_guard lock(verifier_mutex_);
    max_token_bytes_.store(verifier->options().max_token_bytes, std::memory_order_relaxed);
    // The keys in force change after the verifier: a token that misses because its key just
    // left is verified by the new verifier, which refuses it.
    previous = std::exchange(verifier_, std::move(verifier));
    keys_in_force_.set(*verifier_);
  }
  ready_.store(true, std::memory_order_release);
}

std::shared_ptr<const TokenVerifier> Authenticator::verifier() const {
  const std::lock_guard lock(verifier_mutex_);
  return verifier_;
}

AuthResult Authenticator::authenticate(std::string_view authorization, TokenCache::Reader& cache,
                                       std::int64_t now_unix_seconds) const {
  const auto credential = bearer_credential(authorization);
  if (const auto* error = std::get_if<TokenError>(&credential)) return reject(*error);
  const std::string_view token = std::get<std::string_view>(credential);

  // Too long to be verified: not worth hashing either.
  std::optional<TokenDigest> digest;
  if (token.size() <= max_token_bytes_.load(std::memory_order_relaxed)) {
    digest = cache.digest(token);
    if (const auto hit = cache.find(*digest, now_unix_seconds);
        hit && keys_in_force_.contains(hit->key)) {
      if (hit->student_id == TokenCache::kStaffMember) return staff_from_hit(token);
      return hit->student_id;
    }
  }

  if (!is_token68(token)) return reject(TokenError::malformed);
  const auto current = verifier();
  if (!current) return reject(TokenError::unknown_key);  // not ready(): no key at all
  const VerifyResult result = current->verify(token, now_unix_seconds);
  if (const auto* error = std::get_if<TokenError>(&result)) {
    const bool key_missing =
        *error == TokenError::unknown_key || *error == TokenError::bad_signature;
    return reject(*error,
                  key_missing && key_miss_hook_ ? key_miss_hook_(*error) : std::chrono::seconds{0});
  }
  const auto& verified = std::get<VerifiedToken>(result);
  // Cached under the key and the options that verified it: it answers while both are in force.
  const std::uint64_t tag = cache_tag(verified.key, *current);
  const std::int64_t subject = verified.staff_id ? TokenCache::kStaffMember : verified.student_id;
  if (digest && keys_in_force_.contains(tag)) {
    cache.insert(*digest, {subject, verified.expires_at, tag}, now_unix_seconds);
  }
  if (verified.staff_id) return StaffMember{*verified.staff_id};
  return verified.student_id;
}

AuthResult Authenticator::staff_from_hit(std::string_view token) const {
  // The cache entry holds no staff id: an id is a string of any length (a Keycloak UUID, Auth0's
  // "auth0|..."), and the cache's entries are 56 bytes whatever the token, written without an
  // allocation and read without a lock. A hit proves these bytes are the token verified (its
  // 128-bit keyed digest matched), so the id is read again from its payload: a base64url decode
  // and a JSON parse, only for staff members, whose requests (exports, reads) are few.
  const auto current = verifier();
  if (current) {
    if (auto id = current->staff_id_of(token)) return StaffMember{std::move(*id)};
  }
  return reject(TokenError::bad_staff_id);
}

AuthResult Authenticator::reject(TokenError reason,
                                 std::chrono::seconds retry_after) const noexcept {
  rejections_[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  return AuthFailure{reason, retry_after};
}

std::string www_authenticate(TokenError reason, std::string_view realm) {
  std::string value = "Bearer";
  if (!realm.empty()) {
    value += " realm=\"";
    for (const char c : realm) {
      if (c == '"' || c == '\\') value += '\\';
      value += c;
    }
    value += '"';
  }
  // RFC 6750 section 3.1: a request without credentials gets no error code.
  if (reason == TokenError::missing) return value;
  value += realm.empty() ? " " : ", ";
  value += "error=\"invalid_token\", error_description=\"";
  value += describe(reason);
  value += '"';
  return value;
}

}  // namespace attempts::auth
