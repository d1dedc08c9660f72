#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace attempts::auth {

// base64url without padding (RFC 4648 section 5, as JWS and JWK use it, RFC 7515 section 2).
std::string base64url_encode(std::string_view bytes);

// Strict decoding: only the 64 alphabet characters, no padding, no whitespace, a length that is
// not 1 modulo 4, and zero bits left over in the last character. Each byte string therefore has
// exactly one accepted encoding, so a token cannot be altered without changing its bytes.
std::optional<std::string> base64url_decode(std::string_view text);

// The character check of base64url_decode alone, without decoding.
bool is_base64url(std::string_view text) noexcept;

}  // namespace attempts::auth
