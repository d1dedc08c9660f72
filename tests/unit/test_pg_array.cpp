// Unit tests for PostgreSQL array literals (the text of one bound parameter). Whether PostgreSQL
// reads them back identically is checked by the integration tests against a real server.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/db/pg_array.hpp"

namespace attempts::db {
namespace {

using namespace std::string_view_literals;

std::string ints(const std::vector<std::int64_t>& values) {
  return to_pg_array(values);
}
std::string texts(const std::vector<std::string_view>& values) {
  return to_pg_array(values);
}

// --- Integers ---------------------------------------------------------------------------------

TEST(PgIntArrayTest, EmptyIsEmptyBraces) {
  EXPECT_EQ(ints({}), "{}");
}

TEST(PgIntArrayTest, OneValue) {
  EXPECT_EQ(ints({42}), "{42}");
}

TEST(PgIntArrayTest, ValuesAreCommaSeparatedWithoutSpaces) {
  EXPECT_EQ(ints({1, 2, 3}), "{1,2,3}");
}

TEST(PgIntArrayTest, OrderAndDuplicatesArePreserved) {
  EXPECT_EQ(ints({3, 1, 3}), "{3,1,3}");
}

TEST(PgIntArrayTest, ZeroAndNegatives) {
  EXPECT_EQ(ints({0, -1, -42}), "{0,-1,-42}");
}

TEST(PgIntArrayTest, Int64Extremes) {
  EXPECT_EQ(
      ints({std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}),
      "{-9223372036854775808,9223372036854775807}");
}

TEST(PgIntArrayTest, ManyValues) {
  std::vector<std::int64_t> values;
  std::string expected = "{";
  for (std::int64_t i = 1; i <= 1000; ++i) {
    values.push_back(i * 1000003);
    expected += (i > 1 ? "," : "") + std::to_string(i * 1000003);
  }
  expected += "}";
  EXPECT_EQ(ints(values), expected);
}

// --- Strings ----------------------------------------------------------------------------------

TEST(PgTextArrayTest, EmptyIsEmptyBraces) {
  EXPECT_EQ(texts({}), "{}");
}

TEST(PgTextArrayTest, EveryElementIsDoubleQuoted) {
  EXPECT_EQ(texts({"a", "b"}), R"({"a","b"})");
}

TEST(PgTextArrayTest, EmptyStringIsAQuotedEmptyElement) {
  EXPECT_EQ(texts({""}), R"({""})");
  EXPECT_EQ(texts({"", "", "x"}), R"({"","","x"})");
}

TEST(PgTextArrayTest, DoubleQuotesAreEscaped) {
  EXPECT_EQ(texts({R"(say "hi")"}), R"({"say \"hi\""})");
}

TEST(PgTextArrayTest, BackslashesAreEscaped) {
  EXPECT_EQ(texts({R"(a\b)"}), R"({"a\\b"})");
  EXPECT_EQ(texts({R"(\)"}), R"({"\\"})");
  EXPECT_EQ(texts({R"(\")"}), R"({"\\\""})");
}

TEST(PgTextArrayTest, NullWordIsQuotedSoItStaysText) {
  EXPECT_EQ(texts({"NULL", "null"}), R"({"NULL","null"})");
}

TEST(PgTextArrayTest, ArraySyntaxInsideElementsIsQuotedNotEscaped) {
  // Braces, commas and whitespace need no escape inside double quotes.
  EXPECT_EQ(texts({"{a,b}", " x ", "\t\n"}), "{\"{a,b}\",\" x \",\"\t\n\"}");
}

TEST(PgTextArrayTest, SqlLookingTextIsCarriedVerbatim) {
  EXPECT_EQ(texts({"'); DROP TABLE attempts; --"}), R"({"'); DROP TABLE attempts; --"})");
}

TEST(PgTextArrayTest, JsonDocumentsKeepTheirStructure) {
  EXPECT_EQ(texts({R"({"2":[3,1],"10":[]})", "{}"}), R"({"{\"2\":[3,1],\"10\":[]}","{}"})");
}

TEST(PgTextArrayTest, JsonWithEscapedCharactersIsEscapedOnceMore) {
  // A JSON string holding a quote and a backslash: both layers of escaping survive.
  EXPECT_EQ(texts({R"({"k":"a\"b\\c"})"}), R"({"{\"k\":\"a\\\"b\\\\c\"}"})");
}

TEST(PgTextArrayTest, NonAsciiBytesArePassedThrough) {
  EXPECT_EQ(texts({"caf\xc3\xa9"}), "{\"caf\xc3\xa9\"}");
}

TEST(PgTextArrayTest, OutputLengthIsExact) {
  // Braces, separators, two quotes per element, and one extra byte per escaped character:
  // {"ab","\"","\\\\",""}
  const std::vector<std::string_view> values = {"ab", R"(")", R"(\\)", ""};
  EXPECT_EQ(texts(values).size(), 2u + 3u + (2 + 2) + (2 + 2) + (4 + 2) + (0 + 2));
}

}  // namespace
}  // namespace attempts::db
