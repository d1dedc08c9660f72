#include "attempts/auth/base64url.hpp"

#include <array>
#include <cstdint>

namespace attempts::auth {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> table{};
  table.fill(kInvalid);
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return table;
}

constexpr std::array<std::uint8_t, 256> kDecode = make_decode_table();

std::uint8_t sextet(char c) noexcept {
  return kDecode[static_cast<unsigned char>(c)];
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  const auto byte = [&](std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[group >> 18 & 63];
    out += kAlphabet[group >> 12 & 63];
    out += kAlphabet[group >> 6 & 63];
    out += kAlphabet[group & 63];
  }
  if (bytes.size() - i == 1) {
    const std::uint32_t group = byte(i) << 16;
    out += kAlphabet[group >> 18 & 63];
    out += kAlphabet[group >> 12 & 63];
  } else if (bytes.size() - i == 2) {
    const std::uint32_t group = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[group >> 18 & 63];
    out += kAlphabet[group >> 12 & 63];
    out += kAlphabet[group >> 6 & 63];
  }
  return out;
}

bool is_base64url(std::string_view text) noexcept {
  for (const char c : text) {
    if (sextet(c) == kInvalid) return false;
  }
  return true;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  // One leftover character carries 6 bits, less than a byte: no encoder produces it.
  if (text.size() % 4 == 1 || !is_base64url(text)) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::size_t i = 0;
  for (; i + 4 <= text.size(); i += 4) {
    const std::uint32_t group = std::uint32_t{sextet(text[i])} << 18 |
                                std::uint32_t{sextet(text[i + 1])} << 12 |
                                std::uint32_t{sextet(text[i + 2])} << 6 | sextet(text[i + 3]);
    out += static_cast<char>(group >> 16 & 0xff);
    out += static_cast<char>(group >> 8 & 0xff);
    out += static_cast<char>(group & 0xff);
  }
  const std::size_t rest = text.size() - i;
  if (rest == 2) {
    const std::uint32_t group =
        std::uint32_t{sextet(text[i])} << 18 | std::uint32_t{sextet(text[i + 1])} << 12;
    // 12 bits for one byte: the low 4 must be zero, or two encodings would decode alike.
    if ((group & 0xffff) != 0) return std::nullopt;
    out += static_cast<char>(group >> 16 & 0xff);
  } else if (rest == 3) {
    const std::uint32_t group = std::uint32_t{sextet(text[i])} << 18 |
                                std::uint32_t{sextet(text[i + 1])} << 12 |
                                std::uint32_t{sextet(text[i + 2])} << 6;
    // 18 bits for two bytes: the low 2 must be zero.
    if ((group & 0xff) != 0) return std::nullopt;
    out += static_cast<char>(group >> 16 & 0xff);
    out += static_cast<char>(group >> 8 & 0xff);
  }
  return out;
}

}  // namespace attempts::auth
