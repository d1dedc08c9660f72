#pragma once

// Token minting and key generation for tests, fuzzing, load scripts and developers. Not linked
// into the server. Unlike attempts::auth, these functions report failures by throwing
// std::runtime_error: their callers are tools and tests.
//
// Private keys travel as private JWKs (RFC 7517, 7518 section 6, RFC 8037): the public members
// plus "d" (and "p", "q", "dp", "dq", "qi" for RSA); an oct key's "k" is its only member.

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "attempts/auth/jwks.hpp"

namespace attempts::auth::tools {

// A key that signs tokens, with the one algorithm it signs for.
struct SigningKey {
  std::string kid;  // empty: no kid
  Algorithm algorithm = Algorithm::hs256;
  SecretBytes hmac_secret;  // HS256
  EvpPkeyPtr private_key;   // RS256, ES256, EdDSA
};

using SigningKeys = std::map<std::string, SigningKey, std::less<>>;

// A fresh private JWK with `alg` and `use: sig`. HS256 gets a 32-byte random secret.
nlohmann::json generate_private_jwk(Algorithm algorithm, std::string_view kid, int rsa_bits = 2048);
// The public JWK of a private one (private members removed; an oct key keeps "k", which is
// both: HS256 verification needs the secret).
nlohmann::json public_jwk(const nlohmann::json& private_jwk);

// What `attempts-token keygen` writes: one key per algorithm, kids dev-hs256, dev-rs256,
// dev-es256 and dev-eddsa. `public_jwks` is the server's JWKS; `private_jwks` what signing needs.
struct DevKeys {
  nlohmann::json public_jwks;
  nlohmann::json private_jwks;
};
DevKeys generate_dev_keys();

SigningKey signing_key_from_jwk(const nlohmann::json& private_jwk);
// An HS256 key with any secret, for instance a public key's PEM (the algorithm-confusion attack).
SigningKey hmac_signing_key(std::string_view secret, std::string kid = {});
// The keys of a private JWKS document, by kid.
SigningKeys signing_keys_from_jwks(const nlohmann::json& private_jwks);
SigningKeys load_signing_keys(const std::string& path);

// The JWS signature of `signing_input`: HMAC-SHA256, RSASSA-PKCS1-v1_5 SHA-256, ECDSA P-256
// SHA-256 as raw R || S (64 bytes, RFC 7518 section 3.4), or Ed25519.
std::string sign(const SigningKey& key, std::string_view signing_input);

// A JWS compact token. The header starts as {"alg": <the key's>, "typ": "JWT", "kid": <the
// key's, if any>}; `header_fields` then adds or overrides members, and a member set to null is
// removed (`{"kid": nullptr}` for a token without kid, `{"alg": "none"}` for a forged one).
std::string sign_token(const SigningKey& key, const nlohmann::json& header_fields,
                       const nlohmann::json& claims);

// The public key of an asymmetric key as a PEM SubjectPublicKeyInfo, or its DER bytes.
std::string public_key_pem(const SigningKey& key);
std::string public_key_der(const SigningKey& key);

// The DER ECDSA-Sig-Value of a raw R || S signature: what OpenSSL produces, and what a JWS
// must not carry.
std::string ecdsa_raw_to_der(std::string_view raw);

}  // namespace attempts::auth::tools
