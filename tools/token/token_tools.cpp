#include "token/token_tools.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "attempts/auth/base64url.hpp"
#include "auth/openssl_handles.hpp"

namespace attempts::auth::tools {
namespace {

using json = nlohmann::json;

constexpr std::size_t kHmacSecretBytes = 32;
constexpr std::size_t kP256CoordinateBytes = 32;
constexpr std::size_t kEd25519KeyBytes = 32;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + openssl::take_error());
}

// The members of an RSA private JWK (RFC 7518, 6.3) and the OpenSSL parameters they carry.
constexpr std::array<std::pair<const char*, const char*>, 8> kRsaMembers = {{
    {"n", OSSL_PKEY_PARAM_RSA_N},
    {"e", OSSL_PKEY_PARAM_RSA_E},
    {"d", OSSL_PKEY_PARAM_RSA_D},
    {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
    {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
    {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
    {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
}};

std::string_view as_chars(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

const unsigned char* as_bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

// A BIGNUM parameter of a key, big-endian, left-padded with zeros to `width` bytes if non-zero.
std::string bignum_param(EVP_PKEY* key, const char* name, std::size_t width = 0) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) fail(std::string("cannot read ") + name);
  const openssl::BignumPtr value(raw);
  const std::size_t size = width != 0 ? width : static_cast<std::size_t>(BN_num_bytes(value.get()));
  std::string bytes(size, '\0');
  if (BN_bn2binpad(value.get(), reinterpret_cast<unsigned char*>(bytes.data()),
                   static_cast<int>(size)) < 0) {
    fail(std::string("cannot encode ") + name);
  }
  return bytes;
}

std::string member_bytes(const json& jwk, const char* name) {
  const auto found = jwk.find(name);
  if (found == jwk.end() || !found->is_string()) {
    throw std::runtime_error(std::string("private JWK has no string \"") + name + "\"");
  }
  auto bytes = base64url_decode(found->get<std::string>());
  if (!bytes)
    throw std::runtime_error(std::string("private JWK \"") + name + "\" is not base64url");
  return *bytes;
}

openssl::BignumPtr to_bignum(const std::string& bytes) {
  openssl::BignumPtr value(BN_bin2bn(as_bytes(bytes), static_cast<int>(bytes.size()), nullptr));
  if (!value) fail("BN_bin2bn");
  return value;
}

EvpPkeyPtr keypair_from_params(const char* key_type, OSSL_PARAM_BLD* builder) {
  const openssl::ParamsPtr params(OSSL_PARAM_BLD_to_param(builder));
  const openssl::PkeyCtxPtr context(EVP_PKEY_CTX_new_from_name(nullptr, key_type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !context || EVP_PKEY_fromdata_init(context.get()) != 1 ||
      EVP_PKEY_fromdata(context.get(), &key, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    fail(std::string("cannot build the ") + key_type + " private key");
  }
  return EvpPkeyPtr(key);
}

EvpPkeyPtr rsa_private_key(const json& jwk) {
  const openssl::ParamBuilderPtr builder(OSSL_PARAM_BLD_new());
  if (!builder) fail("OSSL_PARAM_BLD_new");
  // Kept alive until the parameters are built: the builder only points at them.
  std::vector<openssl::BignumPtr> values;
  for (const auto& [member, param] : kRsaMembers) {
    values.push_back(to_bignum(member_bytes(jwk, member)));
    if (OSSL_PARAM_BLD_push_BN(builder.get(), param, values.back().get()) != 1) fail(param);
  }
  return keypair_from_params("RSA", builder.get());
}

EvpPkeyPtr p256_private_key(const json& jwk) {
  const std::string point = '\x04' + member_bytes(jwk, "x") + member_bytes(jwk, "y");
  const auto d = to_bignum(member_bytes(jwk, "d"));
  const openssl::ParamBuilderPtr builder(OSSL_PARAM_BLD_new());
  if (!builder ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get()) != 1) {
    fail("cannot build the P-256 parameters");
  }
  return keypair_from_params("EC", builder.get());
}

std::string digest_sign(EVP_PKEY* key, const EVP_MD* digest, bool pkcs1_padding,
                        std::string_view input) {
  const openssl::MdCtxPtr context(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_context = nullptr;
  if (!context || EVP_DigestSignInit(context.get(), &key_context, digest, nullptr, key) != 1 ||
      (pkcs1_padding && EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) != 1)) {
    fail("EVP_DigestSignInit");
  }
  std::size_t size = 0;
  if (EVP_DigestSign(context.get(), nullptr, &size, as_bytes(input), input.size()) != 1) {
    fail("EVP_DigestSign");
  }
  std::string signature(size, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     as_bytes(input), input.size()) != 1) {
    fail("EVP_DigestSign");
  }
  signature.resize(size);
  return signature;
}

// OpenSSL's DER ECDSA signature to the JWS form: R and S, each left-padded to 32 bytes.
std::string ecdsa_der_to_raw(const std::string& der) {
  const auto* cursor = as_bytes(der);
  const openssl::EcdsaSigPtr signature(
      d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der.size())));
  if (!signature) fail("d2i_ECDSA_SIG");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(signature.get(), &r, &s);
  std::string raw(2 * kP256CoordinateBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, kP256CoordinateBytes) < 0 ||
      BN_bn2binpad(s, out + kP256CoordinateBytes, kP256CoordinateBytes) < 0) {
    fail("BN_bn2binpad");
  }
  return raw;
}

