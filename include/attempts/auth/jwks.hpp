#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "attempts/auth/key_source_rules.hpp"

// OpenSSL's key type, declared so that this header needs no OpenSSL headers.
struct evp_pkey_st;

namespace attempts::auth {

// The JWS algorithms a key can verify (RFC 7518 section 3.1, RFC 8037 section 3.1).
enum class Algorithm { hs256, rs256, es256, eddsa };

// The JWS name: "HS256", "RS256", "ES256" or "EdDSA".
std::string_view algorithm_name(Algorithm algorithm) noexcept;
// The algorithm with exactly this JWS name (case-sensitive, as RFC 7515 says), if supported.
std::optional<Algorithm> algorithm_from_name(std::string_view name) noexcept;

struct EvpPkeyDeleter {
  void operator()(evp_pkey_st* key) const noexcept;
};
using EvpPkeyPtr = std::unique_ptr<evp_pkey_st, EvpPkeyDeleter>;

// Key bytes that are wiped from memory when no longer needed.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string_view bytes) : bytes_(bytes.begin(), bytes.end()) {}
  SecretBytes(SecretBytes&& other) noexcept = default;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  ~SecretBytes();

  const unsigned char* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }

 private:
  void wipe() noexcept;
  std::vector<unsigned char> bytes_;
};

// One key of a JWKS that can verify signatures, with the one algorithm it may verify.
struct VerificationKey {
  std::optional<std::string> kid;
  Algorithm algorithm = Algorithm::hs256;
  SecretBytes hmac_secret;  // HS256 only
  EvpPkeyPtr public_key;    // RS256, ES256 and EdDSA
  // Names this key across reloads: the same kid, algorithm and key material give the same
  // value (64 bits of SHA-256 over them; never 0), so that what it verified stays verified
  // while it stays in the key set, and no longer once it is gone.
  std::uint64_t fingerprint = 0;
};

struct LoadedKeySet;
struct KeySetError;
using KeySetResult = std::variant<LoadedKeySet, KeySetError>;

// The verification keys of a JWKS document (RFC 7517). Supported: `oct` (HS256, a secret of
// at least 32 bytes), `RSA` (RS256, a modulus of at least 2048 bits), `EC` on P-256 (ES256) and
// `OKP` Ed25519 (EdDSA). A key's algorithm follows from kty and crv; an `alg` member must agree.
//
// Keys that are not for us are skipped with a warning: another kty or curve, an `alg` this
// service does not implement, `use` other than "sig", `key_ops` without "verify". A key meant
// for us that cannot be used safely (short secret, small modulus, point off the curve, an
// `alg` contradicting its kty, private members in an asymmetric key, a repeated kid, a key
// type its origin may not carry) is refused as key_source_rules.hpp says for its origin: in a
// file, the whole document is an error (better to refuse the configuration than to run without
// a key the operator expects); in a fetched document, that key alone, and the others are used.
class KeySet {
 public:
  static KeySetResult parse(std::string_view json, KeyOrigin origin);
  static KeySetResult load_file(const std::string& path);

  const std::vector<VerificationKey>& keys() const noexcept { return keys_; }
  // The key with this kid, or nullptr.
  const VerificationKey* find(std::string_view kid) const noexcept;

 private:
  explicit KeySet(std::vector<VerificationKey> keys) : keys_(std::move(keys)) {}

  std::vector<VerificationKey> keys_;
};

struct LoadedKeySet {
  KeySet key_set;
  // One line per skipped key (not meant for verifying our tokens), for the caller to log.
  std::vector<std::string> warnings;
  // One line per key meant for verifying that was refused (fetched documents only: in a file,
  // such a key is a KeySetError), for the caller to log and count.
  std::vector<std::string> refused;
};

struct KeySetError {
  std::string message;
  std::size_t refused_keys = 0;  // keys refused before the document was (no usable key left)
};

}  // namespace attempts::auth
