#pragma once

// The security rules of a key source, in one place: where keys may be fetched from, and what a
// JWKS may carry depending on where it comes from. The fetch code, OIDC discovery, the JWKS
// parser and the start-up log all ask here.

#include <cstdint>
#include <optional>
#include <string>

#include "attempts/auth/url.hpp"

namespace attempts::auth {

enum class Algorithm;  // jwks.hpp

// Where a JWKS document comes from.
enum class KeyOrigin : std::uint8_t {
  // An operator's file (--jwks). It may hold HS256 secrets: it is a secret itself (mode 0600).
  // A key in it that cannot be used makes the whole file an error: the operator fixes it, and
  // meanwhile the keys in force stay (at start, the server does not start).
  file,
  // A document fetched from an identity provider (--jwks-url, OIDC discovery). It is public, so
  // it carries public keys only: an HS256 secret published there would let anyone sign any
  // student's token. A key in it that cannot be used is refused alone, logged and counted, and
  // the others are used: one bad key at the provider must not stop every key update.
  remote,
};

// Whether a JWKS from `origin` may carry keys that verify `algorithm`: HS256 (`oct`) keys come
// from a file only.
bool may_carry(KeyOrigin origin, Algorithm algorithm) noexcept;

// Whether one key that cannot be used refuses the whole document (a file), or only itself
// (a fetched document).
bool refuses_whole_document(KeyOrigin origin) noexcept;

// https stays https: keys fetched over https never come from an http URL afterwards, whether a
// redirect leads there or a discovery document fetched over https names it as its jwks_uri
// (OpenID Connect Discovery 1.0 requires an https jwks_uri; a plain one could be answered by
// anyone on the path). Returns why `next` may not be fetched after `from`, if it may not.
std::optional<std::string> downgrade_error(const Url& from, const Url& next);

// For a key source reached over plain http, the warning to log at start: anyone on the path can
// replace its keys and sign any student's token. Nothing for https.
std::optional<std::string> plaintext_warning(const Url& source);

}  // namespace attempts::auth
