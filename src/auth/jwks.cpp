#include "attempts/auth/jwks.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "attempts/auth/base64url.hpp"
#include "auth/openssl_handles.hpp"

namespace attempts::auth {
namespace {

using json = nlohmann::json;

// A JWKS is configuration written by people; anything larger is a wrong file.
constexpr std::size_t kMaxFileBytes = 1 << 20;
constexpr std::size_t kMinHmacSecretBytes = 32;
constexpr int kMinRsaModulusBits = 2048;
constexpr std::size_t kP256CoordinateBytes = 32;
constexpr std::size_t kEd25519KeyBytes = 32;

// Members that only a private key has (RFC 7518 section 6.3.2 and 6.2.2, RFC 8037).
constexpr std::array<const char*, 7> kPrivateMembers = {"d", "p", "q", "dp", "dq", "qi", "oth"};

// Why a JWK was not taken: a skip is logged and the rest of the set is used; a rejection
// makes the whole document an error.
struct Skip {
  std::string reason;
};
struct Reject {
  std::string reason;
};
using KeyOutcome = std::variant<VerificationKey, Skip, Reject>;

std::string json_string(std::string_view text) {
  return json(text).dump();
}

// A member that must be a string when present. Unset optional: absent; nullopt inside the
// outer optional is impossible, so a wrong type is reported through `error`.
std::optional<std::string> string_member(const json& jwk, const char* name, std::string& error) {
  const auto found = jwk.find(name);
  if (found == jwk.end()) return std::nullopt;
  if (!found->is_string()) {
    error = std::string("\"") + name + "\" is not a string";
    return std::nullopt;
  }
  return found->get<std::string>();
}

// A required base64url member, decoded.
std::variant<std::string, Reject> bytes_member(const json& jwk, const char* name) {
  std::string error;
  const auto text = string_member(jwk, name, error);
  if (!error.empty()) return Reject{error};
  if (!text) return Reject{std::string("\"") + name + "\" is missing"};
  auto bytes = base64url_decode(*text);
  if (!bytes) return Reject{std::string("\"") + name + "\" is not unpadded base64url"};
  if (bytes->empty()) return Reject{std::string("\"") + name + "\" is empty"};
  return std::move(*bytes);
}

EvpPkeyPtr key_from_params(const char* key_type, const OSSL_PARAM* params) {
  const openssl::PkeyCtxPtr context(EVP_PKEY_CTX_new_from_name(nullptr, key_type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!context || EVP_PKEY_fromdata_init(context.get()) != 1 ||
      EVP_PKEY_fromdata(context.get(), &key, EVP_PKEY_PUBLIC_KEY,
                        const_cast<OSSL_PARAM*>(params)) != 1) {
    return nullptr;
  }
  return EvpPkeyPtr(key);
}

// OpenSSL's own validation of a public key: for EC that the point is on the curve and not
// the point at infinity, for RSA the SP 800-56B checks (odd modulus, exponent range...).
bool passes_public_check(EVP_PKEY* key) {
  const openssl::PkeyCtxPtr context(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  return context && EVP_PKEY_public_check(context.get()) == 1;
}

KeyOutcome hmac_key(const json& jwk) {
  auto secret = bytes_member(jwk, "k");
  if (auto* reject = std::get_if<Reject>(&secret)) return std::move(*reject);
  auto& bytes = std::get<std::string>(secret);
  VerificationKey key;
  key.algorithm = Algorithm::hs256;
  key.hmac_secret = SecretBytes(bytes);
  const std::size_t size = bytes.size();
  OPENSSL_cleanse(bytes.data(), bytes.size());
  if (size < kMinHmacSecretBytes) {
    return Reject{"HS256 secret \"k\" is " + std::to_string(size) + " bytes; at least " +
                  std::to_string(kMinHmacSecretBytes) + " are required"};
  }
  return key;
}

KeyOutcome rsa_key(const json& jwk) {
  const auto modulus = bytes_member(jwk, "n");
  if (const auto* reject = std::get_if<Reject>(&modulus)) return *reject;
  const auto exponent = bytes_member(jwk, "e");
  if (const auto* reject = std::get_if<Reject>(&exponent)) return *reject;
  const auto to_bignum = [](const std::string& bytes) {
    return openssl::BignumPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                                        static_cast<int>(bytes.size()), nullptr));
  };
  const auto n = to_bignum(std::get<std::string>(modulus));
  const auto e = to_bignum(std::get<std::string>(exponent));
  const openssl::ParamBuilderPtr builder(OSSL_PARAM_BLD_new());
  if (!n || !e || !builder ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return Reject{"cannot build the RSA key: " + openssl::take_error()};
  }
  const openssl::ParamsPtr params(OSSL_PARAM_BLD_to_param(builder.get()));
  VerificationKey key;
  key.algorithm = Algorithm::rs256;
  key.public_key = params ? key_from_params("RSA", params.get()) : nullptr;
  if (!key.public_key) return Reject{"cannot build the RSA key: " + openssl::take_error()};
  const int bits = EVP_PKEY_get_bits(key.public_key.get());
  if (bits < kMinRsaModulusBits) {
    return Reject{"RSA modulus is " + std::to_string(bits) + " bits; at least " +
                  std::to_string(kMinRsaModulusBits) + " are required"};
  }
  if (!passes_public_check(key.public_key.get())) {
    return Reject{"RSA public key fails validation: " + openssl::take_error()};
  }
  return key;
}

KeyOutcome p256_key(const json& jwk) {
  const auto x = bytes_member(jwk, "x");
  if (const auto* reject = std::get_if<Reject>(&x)) return *reject;
  const auto y = bytes_member(jwk, "y");
  if (const auto* reject = std::get_if<Reject>(&y)) return *reject;
  const auto& x_bytes = std::get<std::string>(x);
  const auto& y_bytes = std::get<std::string>(y);
  // RFC 7518 section 6.2.1.2: each coordinate is the full size of the field, leading zeros kept.
  if (x_bytes.size() != kP256CoordinateBytes || y_bytes.size() != kP256CoordinateBytes) {
    return Reject{"P-256 coordinates \"x\" and \"y\" must be 32 bytes each"};
  }
  // The uncompressed point encoding of SEC 1: 0x04, x, y.
  const std::string point = '\x04' + x_bytes + y_bytes;
  const openssl::ParamBuilderPtr builder(OSSL_PARAM_BLD_new());
  if (!builder ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return Reject{"cannot build the P-256 key: " + openssl::take_error()};
  }
  const openssl::ParamsPtr params(OSSL_PARAM_BLD_to_param(builder.get()));
  VerificationKey key;
  key.algorithm = Algorithm::es256;
  key.public_key = params ? key_from_params("EC", params.get()) : nullptr;
  // OpenSSL refuses to import a point off the curve; the check below says so explicitly.
  if (!key.public_key || !passes_public_check(key.public_key.get())) {
    ERR_clear_error();
    return Reject{"the point (\"x\", \"y\") is not a valid P-256 public key (not on the curve)"};
  }
  return key;
}

KeyOutcome ed25519_key(const json& jwk) {
  const auto x = bytes_member(jwk, "x");
  if (const auto* reject = std::get_if<Reject>(&x)) return *reject;
  const auto& bytes = std::get<std::string>(x);
  if (bytes.size() != kEd25519KeyBytes) return Reject{"Ed25519 \"x\" must be 32 bytes"};
  VerificationKey key;
  key.algorithm = Algorithm::eddsa;
  key.public_key.reset(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(bytes.data()),
      bytes.size()));
  if (!key.public_key || !passes_public_check(key.public_key.get())) {
    return Reject{"cannot build the Ed25519 key: " + openssl::take_error()};
  }
  return key;
}

KeyOutcome parse_key(const json& jwk, KeyOrigin origin) {
  if (!jwk.is_object()) return Reject{"is not a JSON object"};
  std::string error;
  const auto kid = string_member(jwk, "kid", error);
  const auto kty = string_member(jwk, "kty", error);
  const auto use = string_member(jwk, "use", error);
  const auto crv = string_member(jwk, "crv", error);
  const auto alg = string_member(jwk, "alg", error);
  if (!error.empty()) return Reject{error};
  if (kid && kid->empty()) return Reject{"\"kid\" is empty"};
  if (!kty) return Reject{"\"kty\" is missing"};

  // Keys that are for something else than verifying our signatures.
  if (use && *use != "sig") return Skip{"\"use\" is " + json_string(*use) + ", not \"sig\""};
  if (const auto ops = jwk.find("key_ops"); ops != jwk.end()) {
    if (!ops->is_array()) return Reject{"\"key_ops\" is not an array"};
    bool verify = false;
    for (const auto& op : *ops) {
      if (!op.is_string()) return Reject{"\"key_ops\" has a member that is not a string"};
      verify = verify || op.get_ref<const std::string&>() == "verify";
    }
    if (!verify) return Skip{"\"key_ops\" does not contain \"verify\""};
  }

  Algorithm algorithm;
  if (*kty == "oct") {
    algorithm = Algorithm::hs256;
  } else if (*kty == "RSA") {
    algorithm = Algorithm::rs256;
  } else if (*kty == "EC" || *kty == "OKP") {
    if (!crv) return Reject{"\"crv\" is missing"};
    const char* supported = *kty == "EC" ? "P-256" : "Ed25519";
    if (*crv != supported) {
      return Skip{"kty " + json_string(*kty) + " curve " + json_string(*crv) +
                  " is not supported (only " + supported + ")"};
    }
    algorithm = *kty == "EC" ? Algorithm::es256 : Algorithm::eddsa;
  } else {
    return Skip{"kty " + json_string(*kty) + " is not supported"};
  }
  if (!may_carry(origin, algorithm)) {
    return Reject{
        "an HS256 secret (kty \"oct\") in a fetched JWKS is public: anyone could sign "
        "tokens with it; HS256 keys belong in a --jwks file"};
  }
  if (alg && *alg != algorithm_name(algorithm)) {
    // One of our algorithms named on a key that cannot do it is a mistake in the document;
    // an algorithm we do not implement (RS512, PS256...) marks a key meant for someone else.
    if (algorithm_from_name(*alg)) {
      return Reject{"\"alg\" is " + json_string(*alg) + " but a kty " + json_string(*kty) +
                    " key verifies " + std::string(algorithm_name(algorithm))};
    }
    return Skip{"\"alg\" " + json_string(*alg) + " is not supported"};
  }
  if (algorithm != Algorithm::hs256) {
    for (const char* member : kPrivateMembers) {
      if (jwk.contains(member)) {
        return Reject{std::string("has the private key member \"") + member +
                      "\"; the server needs public keys only"};
      }
    }
  }

  KeyOutcome outcome = [&]() -> KeyOutcome {
    switch (algorithm) {
      case Algorithm::hs256:
        return hmac_key(jwk);
      case Algorithm::rs256:
        return rsa_key(jwk);
      case Algorithm::es256:
        return p256_key(jwk);
      case Algorithm::eddsa:
        return ed25519_key(jwk);
    }
    return Reject{"unknown algorithm"};
  }();
  if (auto* key = std::get_if<VerificationKey>(&outcome)) key->kid = kid;
  return outcome;
}

// See VerificationKey::fingerprint. The material is the HMAC secret, or the public key's DER
// encoding (SubjectPublicKeyInfo), which does not depend on how the JWK spelled it.
std::uint64_t fingerprint(const VerificationKey& key) {
  std::string input(algorithm_name(key.algorithm));
  input.push_back('\0');
  input.append(key.kid.value_or(""));
  input.push_back(key.kid ? '\1' : '\0');
  if (key.algorithm == Algorithm::hs256) {
    input.append(reinterpret_cast<const char*>(key.hmac_secret.data()), key.hmac_secret.size());
  } else {
    unsigned char* der = nullptr;
    const int length = i2d_PUBKEY(key.public_key.get(), &der);
    if (length <= 0) throw std::runtime_error("cannot encode a public key");
    input.append(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
    OPENSSL_free(der);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  const bool hashed =
      EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha256(), nullptr) == 1;
  OPENSSL_cleanse(input.data(), input.size());  // it may hold a secret
  if (!hashed) throw std::runtime_error("cannot hash a key");
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = value << 8 | digest[i];
  return value == 0 ? 1 : value;
}

std::string describe_key(std::size_t index, const json& jwk) {
  std::string text = "keys[" + std::to_string(index) + "]";
  if (jwk.is_object()) {
    if (const auto kid = jwk.find("kid"); kid != jwk.end() && kid->is_string()) {
      text += " (kid " + json_string(kid->get_ref<const std::string&>()) + ")";
    }
  }
  return text;
}

// The reason a key meant for us cannot be used, or nullopt. A repeated kid is refused after
// the first key that has it: a token's kid must name one key.
std::optional<std::string> refusal(const KeyOutcome& outcome,
                                   const std::vector<VerificationKey>& keys,
                                   const std::vector<std::size_t>& indexes) {
  if (const auto* reject = std::get_if<Reject>(&outcome)) return reject->reason;
  const auto& key = std::get<VerificationKey>(outcome);
  for (std::size_t other = 0; other < keys.size(); ++other) {
    if (key.kid && keys[other].kid == key.kid) {
      return "kid is already used by keys[" + std::to_string(indexes[other]) + "]";
    }
  }
  return std::nullopt;
}

// Fills `loaded` from a parsed document, or says why the document is refused.
std::optional<KeySetError> read_document(const json& document, KeyOrigin origin,
                                         std::vector<VerificationKey>& keys,
                                         std::vector<std::string>& warnings,
                                         std::vector<std::string>& refused) {
  const auto members = document.is_object() ? document.find("keys") : document.end();
  if (!document.is_object() || members == document.end() || !members->is_array()) {
    return KeySetError{"JWKS must be a JSON object with a \"keys\" array"};
  }
  std::vector<std::size_t> indexes;  // of the usable keys, for messages
  for (std::size_t index = 0; index < members->size(); ++index) {
    const json& jwk = (*members)[index];
    auto outcome = parse_key(jwk, origin);
    if (const auto* skip = std::get_if<Skip>(&outcome)) {
      warnings.push_back("JWKS " + describe_key(index, jwk) + " skipped: " + skip->reason);
      continue;
    }
    if (const auto why = refusal(outcome, keys, indexes)) {
      std::string message = "JWKS " + describe_key(index, jwk) + ": " + *why;
      if (refuses_whole_document(origin)) return KeySetError{std::move(message)};
      refused.push_back(std::move(message) + "; refused, the other keys are used");
      continue;
    }
    auto& key = std::get<VerificationKey>(outcome);
    key.fingerprint = fingerprint(key);
    keys.push_back(std::move(key));
    indexes.push_back(index);
  }
  if (keys.empty()) {
    std::string message = "JWKS has no usable signature verification key";
    std::vector<std::string> reasons = refused;
    reasons.insert(reasons.end(), warnings.begin(), warnings.end());
    for (std::size_t i = 0; i < reasons.size(); ++i) {
      message += (i == 0 ? " (" : "; ") + reasons[i];
    }
    if (!reasons.empty()) message += ")";
    return KeySetError{message, refused.size()};
  }
  return std::nullopt;
}

}  // namespace

std::string_view algorithm_name(Algorithm algorithm) noexcept {
  switch (algorithm) {
    case Algorithm::hs256:
      return "HS256";
    case Algorithm::rs256:
      return "RS256";
    case Algorithm::es256:
      return "ES256";
    case Algorithm::eddsa:
      return "EdDSA";
  }
  return "?";
}

std::optional<Algorithm> algorithm_from_name(std::string_view name) noexcept {
  for (const auto algorithm :
       {Algorithm::hs256, Algorithm::rs256, Algorithm::es256, Algorithm::eddsa}) {
    if (name == algorithm_name(algorithm)) return algorithm;
  }
  return std::nullopt;
}

void EvpPkeyDeleter::operator()(evp_pkey_st* key) const noexcept {
  EVP_PKEY_free(key);
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    wipe();
    bytes_ = std::move(other.bytes_);
  }
  return *this;
}

