// libFuzzer target: arbitrary bytes through TokenVerifier and Authenticator, with fixed keys of
// all four kinds (the published test keys of tools/token/insecure_test_keys.cpp).
//
// An input that starts with '{' is a claims payload: it is signed (header {"alg", "kid"} of the
// key chosen by the input's length), so that the fuzzer explores the claim checks behind a valid
// signature. A NUL byte in it splits a header of the fuzzer's own before the payload. Any other
// input is a token as is, and also an Authorization header value.
//
// Invariants (a violation prints what broke and aborts, which libFuzzer reports as a crash):
//   - a success means a valid signature: the header parses (independently) to a supported alg,
//     no crit, a kid naming a key of that alg (or none, and one key of that alg), and the
//     signature is the one the matching private key makes (HS256, RS256 and EdDSA are
//     deterministic) or verifies under the private key's own EVP_PKEY (ES256);
//   - a success agrees with the claims: sub is the student id (positive, a decimal string or a
//     JSON integer), expires_at is exp, now is within exp/nbf/iat and the leeway, iss and aud
//     are the configured ones;
//   - for a signed payload under the default header, the verdict equals an independent reading of
//     the claims (integer arithmetic in 128 bits, not the verifier's saturating additions);
//   - verify() is deterministic, and the Authenticator agrees with it, through its cache too
//     (a second call is a hit, with the same answer).

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/base64url.hpp"
#include "attempts/auth/jwks.hpp"
#include "attempts/auth/token_cache.hpp"
#include "attempts/auth/token_verifier.hpp"
#include "token/insecure_test_keys.hpp"
#include "token/token_tools.hpp"

namespace {

using json = nlohmann::json;
using namespace attempts::auth;

constexpr std::int64_t kNow = 1'700'000'000;
constexpr std::int64_t kLeeway = 30;
constexpr const char* kIssuer = "https://issuer.example";
constexpr const char* kAudience = "attempts";
// Signing keys for payload inputs, by length: RSA signing costs a millisecond, so it gets one in 8.
constexpr const char* kSigningKids[] = {"test-hs256", "test-es256", "test-eddsa", "test-hs256",
                                        "test-es256", "test-eddsa", "test-hs256", "test-rs256"};

struct Fixture {
  tools::SigningKeys signing_keys;
  std::shared_ptr<const TokenVerifier> verifier;
  std::unique_ptr<Authenticator> authenticator;
};

const Fixture& fixture() {
  static const Fixture* instance = [] {
    auto* made = new Fixture;
    const json private_jwks = json::parse(tools::insecure_test_private_jwks());
    made->signing_keys = tools::signing_keys_from_jwks(private_jwks);
    json public_jwks = {{"keys", json::array()}};
    for (const auto& jwk : private_jwks["keys"])
      public_jwks["keys"].push_back(tools::public_jwk(jwk));
    auto parsed = KeySet::parse(public_jwks.dump(), KeyOrigin::file);
    auto keys = std::make_shared<const KeySet>(std::move(std::get<LoadedKeySet>(parsed).key_set));
    VerifierOptions options;
    options.issuer = kIssuer;
    options.audience = kAudience;
    options.leeway = std::chrono::seconds(kLeeway);
    made->verifier = std::make_shared<const TokenVerifier>(keys, options);
    made->authenticator = std::make_unique<Authenticator>(made->verifier);
    return made;
  }();
  return *instance;
}

[[noreturn]] void violated(const char* what, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "fuzz_token: INVARIANT VIOLATED: %s\n  detail: %s\n  input (%zu bytes)\n",
               what, detail.c_str(), input.size());
  std::abort();
}

