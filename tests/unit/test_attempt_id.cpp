// Unit tests for attempt id parsing: positive decimal, no sign, no leading zeros, 64-bit.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "attempts/domain/attempt_id.hpp"

namespace attempts {
namespace {

using namespace std::string_view_literals;

struct ValidCase {
  std::string_view text;
  std::int64_t value;
};

void PrintTo(const ValidCase& test_case, std::ostream* out) {
  *out << test_case.text;
}

class ValidAttemptIdTest : public testing::TestWithParam<ValidCase> {};

TEST_P(ValidAttemptIdTest, ParsesToItsValue) {
  const auto id = parse_attempt_id(GetParam().text);
  ASSERT_TRUE(id.has_value()) << "'" << GetParam().text << "'";
  EXPECT_EQ(*id, GetParam().value);
}

TEST_P(ValidAttemptIdTest, ParsePositiveDecimalAgrees) {
  EXPECT_EQ(parse_positive_decimal(GetParam().text), GetParam().value);
}

INSTANTIATE_TEST_SUITE_P(
    AttemptId, ValidAttemptIdTest,
    testing::Values(ValidCase{"1", 1}, ValidCase{"9", 9}, ValidCase{"10", 10}, ValidCase{"42", 42},
                    ValidCase{"100000", 100000},
                    ValidCase{"9223372036854775806", std::numeric_limits<std::int64_t>::max() - 1},
                    ValidCase{"9223372036854775807", std::numeric_limits<std::int64_t>::max()}));

struct InvalidCase {
  const char* name;
  std::string_view text;
};

void PrintTo(const InvalidCase& test_case, std::ostream* out) {
  *out << test_case.name << ": " << testing::PrintToString(std::string(test_case.text));
}

const std::string kEmbeddedNul = std::string("1") + '\0' + "2";
const std::string kTrailingNul = std::string("1") + '\0';
const std::string kLeadingNul = std::string(1, '\0') + "1";

class InvalidAttemptIdTest : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidAttemptIdTest, IsRejected) {
  EXPECT_FALSE(parse_attempt_id(GetParam().text).has_value()) << "'" << GetParam().text << "'";
  EXPECT_FALSE(parse_positive_decimal(GetParam().text).has_value());
}

INSTANTIATE_TEST_SUITE_P(
    AttemptId, InvalidAttemptIdTest,
    testing::Values(
        InvalidCase{"Empty", ""sv}, InvalidCase{"Zero", "0"sv}, InvalidCase{"DoubleZero", "00"sv},
        InvalidCase{"LeadingZero", "01"sv}, InvalidCase{"LeadingZeros", "0042"sv},
        InvalidCase{"Negative", "-1"sv}, InvalidCase{"NegativeZero", "-0"sv},
        InvalidCase{"PlusSign", "+1"sv}, InvalidCase{"LeadingSpace", " 1"sv},
        InvalidCase{"TrailingSpace", "1 "sv}, InvalidCase{"TrailingTab", "1\t"sv},
        InvalidCase{"TrailingNewline", "1\n"sv}, InvalidCase{"LetterSuffix", "1a"sv},
        InvalidCase{"Letters", "abc"sv}, InvalidCase{"HexPrefix", "0x1"sv},
        InvalidCase{"Decimal", "1.0"sv}, InvalidCase{"Exponent", "1e3"sv},
        InvalidCase{"DigitGroups", "1,000"sv}, InvalidCase{"Underscore", "1_000"sv},
        InvalidCase{"OneAboveInt64Max", "9223372036854775808"sv},
        InvalidCase{"AboveUint64Max", "99999999999999999999"sv},
        InvalidCase{"ManyDigits", "123456789012345678901234567890"sv},
        InvalidCase{"ArabicIndicDigitOne", "\u0661"sv},
        InvalidCase{"FullwidthDigitOne", "\uFF11"sv},
        InvalidCase{"AsciiThenFullwidth", "1\uFF12"sv}, InvalidCase{"SuperscriptOne", "\u00B9"sv},
        InvalidCase{"EmbeddedNul", kEmbeddedNul}, InvalidCase{"TrailingNul", kTrailingNul},
        InvalidCase{"LeadingNul", kLeadingNul}, InvalidCase{"PercentEncoded", "%31"sv}),
    [](const testing::TestParamInfo<InvalidCase>& test) { return std::string(test.param.name); });

TEST(AttemptIdTest, ReadsOnlyTheGivenViewNotBeyondIt) {
  // The view stops before the 'x': what follows in memory must not matter.
  const std::string text = "12x";
  EXPECT_EQ(parse_attempt_id(std::string_view(text).substr(0, 2)), 12);
}

TEST(AttemptIdTest, IsNoexcept) {
  static_assert(noexcept(parse_positive_decimal(std::string_view{})));
  static_assert(noexcept(parse_attempt_id(std::string_view{})));
  SUCCEED();
}

}  // namespace
}  // namespace attempts
