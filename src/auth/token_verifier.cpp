#include "attempts/auth/token_verifier.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "attempts/auth/base64url.hpp"
#include "attempts/domain/attempt_id.hpp"
#include "auth/openssl_handles.hpp"

namespace attempts::auth {
namespace {

using json = nlohmann::json;

constexpr std::size_t kSha256Bytes = 32;
// RFC 7518 section 3.4: an ES256 signature is R and S, each 32 bytes, concatenated.
constexpr std::size_t kEs256CoordinateBytes = 32;
constexpr std::size_t kMaxEs256DerBytes = 72;

// A time compared with the clock plus or minus the leeway must not wrap around.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t sum = 0;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<std::int64_t>::max()
               : std::numeric_limits<std::int64_t>::min();
}

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    const auto lower = [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    return lower(x) == lower(y);
  });
}

// A NumericDate claim (RFC 7519 section 2), restricted to integers that fit in 64 bits.
struct TimeClaim {
  bool present = false;
  bool valid = false;
  std::int64_t value = 0;
};

TimeClaim time_claim(const json& claims, const char* name) {
  const auto found = claims.find(name);
  if (found == claims.end()) return {};
  if (found->is_number_unsigned()) {
    const auto value = found->get<std::uint64_t>();
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return {true, false, 0};
    }
    return {true, true, static_cast<std::int64_t>(value)};
  }
  if (found->is_number_integer()) return {true, true, found->get<std::int64_t>()};
  return {true, false, 0};  // a string, a fraction, an exponent, a number beyond 64 bits...
}

