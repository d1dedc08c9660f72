#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "attempts/auth/jwks.hpp"
#include "attempts/auth/staff_rule.hpp"

namespace attempts::auth {

// Why a request is not authenticated. Each value has its own description (describe) and its
// own rejection counter.
enum class TokenError : std::uint8_t {
  missing,                // no Authorization header, or a scheme other than Bearer
  too_large,              // longer than VerifierOptions::max_token_bytes
  malformed,              // not header.payload.signature, or not JSON objects, or a bad header
  bad_base64url,          // a part is not strict unpadded base64url
  algorithm_none,         // alg "none", in any case: unsigned tokens are never accepted
  unsupported_algorithm,  // an alg other than HS256, RS256, ES256, EdDSA
  critical_header,        // a "crit" header: no extension is understood
  unknown_key,            // no key with that kid, or without kid not exactly one for that alg
  algorithm_mismatch,     // the header's alg is not the one the key verifies
  bad_signature,
  missing_expiry,  // no exp claim
  expired,
  not_yet_valid,     // nbf in the future
  issued_in_future,  // iat in the future
  invalid_claim,     // exp, nbf, iat not integers; aud or iss of the wrong type
  wrong_issuer,
  wrong_audience,
  bad_subject,   // sub not a string holding a positive decimal int64 without sign or zeros
  bad_staff_id,  // a staff member's token without the staff id claim (StaffRule::id_claim)
};
inline constexpr std::size_t kTokenErrorCount =
    static_cast<std::size_t>(TokenError::bad_staff_id) + 1;

// The RFC 6750 error_description for a rejection: short, without quotes or backslashes.
std::string_view describe(TokenError error) noexcept;
// A stable snake_case name, for metric labels and logs ("expired", "bad_signature"...).
std::string_view name(TokenError error) noexcept;

struct VerifiedToken {
  std::int64_t student_id = 0;  // 0 for a staff member's token
  std::int64_t expires_at = 0;  // the exp claim, Unix seconds, without leeway
  std::uint64_t key = 0;        // the fingerprint of the key that verified it
  // Set for a token the staff rule grants: the staff member's id (StaffRule::id_claim). Such a
  // token is never a student's, whatever its student claim says.
  std::optional<std::string> staff_id;

  friend bool operator==(const VerifiedToken&, const VerifiedToken&) = default;
};

using VerifyResult = std::variant<VerifiedToken, TokenError>;

struct VerifierOptions {
  // When set, the iss claim must equal it.
  std::optional<std::string> issuer;
  // When set, the aud claim (a string or an array of strings) must contain it.
  std::optional<std::string> audience;
  // Clock skew tolerated on exp, nbf and iat. Negative values count as zero.
  std::chrono::seconds leeway{30};
  // Longer tokens are refused before any parsing.
  std::size_t max_token_bytes = 4096;
  // The claim that holds the student id: a positive integer that fits PostgreSQL's bigint, as a
  // JSON number or a decimal string (identity providers put a UUID or their own id in sub, and
  // the student id in a claim of their own).
  std::string student_claim = "sub";
  // Which tokens are a staff member's (off unless a claim is named).
  StaffRule staff;
};

// Verifies JWS compact tokens (RFC 7515, 7519) against a key set, following RFC 8725: the
// algorithm comes from the key, never from the token; claims are read only once the signature
// holds. Built once and immutable, so one instance serves every thread.
class TokenVerifier {
 public:
  TokenVerifier(std::shared_ptr<const KeySet> keys, VerifierOptions options);
  ~TokenVerifier();
  TokenVerifier(const TokenVerifier&) = delete;
  TokenVerifier& operator=(const TokenVerifier&) = delete;

  // `now_unix_seconds` is the one clock every time claim is compared with.
  VerifyResult verify(std::string_view token, std::int64_t now_unix_seconds) const;

  // The staff id of a token verify() has accepted as a staff member's, read from its payload
  // again without checking anything else: the caller knows the token was verified (the token
  // cache holds its digest). nullopt if the payload does not name one.
  std::optional<std::string> staff_id_of(std::string_view verified_token) const;

  const VerifierOptions& options() const noexcept { return options_; }
  // Names the options (issuer, audience, leeway, size limit): verifiers with equal options
  // have equal values, so that a cache can tell whether a token was verified under these.
  std::uint64_t options_fingerprint() const noexcept { return options_fingerprint_; }
  const KeySet& keys() const noexcept { return *keys_; }

 private:
  struct Digests;

  bool signature_holds(const VerificationKey& key, std::string_view signing_input,
                       std::string_view signature) const;

  std::shared_ptr<const KeySet> keys_;
  VerifierOptions options_;
  std::unique_ptr<const Digests> digests_;  // OpenSSL algorithms, fetched once
  std::uint64_t options_fingerprint_ = 0;
};

}  // namespace attempts::auth