EVP_PKEY* asymmetric_key(const SigningKey& key) {
  if (!key.private_key) throw std::runtime_error("an HS256 key has no public key");
  return key.private_key.get();
}

}  // namespace

json generate_private_jwk(Algorithm algorithm, std::string_view kid, int rsa_bits) {
  json jwk = json::object();
  switch (algorithm) {
    case Algorithm::hs256: {
      std::array<unsigned char, kHmacSecretBytes> secret{};
      if (RAND_bytes(secret.data(), static_cast<int>(secret.size())) != 1) fail("RAND_bytes");
      jwk["kty"] = "oct";
      jwk["k"] = base64url_encode(as_chars(secret.data(), secret.size()));
      OPENSSL_cleanse(secret.data(), secret.size());
      break;
    }
    case Algorithm::rs256: {
      const EvpPkeyPtr key(EVP_RSA_gen(static_cast<unsigned int>(rsa_bits)));
      if (!key) fail("EVP_RSA_gen");
      jwk["kty"] = "RSA";
      for (const auto& [member, param] : kRsaMembers) {
        jwk[member] = base64url_encode(bignum_param(key.get(), param));
      }
      break;
    }
    case Algorithm::es256: {
      const EvpPkeyPtr key(EVP_EC_gen("P-256"));
      if (!key) fail("EVP_EC_gen");
      jwk["kty"] = "EC";
      jwk["crv"] = "P-256";
      jwk["x"] =
          base64url_encode(bignum_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, kP256CoordinateBytes));
      jwk["y"] =
          base64url_encode(bignum_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, kP256CoordinateBytes));
      jwk["d"] =
          base64url_encode(bignum_param(key.get(), OSSL_PKEY_PARAM_PRIV_KEY, kP256CoordinateBytes));
      break;
    }
    case Algorithm::eddsa: {
      const EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
      if (!key) fail("EVP_PKEY_Q_keygen(ED25519)");
      std::array<unsigned char, kEd25519KeyBytes> public_key{};
      std::array<unsigned char, kEd25519KeyBytes> private_key{};
      std::size_t public_size = public_key.size();
      std::size_t private_size = private_key.size();
      if (EVP_PKEY_get_raw_public_key(key.get(), public_key.data(), &public_size) != 1 ||
          EVP_PKEY_get_raw_private_key(key.get(), private_key.data(), &private_size) != 1) {
        fail("cannot read the Ed25519 key");
      }
      jwk["kty"] = "OKP";
      jwk["crv"] = "Ed25519";
      jwk["x"] = base64url_encode(as_chars(public_key.data(), public_size));
      jwk["d"] = base64url_encode(as_chars(private_key.data(), private_size));
      OPENSSL_cleanse(private_key.data(), private_key.size());
      break;
    }
  }
  if (!kid.empty()) jwk["kid"] = kid;
  jwk["alg"] = algorithm_name(algorithm);
  jwk["use"] = "sig";
  return jwk;
}

json public_jwk(const json& private_jwk) {
  json jwk = private_jwk;
  for (const char* member : {"d", "p", "q", "dp", "dq", "qi", "oth"}) jwk.erase(member);
  return jwk;
}

DevKeys generate_dev_keys() {
  DevKeys keys{{{"keys", json::array()}}, {{"keys", json::array()}}};
  const std::array<std::pair<Algorithm, const char*>, 4> kinds = {{
      {Algorithm::hs256, "dev-hs256"},
      {Algorithm::rs256, "dev-rs256"},
      {Algorithm::es256, "dev-es256"},
      {Algorithm::eddsa, "dev-eddsa"},
  }};
  for (const auto& [algorithm, kid] : kinds) {
    json jwk = generate_private_jwk(algorithm, kid);
    keys.public_jwks["keys"].push_back(public_jwk(jwk));
    keys.private_jwks["keys"].push_back(std::move(jwk));
  }
  return keys;
}

SigningKey signing_key_from_jwk(const json& private_jwk) {
  if (!private_jwk.is_object()) throw std::runtime_error("a private JWK must be an object");
  const std::string kty = private_jwk.value("kty", "");
  const std::string crv = private_jwk.value("crv", "");
  SigningKey key;
  key.kid = private_jwk.value("kid", "");
  if (kty == "oct") {
    key.algorithm = Algorithm::hs256;
    std::string secret = member_bytes(private_jwk, "k");
    key.hmac_secret = SecretBytes(secret);
    OPENSSL_cleanse(secret.data(), secret.size());
  } else if (kty == "RSA") {
    key.algorithm = Algorithm::rs256;
    key.private_key = rsa_private_key(private_jwk);
  } else if (kty == "EC" && crv == "P-256") {
    key.algorithm = Algorithm::es256;
    key.private_key = p256_private_key(private_jwk);
  } else if (kty == "OKP" && crv == "Ed25519") {
    key.algorithm = Algorithm::eddsa;
    std::string d = member_bytes(private_jwk, "d");
    key.private_key.reset(
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, as_bytes(d), d.size()));
    OPENSSL_cleanse(d.data(), d.size());
    if (!key.private_key) fail("cannot build the Ed25519 private key");
  } else {
    throw std::runtime_error("unsupported private JWK: kty \"" + kty + "\" crv \"" + crv + "\"");
  }
  return key;
}