// The student id in claim `name`: a decimal string (as sub must be, RFC 7519) or a JSON integer,
// positive and within a bigint. A fraction or an exponent (42.0, 4.2e1) is not an id.
std::optional<std::int64_t> student_claim(const json& claims, const std::string& name) {
  const auto found = claims.find(name);
  if (found == claims.end()) return std::nullopt;
  if (found->is_string()) return parse_positive_decimal(found->get_ref<const std::string&>());
  if (found->is_number_unsigned()) {
    const auto value = found->get<std::uint64_t>();
    if (value == 0 ||
        value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(value);
  }
  // nlohmann reads a non-negative integer as unsigned: a signed one here is negative.
  return std::nullopt;
}

// The claims checked after the signature: times first, then iss, aud and the student claim.
VerifyResult check_claims(const json& claims, const VerifierOptions& options, std::int64_t now) {
  const std::int64_t leeway = options.leeway.count();
  const TimeClaim expiry = time_claim(claims, "exp");
  if (!expiry.present) return TokenError::missing_expiry;
  if (!expiry.valid) return TokenError::invalid_claim;
  if (now > saturating_add(expiry.value, leeway)) return TokenError::expired;
  if (const TimeClaim not_before = time_claim(claims, "nbf"); not_before.present) {
    if (!not_before.valid) return TokenError::invalid_claim;
    if (saturating_add(now, leeway) < not_before.value) return TokenError::not_yet_valid;
  }
  if (const TimeClaim issued = time_claim(claims, "iat"); issued.present) {
    if (!issued.valid) return TokenError::invalid_claim;
    if (issued.value > saturating_add(now, leeway)) return TokenError::issued_in_future;
  }

  if (options.issuer) {
    const auto issuer = claims.find("iss");
    if (issuer == claims.end()) return TokenError::wrong_issuer;
    if (!issuer->is_string()) return TokenError::invalid_claim;
    if (issuer->get_ref<const std::string&>() != *options.issuer) return TokenError::wrong_issuer;
  }
  if (options.audience) {
    const auto audience = claims.find("aud");
    if (audience == claims.end()) return TokenError::wrong_audience;
    if (audience->is_string()) {
      if (audience->get_ref<const std::string&>() != *options.audience) {
        return TokenError::wrong_audience;
      }
    } else if (audience->is_array()) {
      bool found = false;
      for (const auto& member : *audience) {
        if (!member.is_string()) return TokenError::invalid_claim;
        found = found || member.get_ref<const std::string&>() == *options.audience;
      }
      if (!found) return TokenError::wrong_audience;
    } else {
      return TokenError::invalid_claim;
    }
  }

  // A staff member's token is never a student's: its sub is usually the provider's own id.
  if (grants_staff_role(claims, options.staff)) {
    auto staff_id = staff_id_claim(claims, options.staff);
    if (!staff_id) return TokenError::bad_staff_id;
    return VerifiedToken{0, expiry.value, 0, std::move(staff_id)};
  }
  const auto student_id = student_claim(claims, options.student_claim);
  if (!student_id) return TokenError::bad_subject;
  return VerifiedToken{*student_id, expiry.value, 0, std::nullopt};
}

bool digest_verify(EVP_PKEY* key, const EVP_MD* digest, bool pkcs1_padding,
                   std::string_view signing_input, const unsigned char* signature,
                   std::size_t signature_size) {
  const openssl::MdCtxPtr context(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_context = nullptr;  // owned by `context`
  const bool holds =
      context && EVP_DigestVerifyInit(context.get(), &key_context, digest, nullptr, key) == 1 &&
      (!pkcs1_padding || EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) == 1) &&
      EVP_DigestVerify(context.get(), signature, signature_size,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) == 1;
  if (!holds) ERR_clear_error();
  return holds;
}

// The DER encoding (an ASN.1 SEQUENCE of two INTEGERs) that OpenSSL verifies, from the JWS's
// fixed-size R || S. Empty when the signature does not have the JWS size.
std::string es256_der_signature(std::string_view raw) {
  if (raw.size() != 2 * kEs256CoordinateBytes) return {};
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  openssl::BignumPtr r(BN_bin2bn(bytes, kEs256CoordinateBytes, nullptr));
  openssl::BignumPtr s(BN_bin2bn(bytes + kEs256CoordinateBytes, kEs256CoordinateBytes, nullptr));
  const openssl::EcdsaSigPtr signature(ECDSA_SIG_new());
  if (!r || !s || !signature || ECDSA_SIG_set0(signature.get(), r.get(), s.get()) != 1) {
    ERR_clear_error();
    return {};
  }
  r.release();  // owned by `signature` now
  s.release();
  std::string der(kMaxEs256DerBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  const int size = i2d_ECDSA_SIG(signature.get(), nullptr);
  if (size <= 0 || static_cast<std::size_t>(size) > der.size() ||
      i2d_ECDSA_SIG(signature.get(), &out) != size) {
    ERR_clear_error();
    return {};
  }
  der.resize(static_cast<std::size_t>(size));
  return der;
}

}  // namespace

std::string_view describe(TokenError error) noexcept {
  switch (error) {
    case TokenError::missing:
      return "No bearer token";
    case TokenError::too_large:
      return "The token is too large";
    case TokenError::malformed:
      return "The token is malformed";
    case TokenError::bad_base64url:
      return "The token is not valid base64url";
    case TokenError::algorithm_none:
      return "Unsigned tokens are not accepted";
    case TokenError::unsupported_algorithm:
      return "The token algorithm is not supported";
    case TokenError::critical_header:
      return "The token has critical header parameters";
    case TokenError::unknown_key:
      return "The token key is unknown";
    case TokenError::algorithm_mismatch:
      return "The token algorithm does not match its key";
    case TokenError::bad_signature:
      return "The token signature is invalid";
    case TokenError::missing_expiry:
      return "The token has no expiry";
    case TokenError::expired:
      return "The token has expired";
    case TokenError::not_yet_valid:
      return "The token is not valid yet";
    case TokenError::issued_in_future:
      return "The token is issued in the future";
    case TokenError::invalid_claim:
      return "The token has an invalid claim";
    case TokenError::wrong_issuer:
      return "The token issuer is not accepted";
    case TokenError::wrong_audience:
      return "The token audience is not accepted";
    case TokenError::bad_subject:
      return "The token subject is not a student id";
    case TokenError::bad_staff_id:
      return "The staff token does not name its staff member";
  }
  return "The token is invalid";
}

std::string_view name(TokenError error) noexcept {
  switch (error) {
    case TokenError::missing:
      return "missing";
    case TokenError::too_large:
      return "too_large";
    case TokenError::malformed:
      return "malformed";
    case TokenError::bad_base64url:
      return "bad_base64url";
    case TokenError::algorithm_none:
      return "algorithm_none";
    case TokenError::unsupported_algorithm:
      return "unsupported_algorithm";
    case TokenError::critical_header:
      return "critical_header";
    case TokenError::unknown_key:
      return "unknown_key";
    case TokenError::algorithm_mismatch:
      return "algorithm_mismatch";
    case TokenError::bad_signature:
      return "bad_signature";
    case TokenError::missing_expiry:
      return "missing_expiry";
    case TokenError::expired:
      return "expired";
    case TokenError::not_yet_valid:
      return "not_yet_valid";
    case TokenError::issued_in_future:
      return "issued_in_future";
    case TokenError::invalid_claim:
      return "invalid_claim";
    case TokenError::wrong_issuer:
      return "wrong_issuer";
    case TokenError::wrong_audience:
      return "wrong_audience";
    case TokenError::bad_subject:
      return "bad_subject";
    case TokenError::bad_staff_id:
      return "bad_staff_id";
  }
  return "unknown";
}

struct TokenVerifier::Digests {
  openssl::MdPtr sha256;
  openssl::MacPtr hmac;
};

TokenVerifier::TokenVerifier(std::shared_ptr<const KeySet> keys, VerifierOptions options)
    : keys_(std::move(keys)), options_(std::move(options)) {
  if (!keys_) throw std::invalid_argument("TokenVerifier needs a key set");
  options_.leeway = std::max(options_.leeway, std::chrono::seconds{0});
  // Fetched once: an implicit fetch on every verification would cost a lookup under a lock.
  auto digests = std::make_unique<Digests>();
  digests->sha256.reset(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  digests->hmac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!digests->sha256 || !digests->hmac) {
    throw std::runtime_error("OpenSSL has no SHA256 or HMAC: " + openssl::take_error());
  }
  digests_ = std::move(digests);
  // Each option with a marker of whether it is set, so that no two settings spell alike.
  std::string options_text = std::to_string(options_.leeway.count()) + '\0' +
                             std::to_string(options_.max_token_bytes) + '\0';
  for (const auto& option :
       {options_.issuer, options_.audience, std::optional<std::string>(options_.student_claim),
        std::optional<std::string>(options_.staff.claim),
        std::optional<std::string>(options_.staff.role),
        std::optional<std::string>(options_.staff.id_claim)}) {
    options_text += option ? "1" + *option : "0";
    options_text += '\0';
  }
  options_fingerprint_ = std::hash<std::string>{}(options_text);
}

TokenVerifier::~TokenVerifier() = default;

VerifyResult TokenVerifier::verify(std::string_view token, std::int64_t now_unix_seconds) const {
  if (token.size() > options_.max_token_bytes) return TokenError::too_large;

  // JWS compact serialization: exactly three non-empty parts (a JWE has five).
  const std::size_t first_dot = token.find('.');
  const std::size_t second_dot =
      first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos ||
      token.find('.', second_dot + 1) != std::string_view::npos) {
    return TokenError::malformed;
  }
  const std::string_view header_part = token.substr(0, first_dot);
  const std::string_view payload_part = token.substr(first_dot + 1, second_dot - first_dot - 1);
  const std::string_view signature_part = token.substr(second_dot + 1);
  // An empty signature is what an unsigned (`alg: none`) token has: refused below, once the
  // header says which it is, so that it is counted as what it is.
  if (header_part.empty() || payload_part.empty()) return TokenError::malformed;
  const auto header_bytes = base64url_decode(header_part);
  const auto payload_bytes = base64url_decode(payload_part);
  const auto signature = base64url_decode(signature_part);
  if (!header_bytes || !payload_bytes || !signature) return TokenError::bad_base64url;

  // nlohmann's parser takes a NUL byte for the end of the input, which would let bytes after
  // it through unread; JSON text never contains one.
  if (header_bytes->find('\0') != std::string::npos ||
      payload_bytes->find('\0') != std::string::npos) {
    return TokenError::malformed;
  }
  const json header = json::parse(*header_bytes, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return TokenError::malformed;
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) return TokenError::malformed;
  const auto& alg_name = alg->get_ref<const std::string&>();
  if (equals_ignoring_case(alg_name, "none")) return TokenError::algorithm_none;
  if (signature_part.empty()) return TokenError::malformed;
  const auto algorithm = algorithm_from_name(alg_name);
  if (!algorithm) return TokenError::unsupported_algorithm;
  // RFC 7515 section 4.1.11: extensions listed in crit must be understood; none are.
  if (header.contains("crit")) return TokenError::critical_header;

  const VerificationKey* key = nullptr;
  if (const auto kid = header.find("kid"); kid != header.end()) {
    if (!kid->is_string()) return TokenError::malformed;
    key = keys_->find(kid->get_ref<const std::string&>());
  } else {
    // Without a kid, only an unambiguous choice: the one key for that algorithm.
    for (const auto& candidate : keys_->keys()) {
      if (candidate.algorithm != *algorithm) continue;
      if (key != nullptr) return TokenError::unknown_key;
      key = &candidate;
    }
  }
  if (key == nullptr) return TokenError::unknown_key;
  // The algorithm comes from the key: a token cannot pick how its signature is checked.
  if (key->algorithm != *algorithm) return TokenError::algorithm_mismatch;

  const std::string_view signing_input = token.substr(0, second_dot);
  if (!signature_holds(*key, signing_input, *signature)) return TokenError::bad_signature;

  const json claims = json::parse(*payload_bytes, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return TokenError::malformed;
  VerifyResult result = check_claims(claims, options_, now_unix_seconds);
  if (auto* verified = std::get_if<VerifiedToken>(&result)) verified->key = key->fingerprint;
  return result;
}

std::optional<std::string> TokenVerifier::staff_id_of(std::string_view verified_token) const {
  const std::size_t first_dot = verified_token.find('.');
  const std::size_t second_dot =
      first_dot == std::string_view::npos ? first_dot : verified_token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos) return std::nullopt;
  const auto payload =
      base64url_decode(verified_token.substr(first_dot + 1, second_dot - first_dot - 1));
  if (!payload || payload->find('\0') != std::string::npos) return std::nullopt;
  const json claims = json::parse(*payload, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return std::nullopt;
  return staff_id_claim(claims, options_.staff);
}

bool TokenVerifier::signature_holds(const VerificationKey& key, std::string_view signing_input,
                                    std::string_view signature) const {
  const auto* signature_bytes = reinterpret_cast<const unsigned char*>(signature.data());
  switch (key.algorithm) {
    case Algorithm::hs256: {
      if (signature.size() != kSha256Bytes) return false;
      const openssl::MacCtxPtr context(EVP_MAC_CTX_new(digests_->hmac.get()));
      char digest_name[] = "SHA256";
      const OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
          OSSL_PARAM_construct_end()};
      unsigned char mac[EVP_MAX_MD_SIZE];
      std::size_t mac_size = 0;
      if (!context ||
          EVP_MAC_init(context.get(), key.hmac_secret.data(), key.hmac_secret.size(), params) !=
              1 ||
          EVP_MAC_update(context.get(),
                         reinterpret_cast<const unsigned char*>(signing_input.data()),
                         signing_input.size()) != 1 ||
          EVP_MAC_final(context.get(), mac, &mac_size, sizeof mac) != 1) {
        ERR_clear_error();
        return false;
      }
      // Constant time, so that the comparison does not tell how many leading bytes were right.
      return mac_size == signature.size() && CRYPTO_memcmp(mac, signature_bytes, mac_size) == 0;
    }
    case Algorithm::rs256:
      return digest_verify(key.public_key.get(), digests_->sha256.get(), /*pkcs1_padding=*/true,
                           signing_input, signature_bytes, signature.size());
    case Algorithm::es256: {
      // A DER signature (what OpenSSL itself produces) is not a JWS signature: refused by size.
      const std::string der = es256_der_signature(signature);
      if (der.empty()) return false;
      return digest_verify(key.public_key.get(), digests_->sha256.get(), /*pkcs1_padding=*/false,
                           signing_input, reinterpret_cast<const unsigned char*>(der.data()),
                           der.size());
    }
    case Algorithm::eddsa:
      // Ed25519 hashes internally: no digest (RFC 8037 section 3.1).
      return digest_verify(key.public_key.get(), nullptr, /*pkcs1_padding=*/false, signing_input,
                           signature_bytes, signature.size());
  }
  return false;
}

}  // namespace attempts::auth