SecretBytes::~SecretBytes() {
  wipe();
}

void SecretBytes::wipe() noexcept {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

const VerificationKey* KeySet::find(std::string_view kid) const noexcept {
  for (const auto& key : keys_) {
    if (key.kid && *key.kid == kid) return &key;
  }
  return nullptr;
}

KeySetResult KeySet::parse(std::string_view text, KeyOrigin origin) {
  try {
    // nlohmann's parser would stop at a NUL byte and ignore what follows.
    if (text.find('\0') != std::string_view::npos) return KeySetError{"JWKS contains a NUL byte"};
    json document;
    try {
      document = json::parse(text);
    } catch (const json::parse_error& error) {
      return KeySetError{std::string("JWKS is not valid JSON: ") + error.what()};
    }
    std::vector<VerificationKey> keys;
    std::vector<std::string> warnings;
    std::vector<std::string> refused;
    if (auto error = read_document(document, origin, keys, warnings, refused)) {
      return std::move(*error);
    }
    return LoadedKeySet{KeySet(std::move(keys)), std::move(warnings), std::move(refused)};
  } catch (const std::exception& error) {
    // Out of memory, in practice; the promise is an error value, never an exception.
    return KeySetError{std::string("cannot read the JWKS: ") + error.what()};
  }
}

KeySetResult KeySet::load_file(const std::string& path) {
  try {
    std::ifstream file(path, std::ios::binary);
    if (!file)
      return KeySetError{"cannot open JWKS file " + json_string(path) + ": " +
                         std::strerror(errno)};
    std::string text(kMaxFileBytes + 1, '\0');
    file.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (file.bad())
      return KeySetError{"cannot read JWKS file " + json_string(path) + ": " +
                         std::strerror(errno)};
    text.resize(static_cast<std::size_t>(file.gcount()));
    if (text.size() > kMaxFileBytes) {
      return KeySetError{"JWKS file " + json_string(path) + " is larger than " +
                         std::to_string(kMaxFileBytes) + " bytes"};
    }
    auto result = parse(text, KeyOrigin::file);
    if (auto* error = std::get_if<KeySetError>(&result)) {
      error->message = json_string(path) + ": " + error->message;
    }
    return result;
  } catch (const std::exception& error) {
    return KeySetError{"cannot read JWKS file " + json_string(path) + ": " + error.what()};
  }
}

}  // namespace attempts::auth
