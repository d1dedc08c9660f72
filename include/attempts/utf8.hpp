#pragma once

#include <cstddef>
#include <string_view>

namespace attempts {

// The length of the well-formed UTF-8 sequence at the start of `text` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 if it does not start with one. An ASCII
// byte is a sequence of one.
std::size_t utf8_sequence_length(std::string_view text) noexcept;

}  // namespace attempts
