// base64url: unpadded, strict (one accepted encoding per byte string).

#include <gtest/gtest.h>

#include <string>

#include "attempts/auth/base64url.hpp"

namespace attempts::auth {
namespace {

TEST(Base64UrlTest, EncodesRfc4648Vectors) {
  // RFC 4648 section 10, without padding, in the URL-safe alphabet.
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");
}

TEST(Base64UrlTest, DecodesWhatItEncodes) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    bytes += static_cast<char>(i * 37 % 256);
    EXPECT_EQ(base64url_decode(base64url_encode(bytes)), bytes) << i;
  }
}

TEST(Base64UrlTest, RejectsEverythingButCanonicalUnpaddedBase64Url) {
  const std::string cases[] = {"Zg==",   "Zg=",  "Zm9v=", "Z",       "Zm9vY",
                               "+_-_",   "-/-_", "Zm 9v", "Zm9v\n",  " Zm9v",
                               "Zm9v\t", "Zh",   "Zm9",   "Zm\x80v", std::string("Zm\0v", 4)};
  for (const std::string& text : cases) {
    EXPECT_EQ(base64url_decode(text), std::nullopt) << text;
  }
  // "Zh" and "Zm9" differ from "Zg" and "Zm8" only in bits that carry no data.
  EXPECT_EQ(base64url_decode("Zg"), "f");
  EXPECT_EQ(base64url_decode("Zm8"), "fo");
  EXPECT_EQ(base64url_decode(""), "");
}

TEST(Base64UrlTest, CharacterCheck) {
  EXPECT_TRUE(is_base64url("AZaz09-_"));
  EXPECT_FALSE(is_base64url("A+"));
  EXPECT_FALSE(is_base64url("A="));
  EXPECT_FALSE(is_base64url("A."));
}

}  // namespace
}  // namespace attempts::auth
