// Unit tests for the binary parameter encodings (int8send, jsonb_send, array_send layouts).
#include <gtest/gtest.h>

#include <vector>

#include "attempts/db/pg_binary.hpp"

namespace attempts::db {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int value : values) out.push_back(static_cast<char>(value));
  return out;
}

TEST(PgBinaryTest, Int8IsEightBytesBigEndian) {
  std::string out;
  append_int8(out, 0x0102030405060708);
  EXPECT_EQ(out, bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  out.clear();
  append_int8(out, -1);
  EXPECT_EQ(out, std::string(8, '\xff'));
}

TEST(PgBinaryTest, JsonbIsAVersionByteAndTheText) {
  std::string out;
  append_jsonb(out, R"({"1":[2]})");
  EXPECT_EQ(out, std::string("\x01") + R"({"1":[2]})");
}

TEST(PgBinaryTest, Int8ArrayHasTheArrayHeaderThenLengthPrefixedElements) {
  std::string out;
  const std::vector<std::int64_t> values = {7, 256};
  append_int8_array(out, values);
  EXPECT_EQ(out, bytes({0, 0, 0, 1,                           // one dimension
                        0, 0, 0, 0,                           // no NULLs
                        0, 0, 0, 20,                          // int8
                        0, 0, 0, 2,                           // two elements
                        0, 0, 0, 1,                           // lower bound 1
                        0, 0, 0, 8,  0, 0, 0, 0, 0, 0, 0, 7,  //
                        0, 0, 0, 8,  0, 0, 0, 0, 0, 0, 1, 0}));
}

TEST(PgBinaryTest, NullElementsAreMinusOneLengthsAndSetTheFlag) {
  std::string out;
  const std::vector<std::optional<std::int64_t>> values = {std::nullopt, 3};
  append_int8_array(out, values);
  EXPECT_EQ(out, bytes({0,  0,  0,  1,  0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 1,  //
                        -1, -1, -1, -1,                                                   //
                        0,  0,  0,  8,  0, 0, 0, 0, 0, 0, 0, 3}));
  out.clear();
  const std::vector<std::optional<std::int64_t>> none_null = {1};
  append_int8_array(out, none_null);
  EXPECT_EQ(out[7], '\0');  // the flag stays clear
}

TEST(PgBinaryTest, JsonbArrayElementsCarryTheVersionByteInTheirLength) {
  std::string out;
  const std::vector<std::string_view> documents = {"{}", R"({"1":[2]})"};
  append_jsonb_array(out, documents);
  const std::string expected = bytes({0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x0e, 0xda,  // jsonb 3802
                                      0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0,    3,    1}) +
                               "{}" + bytes({0, 0, 0, 10, 1}) + R"({"1":[2]})";
  EXPECT_EQ(out, expected);
}

TEST(PgBinaryTest, AnEmptyArrayHasZeroElements) {
  std::string out;
  append_int8_array(out, std::vector<std::int64_t>{});
  EXPECT_EQ(out.size(), 20u);
  EXPECT_EQ(out.substr(12, 4), bytes({0, 0, 0, 0}));
}

}  // namespace
}  // namespace attempts::db
