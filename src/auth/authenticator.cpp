#include "attempts/auth/authenticator.hpp"

#include <array>
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

}  // namespace

std::variant<std::string_view, TokenError> bearer_token(std::string_view authorization) {
  if (authorization.empty()) return TokenError::missing;
  const std::size_t space = authorization.find(' ');
  const std::string_view scheme = authorization.substr(0, space);
  if (!is_bearer_scheme(scheme)) return TokenError::missing;
  if (space == std::string_view::npos) return TokenError::malformed;
  const std::string_view token = authorization.substr(space + 1);
  if (!is_token68(token)) return TokenError::malformed;
  return token;
}

Authenticator::Authenticator(std::shared_ptr<const TokenVerifier> verifier) {
  if (!verifier) throw std::invalid_argument("Authenticator needs a verifier");
  current_ = Current{std::move(verifier), 1};
  generation_.store(1, std::memory_order_release);
}

void Authenticator::replace(std::shared_ptr<const TokenVerifier> verifier) {
  if (!verifier) throw std::invalid_argument("Authenticator needs a verifier");
  Current previous;  // destroyed after the unlock: it may hold the last reference to its keys
  {
    const std::lock_guard lock(current_mutex_);
    previous = std::exchange(current_, Current{std::move(verifier), current_.generation + 1});
    // After the verifier: a reader that sees the new number and misses finds the new verifier.
    generation_.store(current_.generation, std::memory_order_release);
  }
}

Authenticator::Current Authenticator::current() const {
  const std::lock_guard lock(current_mutex_);
  return current_;
}

AuthResult Authenticator::authenticate(std::string_view authorization, TokenCache& cache,
                                       std::int64_t now_unix_seconds) const {
  const auto token = bearer_token(authorization);
  if (const auto* error = std::get_if<TokenError>(&token)) return reject(*error);
  const std::string_view bearer = std::get<std::string_view>(token);

  // Entries verified with keys that have since been replaced must not answer.
  const std::uint64_t generation = generation_.load(std::memory_order_acquire);
  if (cache.generation() != generation) cache.reset(generation);
  if (const auto hit = cache.find(bearer, now_unix_seconds)) return hit->student_id;

  const Current current = this->current();
  // The cache takes the generation of the verifier that fills it, even if replace() runs now.
  if (cache.generation() != current.generation) cache.reset(current.generation);
  const VerifyResult result = current.verifier->verify(bearer, now_unix_seconds);
  if (const auto* error = std::get_if<TokenError>(&result)) return reject(*error);
  const auto& verified = std::get<VerifiedToken>(result);
  cache.insert(bearer, verified, now_unix_seconds);
  return verified.student_id;
}

AuthResult Authenticator::reject(TokenError reason) const noexcept {
  rejections_[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  return AuthFailure{reason};
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