SigningKey hmac_signing_key(std::string_view secret, std::string kid) {
  SigningKey key;
  key.kid = std::move(kid);
  key.algorithm = Algorithm::hs256;
  key.hmac_secret = SecretBytes(secret);
  return key;
}

SigningKeys signing_keys_from_jwks(const json& private_jwks) {
  const auto members = private_jwks.is_object() ? private_jwks.find("keys") : private_jwks.end();
  if (members == private_jwks.end() || !members->is_array()) {
    throw std::runtime_error("a private JWKS must be an object with a \"keys\" array");
  }
  SigningKeys keys;
  for (const auto& jwk : *members) {
    SigningKey key = signing_key_from_jwk(jwk);
    std::string kid = key.kid;
    if (!keys.emplace(std::move(kid), std::move(key)).second) {
      throw std::runtime_error("two private keys have the kid \"" + jwk.value("kid", "") + "\"");
    }
  }
  return keys;
}

SigningKeys load_signing_keys(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open " + path);
  std::ostringstream text;
  text << file.rdbuf();
  try {
    return signing_keys_from_jwks(json::parse(text.str()));
  } catch (const json::exception& error) {
    throw std::runtime_error(path + ": " + error.what());
  }
}

std::string sign(const SigningKey& key, std::string_view signing_input) {
  switch (key.algorithm) {
    case Algorithm::hs256: {
      std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
      std::size_t size = 0;
      if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.hmac_secret.data(),
                    key.hmac_secret.size(), as_bytes(signing_input), signing_input.size(),
                    mac.data(), mac.size(), &size) == nullptr) {
        fail("HMAC-SHA256");
      }
      return std::string(as_chars(mac.data(), size));
    }
    case Algorithm::rs256:
      return digest_sign(asymmetric_key(key), EVP_sha256(), true, signing_input);
    case Algorithm::es256:
      return ecdsa_der_to_raw(digest_sign(asymmetric_key(key), EVP_sha256(), false, signing_input));
    case Algorithm::eddsa:
      return digest_sign(asymmetric_key(key), nullptr, false, signing_input);
  }
  throw std::runtime_error("unknown algorithm");
}

std::string sign_token(const SigningKey& key, const json& header_fields, const json& claims) {
  json header = {{"alg", algorithm_name(key.algorithm)}, {"typ", "JWT"}};
  if (!key.kid.empty()) header["kid"] = key.kid;
  if (!header_fields.is_null() && !header_fields.is_object()) {
    throw std::runtime_error("header fields must be a JSON object");
  }
  if (header_fields.is_object()) {
    for (const auto& [name, value] : header_fields.items()) {
      if (value.is_null()) {
        header.erase(name);
      } else {
        header[name] = value;
      }
    }
  }
  const std::string signing_input =
      base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
  return signing_input + "." + base64url_encode(sign(key, signing_input));
}

std::string public_key_pem(const SigningKey& key) {
  const openssl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), asymmetric_key(key)) != 1)
    fail("PEM_write_bio_PUBKEY");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string public_key_der(const SigningKey& key) {
  unsigned char* der = nullptr;
  const int size = i2d_PUBKEY(asymmetric_key(key), &der);
  if (size <= 0) fail("i2d_PUBKEY");
  std::string bytes(as_chars(der, static_cast<std::size_t>(size)));
  OPENSSL_free(der);
  return bytes;
}

std::string ecdsa_raw_to_der(std::string_view raw) {
  if (raw.size() != 2 * kP256CoordinateBytes) throw std::runtime_error("not a raw ES256 signature");
  openssl::BignumPtr r(BN_bin2bn(as_bytes(raw), kP256CoordinateBytes, nullptr));
  openssl::BignumPtr s(
      BN_bin2bn(as_bytes(raw) + kP256CoordinateBytes, kP256CoordinateBytes, nullptr));
  const openssl::EcdsaSigPtr signature(ECDSA_SIG_new());
  if (!r || !s || !signature || ECDSA_SIG_set0(signature.get(), r.get(), s.get()) != 1) {
    fail("ECDSA_SIG_set0");
  }
  r.release();
  s.release();
  unsigned char* der = nullptr;
  const int size = i2d_ECDSA_SIG(signature.get(), &der);
  if (size <= 0) fail("i2d_ECDSA_SIG");
  std::string bytes(as_chars(der, static_cast<std::size_t>(size)));
  OPENSSL_free(der);
  return bytes;
}

}  // namespace attempts::auth::tools