#define CHECK(cond, detail)                                   \
  do {                                                        \
    if (!(cond)) violated(#cond, input, std::string(detail)); \
  } while (false)

std::string describe_result(const VerifyResult& result) {
  if (const auto* error = std::get_if<TokenError>(&result)) return std::string(name(*error));
  const auto& ok = std::get<VerifiedToken>(result);
  return "student " + std::to_string(ok.student_id) + " until " + std::to_string(ok.expires_at);
}

std::optional<std::int64_t> integer(const json& value) {
  if (value.is_number_unsigned()) {
    const auto unsigned_value = value.get<std::uint64_t>();
    if (unsigned_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(unsigned_value);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  return std::nullopt;
}

bool is_student_id(const std::string& text) {
  if (text.empty() || text.size() > 19 || text[0] < '1' || text[0] > '9') return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return text.size() < 19 || text <= "9223372036854775807";
}

// The verdict on a claims object, read independently of the verifier.
VerifyResult expected_for_claims(const json& claims) {
  using Wide = __int128;
  const auto exp = claims.find("exp");
  if (exp == claims.end()) return TokenError::missing_expiry;
  const auto expiry = integer(*exp);
  if (!expiry) return TokenError::invalid_claim;
  if (Wide{kNow} > Wide{*expiry} + kLeeway) return TokenError::expired;
  if (const auto nbf = claims.find("nbf"); nbf != claims.end()) {
    const auto not_before = integer(*nbf);
    if (!not_before) return TokenError::invalid_claim;
    if (Wide{kNow} + kLeeway < Wide{*not_before}) return TokenError::not_yet_valid;
  }
  if (const auto iat = claims.find("iat"); iat != claims.end()) {
    const auto issued = integer(*iat);
    if (!issued) return TokenError::invalid_claim;
    if (Wide{*issued} > Wide{kNow} + kLeeway) return TokenError::issued_in_future;
  }
  const auto iss = claims.find("iss");
  if (iss == claims.end()) return TokenError::wrong_issuer;
  if (!iss->is_string()) return TokenError::invalid_claim;
  if (*iss != kIssuer) return TokenError::wrong_issuer;
  const auto aud = claims.find("aud");
  if (aud == claims.end()) return TokenError::wrong_audience;
  if (aud->is_array()) {
    bool found = false;
    for (const auto& member : *aud) {
      if (!member.is_string()) return TokenError::invalid_claim;
      found = found || member == kAudience;
    }
    if (!found) return TokenError::wrong_audience;
  } else if (!aud->is_string()) {
    return TokenError::invalid_claim;
  } else if (*aud != kAudience) {
    return TokenError::wrong_audience;
  }
  // The student claim (sub here): a decimal string, or a JSON integer, positive, within int64.
  const auto sub = claims.find("sub");
  if (sub == claims.end()) return TokenError::bad_subject;
  if (sub->is_string()) {
    if (!is_student_id(sub->get<std::string>())) return TokenError::bad_subject;
    return VerifiedToken{std::stoll(sub->get<std::string>()), *expiry};
  }
  const auto student = integer(*sub);
  if (!student || *student <= 0) return TokenError::bad_subject;
  return VerifiedToken{*student, *expiry};
}

bool signature_is_the_keys(const tools::SigningKey& key, std::string_view signing_input,
                           const std::string& signature) {
  if (key.algorithm != Algorithm::es256) return tools::sign(key, signing_input) == signature;
  // ECDSA signatures are randomized: verify under the private key's own EVP_PKEY instead.
  if (signature.size() != 64) return false;
  const std::string der = tools::ecdsa_raw_to_der(signature);
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  const bool holds =
      EVP_DigestVerifyInit(context, nullptr, EVP_sha256(), nullptr, key.private_key.get()) == 1 &&
      EVP_DigestVerify(context, reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) == 1;
  EVP_MD_CTX_free(context);
  return holds;
}

// What every success must satisfy, whatever produced the token.
void check_success(std::string_view input, std::string_view token, const VerifiedToken& verified) {
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  CHECK(first != std::string_view::npos && second != std::string_view::npos &&
            token.find('.', second + 1) == std::string_view::npos,
        "accepted a token without three parts");
  const auto header_bytes = base64url_decode(token.substr(0, first));
  const auto payload_bytes = base64url_decode(token.substr(first + 1, second - first - 1));
  const auto signature = base64url_decode(token.substr(second + 1));
  CHECK(header_bytes && payload_bytes && signature, "accepted a part that is not base64url");
  CHECK(header_bytes->find('\0') == std::string::npos &&
            payload_bytes->find('\0') == std::string::npos,
        "accepted a NUL byte, where nlohmann's parser stops reading");
  const json header = json::parse(*header_bytes, nullptr, false);
  const json claims = json::parse(*payload_bytes, nullptr, false);
  CHECK(header.is_object() && claims.is_object(), "accepted a non-object header or payload");
  CHECK(!header.contains("crit"), "accepted a crit header");
  CHECK(header.contains("alg") && header["alg"].is_string(), "accepted a header without alg");
  const auto algorithm = algorithm_from_name(header["alg"].get<std::string>());
  CHECK(algorithm.has_value(), "accepted alg " + header["alg"].dump());

  const tools::SigningKey* key = nullptr;
  if (header.contains("kid")) {
    CHECK(header["kid"].is_string(), "accepted a non-string kid");
    const auto found = fixture().signing_keys.find(header["kid"].get<std::string>());
    CHECK(found != fixture().signing_keys.end(), "accepted unknown kid " + header["kid"].dump());
    key = &found->second;
  } else {
    // Without kid, the one key of that algorithm (the fixed set has one of each).
    for (const auto& [kid, candidate] : fixture().signing_keys) {
      if (candidate.algorithm == *algorithm) key = &candidate;
    }
  }
  CHECK(key->algorithm == *algorithm,
        "accepted alg " + header["alg"].dump() + " for kid " + key->kid);
  CHECK(signature_is_the_keys(*key, token.substr(0, second), *signature),
        "accepted a signature that the key " + key->kid + " did not make");

  const auto* verifying_key = fixture().verifier->keys().find(key->kid);
  CHECK(verifying_key != nullptr && verified.key == verifying_key->fingerprint,
        "the token names another key than " + key->kid);
  VerifiedToken claimed = verified;
  claimed.key = 0;  // the claims say nothing of the key
  const VerifyResult expected = expected_for_claims(claims);
  CHECK(expected == VerifyResult(claimed),
        "accepted as " + describe_result(verified) + ", claims say " + describe_result(expected));
  CHECK(verified.student_id > 0, describe_result(verified));
}

// The Authenticator must give verify()'s answer for `header_value`, twice (miss, then hit).
// `known` is that answer when the caller already has it for the bearer token.
void check_authenticator(std::string_view input, std::string_view header_value,
                         const VerifyResult* known = nullptr) {
  const auto bearer = bearer_token(header_value);
  VerifyResult expected = TokenError::missing;
  if (const auto* error = std::get_if<TokenError>(&bearer)) {
    expected = *error;
  } else if (known != nullptr) {
    expected = *known;
  } else {
    expected = fixture().verifier->verify(std::get<std::string_view>(bearer), kNow);
  }
  TokenCache cache({.capacity = 64});
  for (int call = 0; call < 2; ++call) {
    const AuthResult result =
        fixture().authenticator->authenticate(header_value, cache.reader(), kNow);
    if (const auto* student = std::get_if<std::int64_t>(&result)) {
      const auto* verified = std::get_if<VerifiedToken>(&expected);
      CHECK(verified != nullptr && verified->student_id == *student,
            "authenticated student " + std::to_string(*student) + ", verify says " +
                describe_result(expected));
    } else {
      const auto* error = std::get_if<TokenError>(&expected);
      CHECK(error != nullptr && *error == std::get<AuthFailure>(result).reason,
            "authentication failed with " +
                std::string(name(std::get<AuthFailure>(result).reason)) + ", verify says " +
                describe_result(expected));
    }
  }
  CHECK(cache.hits() == (std::holds_alternative<VerifiedToken>(expected) ? 1u : 0u),
        "cache hits " + std::to_string(cache.hits()));
  const std::string challenge =
      www_authenticate(std::holds_alternative<TokenError>(expected) ? std::get<TokenError>(expected)
                                                                    : TokenError::missing);
  CHECK(challenge.rfind("Bearer", 0) == 0, challenge);
}

VerifyResult check_token(std::string_view input, std::string_view token) {
  const VerifyResult result = fixture().verifier->verify(token, kNow);
  CHECK(result == fixture().verifier->verify(token, kNow), "verify is not deterministic");
  if (const auto* verified = std::get_if<VerifiedToken>(&result)) {
    check_success(input, token, *verified);
  }
  const std::string header_value = "Bearer " + std::string(token);
  // When the token is token68 the header carries exactly it, so verify()'s answer applies.
  check_authenticator(input, header_value, &result);
  return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.empty() || input.front() != '{') {
    check_token(input, input);
    check_authenticator(input, input);
    return 0;
  }

  // A payload to sign, perhaps after a header of its own.
  const tools::SigningKey& key = fixture().signing_keys.at(kSigningKids[size % 8]);
  const std::size_t nul = input.find('\0');
  const std::string header =
      nul == std::string_view::npos
          ? json{{"alg", algorithm_name(key.algorithm)}, {"kid", key.kid}}.dump()
          : std::string(input.substr(0, nul));
  const std::string_view payload = nul == std::string_view::npos ? input : input.substr(nul + 1);
  const std::string signing_input = base64url_encode(header) + "." + base64url_encode(payload);
  const std::string token = signing_input + "." + base64url_encode(tools::sign(key, signing_input));
  check_token(input, token);
  if (nul == std::string_view::npos &&
      token.size() <= fixture().verifier->options().max_token_bytes) {
    // Signed correctly under the default header: the verdict is the claims' alone.
    const json claims = json::parse(payload, nullptr, false);
    const VerifyResult expected =
        claims.is_object() ? expected_for_claims(claims) : VerifyResult(TokenError::malformed);
    VerifyResult result = fixture().verifier->verify(token, kNow);
    // The claims say nothing of the key; that it is the signing key's is checked above.
    if (auto* verified = std::get_if<VerifiedToken>(&result)) verified->key = 0;
    CHECK(result == expected,
          "verify says " + describe_result(result) + ", claims say " + describe_result(expected));
  }
  return 0;
}
