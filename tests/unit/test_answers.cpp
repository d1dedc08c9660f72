// Unit tests for the answers document validator: every acceptance and rejection rule.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <variant>

#include "attempts/domain/answers.hpp"

namespace attempts {
namespace {

using namespace std::string_view_literals;
using testing::AllOf;
using testing::HasSubstr;

constexpr std::string_view kMalformedText = "malformed JSON";
using testing::Not;

// The document's canonical JSON when `body` is accepted; records a failure otherwise.
AnswersDocument accept(std::string_view body, const AnswersLimits& limits = {}) {
  auto result = parse_answers_document(body, limits);
  if (const auto* error = std::get_if<AnswersError>(&result)) {
    ADD_FAILURE() << "rejected: " << error->message << "\nbody: " << body.substr(0, 200);
    return {};
  }
  return std::get<AnswersDocument>(std::move(result));
}

// The error message when `body` is rejected; records a failure otherwise.
std::string reject(std::string_view body, const AnswersLimits& limits = {}) {
  auto result = parse_answers_document(body, limits);
  if (const auto* document = std::get_if<AnswersDocument>(&result)) {
    ADD_FAILURE() << "accepted as " << document->json << "\nbody: " << body.substr(0, 200);
    return {};
  }
  return std::get<AnswersError>(std::move(result)).message;
}

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// `{"a":{"a":...1...}}` with `depth` objects.
std::string nested_objects(std::size_t depth) {
  std::string text;
  for (std::size_t i = 0; i < depth; ++i) text += R"({"a":)";
  text += '1';
  text += std::string(depth, '}');
  return text;
}

// A body whose only nesting beyond the top-level object is an ignored field's value.
std::string with_ignored_field(const std::string& value) {
  return R"({"ignored":)" + value + R"(,"answers":{"1":[1]}})";
}

// --- Accepted documents --------------------------------------------------------------------

TEST(AnswersValidTest, EmptyAnswersObjectIsValid) {
  const auto document = accept(R"({"answers": {}})");
  EXPECT_EQ(document.json, "{}");
  EXPECT_EQ(document.question_count, 0u);
}

TEST(AnswersValidTest, OutputIsCompactCanonicalJson) {
  const auto document = accept(R"({"answers": {"2": [3, 1], "10": []}})");
  EXPECT_EQ(document.json, R"({"2":[3,1],"10":[]})");
  EXPECT_EQ(document.question_count, 2u);
}

TEST(AnswersValidTest, SeveralQuestionsKeepTheirOrder) {
  const auto document = accept(R"({"answers": {"10": [1], "2": [2, 3], "7": [4]}})");
  EXPECT_EQ(document.json, R"({"10":[1],"2":[2,3],"7":[4]})");
  EXPECT_EQ(document.question_count, 3u);
}

TEST(AnswersValidTest, OptionIdsKeepTheirOrderAndRepeats) {
  EXPECT_EQ(accept(R"({"answers": {"1": [5, 1, 5, 3]}})").json, R"({"1":[5,1,5,3]})");
}

TEST(AnswersValidTest, EmptyOptionArraysAreValid) {
  const auto document = accept(R"({"answers": {"1": [], "2": []}})");
  EXPECT_EQ(document.json, R"({"1":[],"2":[]})");
  EXPECT_EQ(document.question_count, 2u);
}

TEST(AnswersValidTest, ZeroAndNegativeOptionIdsAreValid) {
  EXPECT_EQ(accept(R"({"answers": {"1": [0, -1, -42]}})").json, R"({"1":[0,-1,-42]})");
}

TEST(AnswersValidTest, OptionIdsAtTheInt64LimitsAreValid) {
  const auto document =
      accept(R"({"answers": {"1": [-9223372036854775808, 9223372036854775807]}})");
  EXPECT_EQ(document.json, R"({"1":[-9223372036854775808,9223372036854775807]})");
}

TEST(AnswersValidTest, LargestQuestionIdIsValid) {
  EXPECT_EQ(accept(R"({"answers": {"9223372036854775807": [1]}})").json,
            R"({"9223372036854775807":[1]})");
}

TEST(AnswersValidTest, UnknownScalarFieldsAreIgnored) {
  const auto document = accept(
      R"({"a": 1, "b": "text", "c": null, "d": true, "e": 1.5, "answers": {"1": [2]}, "f": false})");
  EXPECT_EQ(document.json, R"({"1":[2]})");
}

TEST(AnswersValidTest, UnknownNestedFieldsBeforeAnswersAreIgnored) {
  const auto document =
      accept(R"({"meta": {"x": [1, {"y": [[], {}]}], "z": {}}, "list": [[1], [2, [3]]], )"
             R"("answers": {"1": [2]}})");
  EXPECT_EQ(document.json, R"({"1":[2]})");
  EXPECT_EQ(document.question_count, 1u);
}

TEST(AnswersValidTest, UnknownNestedFieldsAfterAnswersAreIgnored) {
  const auto document =
      accept(R"({"answers": {"1": [2]}, "meta": {"x": [1, {"y": [[], {}]}]}, "list": [[1], [2]]})");
  EXPECT_EQ(document.json, R"({"1":[2]})");
}

TEST(AnswersValidTest, AnswersKeyInsideAnIgnoredFieldIsNotTheAnswers) {
  const auto document = accept(R"({"meta": {"answers": 5}, "answers": {"3": [4]}})");
  EXPECT_EQ(document.json, R"({"3":[4]})");
}

TEST(AnswersValidTest, InvalidShapesInsideIgnoredFieldsAreIgnored) {
  // Things that would be errors inside "answers" are fine in a field nobody reads.
  const auto document =
      accept(R"({"other": {"0": "x", "01": 1.5, "1": {"2": null}}, "answers": {}})");
  EXPECT_EQ(document.json, "{}");
}

TEST(AnswersValidTest, WhitespaceAroundEveryTokenIsAllowed) {
  const auto document =
      accept(" \r\n\t{ \"answers\" :\n{ \"1\" : [ 1 ,\t2 ] ,\r\n \"2\" : [ ] } }\n\t ");
  EXPECT_EQ(document.json, R"({"1":[1,2],"2":[]})");
}

TEST(AnswersValidTest, EscapedQuestionIdIsDecodedAndReserialised) {
  EXPECT_EQ(accept(R"({"answers": {"\u0031\u0032": [1]}})").json, R"({"12":[1]})");
}

TEST(AnswersValidTest, ValidUtf8InIgnoredFieldsIsAccepted) {
  EXPECT_EQ(
      accept("{\"note\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\", \"answers\": {}}").json,
      "{}");
}

TEST(AnswersValidTest, HugeFlatDocumentIsAccepted) {
  constexpr int kQuestions = 5000;
  std::string body = R"({"answers": {)";
  std::string expected = "{";
  for (int question = 1; question <= kQuestions; ++question) {
    const std::string sep = question > 1 ? "," : "";
    const std::string id = std::to_string(question);
    body += sep + "\"" + id + "\": [" + id + ", -" + id + "]";
    expected += sep + "\"" + id + "\":[" + id + ",-" + id + "]";
  }
  body += "}}";
  expected += "}";

  const auto document = accept(body);
  EXPECT_EQ(document.question_count, static_cast<std::size_t>(kQuestions));
  EXPECT_TRUE(document.json == expected) << document.json.substr(0, 100);
}

TEST(AnswersValidTest, LongOptionArrayIsAccepted) {
  std::string options;
  for (int option = 0; option < 20000; ++option) {
    // Appended, not "," + std::to_string(...): GCC 12 warns of an overlapping copy there
    // (-Wrestrict, a false positive).
    if (option) options += ',';
    options += std::to_string(option);
  }
  const auto document = accept(R"({"answers": {"1": [)" + options + "]}}");
  EXPECT_EQ(document.question_count, 1u);
  // Compared as a boolean: a mismatch would otherwise print 100 KB twice.
  EXPECT_TRUE(document.json == R"({"1":[)" + options + "]}") << document.json.substr(0, 100);
}

TEST(AnswersValidTest, OutputUsesOnlyTheDocumentedCharacters) {
  const auto document =
      accept(R"({"x": "anything \" goes", "answers": {"1": [-1, 2], "33": [], "4": [0]}})");
  EXPECT_EQ(document.json.find_first_not_of("0123456789-,:\"[]{}"), std::string::npos)
      << document.json;
}

TEST(AnswersValidTest, OutputRoundTripsToTheSentAnswers) {
  std::mt19937_64 random(20240611);
  std::uniform_int_distribution<std::int64_t> option(std::numeric_limits<std::int64_t>::min(),
                                                     std::numeric_limits<std::int64_t>::max());
  std::uniform_int_distribution<std::int64_t> question(1, std::numeric_limits<std::int64_t>::max());
  std::uniform_int_distribution<int> count(0, 6);
  for (int round = 0; round < 200; ++round) {
    nlohmann::json answers = nlohmann::json::object();
    const int questions = count(random);
    for (int q = 0; q < questions; ++q) {
      nlohmann::json options = nlohmann::json::array();
      for (int o = count(random); o > 0; --o) options.push_back(option(random));
      answers[std::to_string(question(random))] = options;
    }
    const nlohmann::json body = {{"answers", answers}, {"extra", {{"n", round}}}};

    const auto document = accept(body.dump());
    EXPECT_EQ(nlohmann::json::parse(document.json), answers) << body.dump();
    EXPECT_EQ(document.question_count, answers.size());
  }
}

// --- What JSON allows, read as nlohmann reads it ---------------------------------------------

TEST(AnswersJsonTest, EscapedNamesAreDecodedBeforeTheyAreCompared) {
  // "answers" and the question id 12, each written with escapes.
  const auto document =
      accept(R"({"answ\u0065rs": {"\u0031\u0032": [3]}, "n\u00e9": "\ud83d\ude00"})");
  EXPECT_EQ(document.json, R"({"12":[3]})");
}

TEST(AnswersJsonTest, AByteOrderMarkMayOpenTheBody) {
  EXPECT_EQ(accept("\xEF\xBB\xBF{\"answers\": {\"1\": [1]}}").json, R"({"1":[1]})");
}

TEST(AnswersJsonTest, NumbersAreClassifiedAsNlohmannDoes) {
  EXPECT_EQ(accept(R"({"answers": {"1": [-0, 9223372036854775807, -9223372036854775808]}})").json,
            R"({"1":[0,9223372036854775807,-9223372036854775808]})");
  EXPECT_THAT(reject(R"({"answers": {"1": [9223372036854775808]}})"),
              HasSubstr("out of the 64-bit range"));
  EXPECT_THAT(reject(R"({"answers": {"1": [1e2]}})"), HasSubstr("not the number 1e2"));
  // An ignored field may hold any finite number, but not one too large for a double.
  accept(R"({"answers": {}, "x": [1e308, 1e-400, 123456789012345678901234567890]})");
  EXPECT_THAT(reject(R"({"answers": {}, "x": 1e309})"), HasSubstr(kMalformedText));
}

// --- Rejected documents: one table row per rule ---------------------------------------------

struct RejectCase {
  const char* name;
  std::string_view body;
  std::string_view message_part;  // the validator names the offending thing
};

// Escaped and cut short: some bodies hold NUL bytes, some are 100 KB long.
void PrintTo(const RejectCase& test_case, std::ostream* out) {
  *out << test_case.name << ": "
       << testing::PrintToString(std::string(test_case.body.substr(0, 60)))
       << (test_case.body.size() > 60 ? "..." : "");
}

class AnswersRejectTest : public testing::TestWithParam<RejectCase> {};

TEST_P(AnswersRejectTest, IsRejectedWithAMessageNamingTheProblem) {
  const std::string message = reject(GetParam().body);
  EXPECT_FALSE(message.empty());
  EXPECT_THAT(message, HasSubstr(std::string(GetParam().message_part)));
}

constexpr std::string_view kNotObject = "must be a JSON object";
constexpr std::string_view kMalformed = kMalformedText;

INSTANTIATE_TEST_SUITE_P(
    TopLevel, AnswersRejectTest,
    testing::Values(
        RejectCase{"Array", "[]", kNotObject},
        RejectCase{"ArrayOfAnswers", R"([{"answers": {}}])", kNotObject},
        RejectCase{"String", R"("answers")", kNotObject}, RejectCase{"Number", "42", kNotObject},
        RejectCase{"Float", "4.2", kNotObject}, RejectCase{"Null", "null", kNotObject},
        RejectCase{"Boolean", "true", kNotObject},
        RejectCase{"EmptyObject", "{}", R"(missing field "answers")"},
        RejectCase{"OnlyOtherFields", R"({"other": {"1": [1]}})", R"(missing field "answers")"},
        RejectCase{"AnswersOnlyNested", R"({"meta": {"answers": {}}})",
                   R"(missing field "answers")"},
        RejectCase{"AnswersWrongCase", R"({"Answers": {}})", R"(missing field "answers")"}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    AnswersField, AnswersRejectTest,
    testing::Values(RejectCase{"Null", R"({"answers": null})", R"("answers" must be an object)"},
                    RejectCase{"Array", R"({"answers": []})", R"("answers" must be an object)"},
                    RejectCase{"ArrayOfPairs", R"({"answers": [["1", [1]]]})",
                               R"("answers" must be an object)"},
                    RejectCase{"String", R"({"answers": "{}"})", R"("answers" must be an object)"},
                    RejectCase{"Number", R"({"answers": 1})", R"("answers" must be an object)"},
                    RejectCase{"Boolean", R"({"answers": false})",
                               R"("answers" must be an object)"},
                    RejectCase{"Duplicate", R"({"answers": {}, "answers": {}})",
                               R"(field "answers" appears more than once)"},
                    RejectCase{"DuplicateWithFieldBetween",
                               R"({"answers": {"1": [1]}, "x": 1, "answers": {"2": [2]}})",
                               R"(field "answers" appears more than once)"}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    QuestionId, AnswersRejectTest,
    testing::Values(
        RejectCase{"Zero", R"({"answers": {"0": []}})", R"(question id "0")"},
        RejectCase{"LeadingZero", R"({"answers": {"01": []}})", R"(question id "01")"},
        RejectCase{"Negative", R"({"answers": {"-1": []}})", R"(question id "-1")"},
        RejectCase{"PlusSign", R"({"answers": {"+1": []}})", R"(question id "+1")"},
        RejectCase{"Letter", R"({"answers": {"a": []}})", R"(question id "a")"},
        RejectCase{"Empty", R"({"answers": {"": []}})", R"(question id "")"},
        RejectCase{"Decimal", R"({"answers": {"1.5": []}})", R"(question id "1.5")"},
        RejectCase{"LeadingSpace", R"({"answers": {" 1": []}})", R"(question id " 1")"},
        RejectCase{"TrailingSpace", R"({"answers": {"1 ": []}})", R"(question id "1 ")"},
        RejectCase{"Suffix", R"({"answers": {"1a": []}})", R"(question id "1a")"},
        RejectCase{"OutOfRange", R"({"answers": {"9223372036854775808": []}})",
                   R"(question id "9223372036854775808")"},
        RejectCase{"FarOutOfRange", R"({"answers": {"99999999999999999999": []}})",
                   R"(question id "99999999999999999999")"},
        RejectCase{"InvalidAfterValidOnes", R"({"answers": {"1": [1], "2": [2], "x": [3]}})",
                   R"(question id "x")"},
        RejectCase{"Duplicate", R"({"answers": {"1": [1], "1": [2]}})",
                   "question id 1 appears more than once"},
        RejectCase{"DuplicateNotAdjacent", R"({"answers": {"5": [], "2": [], "7": [], "2": [1]}})",
                   "question id 2 appears more than once"},
        RejectCase{"DuplicateThroughEscape", R"({"answers": {"3": [], "\u0033": []}})",
                   "question id 3 appears more than once"}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    QuestionValue, AnswersRejectTest,
    testing::Values(RejectCase{"Number", R"({"answers": {"1": 2}})",
                               "answers for question 1 must be an array of option ids"},
                    RejectCase{"Object", R"({"answers": {"1": {"2": 3}}})",
                               "answers for question 1 must be an array of option ids"},
                    RejectCase{"Null", R"({"answers": {"1": null}})",
                               "answers for question 1 must be an array of option ids"},
                    RejectCase{"String", R"({"answers": {"1": "[2]"}})",
                               "answers for question 1 must be an array of option ids"},
                    RejectCase{"Boolean", R"({"answers": {"1": true}})",
                               "answers for question 1 must be an array of option ids"},
                    RejectCase{"InLaterQuestion", R"({"answers": {"1": [], "22": 5}})",
                               "answers for question 22 must be an array"}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    OptionId, AnswersRejectTest,
    testing::Values(RejectCase{"Float", R"({"answers": {"1": [1.5]}})", "1.5"},
                    RejectCase{"NegativeFloat", R"({"answers": {"1": [-1.5]}})", "-1.5"},
                    RejectCase{"Exponent", R"({"answers": {"1": [1e2]}})", "1e2"},
                    RejectCase{"UpperExponent", R"({"answers": {"1": [1E2]}})", "1E2"},
                    RejectCase{"IntegralFloat", R"({"answers": {"1": [1.0]}})", "1.0"},
                    RejectCase{"String", R"({"answers": {"1": ["1"]}})",
                               "option ids in question 1 must be integers, not a string"},
                    RejectCase{"Null", R"({"answers": {"1": [null]}})",
                               "option ids in question 1 must be integers, not null"},
                    RejectCase{"Boolean", R"({"answers": {"1": [true]}})",
                               "option ids in question 1 must be integers, not a boolean"},
                    RejectCase{"NestedArray", R"({"answers": {"1": [[1]]}})",
                               "option ids in question 1 must be integers, not an array"},
                    RejectCase{"Object", R"({"answers": {"1": [{"id": 1}]}})",
                               "option ids in question 1 must be integers, not an object"},
                    RejectCase{"AfterValidOnes", R"({"answers": {"1": [1, 2, "3"]}})",
                               "option ids in question 1 must be integers"},
                    RejectCase{"InLaterQuestion", R"({"answers": {"1": [1], "17": [2, 0.5]}})",
                               "option ids in question 17 must be integers"},
                    RejectCase{
                        "AboveInt64Max", R"({"answers": {"1": [9223372036854775808]}})",
                        "option id 9223372036854775808 in question 1 is out of the 64-bit range"},
                    RejectCase{"UInt64Max", R"({"answers": {"1": [18446744073709551615]}})",
                               "18446744073709551615"},
                    RejectCase{"AboveUInt64Max", R"({"answers": {"1": [18446744073709551616]}})",
                               "option ids in question 1 must be integers"},
                    RejectCase{"BelowInt64Min", R"({"answers": {"1": [-9223372036854775809]}})",
                               "option ids in question 1 must be integers"}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    MalformedJson, AnswersRejectTest,
    testing::Values(
        RejectCase{"EmptyBody", "", kMalformed}, RejectCase{"OnlyWhitespace", " \n\t ", kMalformed},
        RejectCase{"TruncatedInOptions", R"({"answers": {"1": [1,)", kMalformed},
        RejectCase{"TruncatedAfterAnswers", R"({"answers": {})", kMalformed},
        RejectCase{"TruncatedInString", R"({"answers": {"1)", kMalformed},
        RejectCase{"TruncatedInEscape", R"({"note": "\u00)", kMalformed},
        RejectCase{"OnlyOpeningBrace", "{", kMalformed},
        RejectCase{"TrailingCommaInArray", R"({"answers": {"1": [1,]}})", kMalformed},
        RejectCase{"TrailingCommaInAnswers", R"({"answers": {"1": [1],}})", kMalformed},
        RejectCase{"TrailingCommaAtTopLevel", R"({"answers": {},})", kMalformed},
        RejectCase{"MissingComma", R"({"answers": {"1": [1 2]}})", kMalformed},
        RejectCase{"MissingColon", R"({"answers" {}})", kMalformed},
        RejectCase{"SingleQuotes", R"({'answers': {}})", kMalformed},
        RejectCase{"SingleQuotedQuestion", R"({"answers": {'1': [1]}})", kMalformed},
        RejectCase{"UnquotedKey", R"({answers: {}})", kMalformed},
        RejectCase{"BlockComment", R"({"answers": {} /* note */})", kMalformed},
        RejectCase{"LineComment", "// note\n{\"answers\": {}}", kMalformed},
        RejectCase{"NaN", R"({"answers": {"1": [NaN]}})", kMalformed},
        RejectCase{"Infinity", R"({"answers": {"1": [Infinity]}})", kMalformed},
        RejectCase{"LeadingZeroNumber", R"({"answers": {"1": [01]}})", kMalformed},
        RejectCase{"PlusNumber", R"({"answers": {"1": [+1]}})", kMalformed},
        RejectCase{"HexNumber", R"({"answers": {"1": [0x1]}})", kMalformed},
        RejectCase{"BareMinus", R"({"answers": {"1": [-]}})", kMalformed},
        RejectCase{"UppercaseLiteral", R"({"answers": {"1": [1]}, "x": TRUE})", kMalformed},
        RejectCase{"RawNewlineInString", "{\"note\": \"a\nb\", \"answers\": {}}", kMalformed},
        RejectCase{"InvalidEscape", R"({"note": "\x41", "answers": {}})", kMalformed},
        RejectCase{"LoneHighSurrogateEscape", R"({"note": "\ud800", "answers": {}})", kMalformed},
        RejectCase{"LoneLowSurrogateEscape", R"({"note": "\udc00", "answers": {}})", kMalformed},
        RejectCase{"NulByte", "{\"answers\": {}\0}"sv, kMalformed}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    TrailingGarbage, AnswersRejectTest,
    testing::Values(RejectCase{"Word", R"({"answers": {}} x)", kMalformed},
                    RejectCase{"SecondObject", R"({"answers":{}}{})", kMalformed},
                    RejectCase{"SecondDocument", R"({"answers":{}} {"answers":{}})", kMalformed},
                    RejectCase{"Comma", R"({"answers":{}},)", kMalformed},
                    RejectCase{"ClosingBrace", R"({"answers":{}}})", kMalformed},
                    RejectCase{"ClosingBracket", R"({"answers":{}}])", kMalformed},
                    RejectCase{"Number", R"({"answers":{}} 1)", kMalformed},
                    // nlohmann's lexer reads a NUL byte as the end of the input, so these
                    // two need a check of their own (see the bug report).
                    RejectCase{"NulByte", "{\"answers\":{}}\0"sv, kMalformed},
                    RejectCase{"NulByteThenGarbage", "{\"answers\":{}}\0garbage"sv, kMalformed}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    InvalidUtf8, AnswersRejectTest,
    testing::Values(
        RejectCase{"InIgnoredValue", "{\"note\": \"\xff\", \"answers\": {}}", kMalformed},
        RejectCase{"InIgnoredValueAfterAnswers", "{\"answers\": {}, \"note\": \"ok \xfe\"}",
                   kMalformed},
        RejectCase{"InIgnoredKey", "{\"n\xc3\": 1, \"answers\": {}}", kMalformed},
        RejectCase{"InNestedIgnoredKey", "{\"meta\": {\"\x80\": 1}, \"answers\": {}}", kMalformed},
        RejectCase{"InQuestionKey", "{\"answers\": {\"1\xc3\": []}}", kMalformed},
        RejectCase{"OverlongEncoding", "{\"note\": \"\xc0\xaf\", \"answers\": {}}", kMalformed},
        RejectCase{"EncodedSurrogate", "{\"note\": \"\xed\xa0\x80\", \"answers\": {}}", kMalformed},
        RejectCase{"AboveUnicodeRange", "{\"note\": \"\xf4\x90\x80\x80\", \"answers\": {}}",
                   kMalformed},
        RejectCase{"TruncatedSequence", "{\"note\": \"\xe2\x82\", \"answers\": {}}", kMalformed},
        RejectCase{"OutsideAnyString", "{\"answers\": {}}\xff", kMalformed}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(AnswersRejectTest, MalformedJsonMessageGivesTheBytePosition) {
  EXPECT_THAT(reject(R"({"answers": {}} x)"), HasSubstr("at byte"));
}

TEST(AnswersRejectTest, MalformedJsonMessageHidesTheParserInternals) {
  const std::string message = reject(R"({"answers": {"1": [1,]}})");
  EXPECT_THAT(message, Not(HasSubstr("json.exception")));
  EXPECT_THAT(message, Not(HasSubstr("[json")));
}

TEST(AnswersRejectTest, LongQuestionIdIsTruncatedInTheMessage) {
  const std::string id(1000, '9');
  const std::string message = reject(R"({"answers": {")" + id + R"(": []}})");
  EXPECT_THAT(message, AllOf(HasSubstr("question id \"" + id.substr(0, 32)), HasSubstr("...")));
  EXPECT_LT(message.size(), 200u);
}

TEST(AnswersRejectTest, FirstProblemIsReported) {
  // A bad question id comes before the trailing garbage: the client hears about the id.
  EXPECT_THAT(reject(R"({"answers": {"0": []}} garbage)"), HasSubstr(R"(question id "0")"));
}

// --- Nesting depth and hostile sizes ------------------------------------------------------

TEST(AnswersDepthTest, DefaultLimitIs32) {
  EXPECT_EQ(AnswersLimits{}.max_depth, 32u);
}

TEST(AnswersDepthTest, IgnoredArraysJustBelowTheLimitAreAccepted) {
  // The top-level object is level 1, so 30 arrays reach level 31.
  accept(with_ignored_field(nested_arrays(30)));
}

TEST(AnswersDepthTest, IgnoredArraysExactlyAtTheLimitAreAccepted) {
  accept(with_ignored_field(nested_arrays(31)));
}

TEST(AnswersDepthTest, IgnoredArraysJustAboveTheLimitAreRejected) {
  EXPECT_THAT(reject(with_ignored_field(nested_arrays(32))),
              HasSubstr("JSON nesting is deeper than 32 levels"));
}

TEST(AnswersDepthTest, IgnoredObjectsExactlyAtTheLimitAreAccepted) {
  accept(with_ignored_field(nested_objects(31)));
}

TEST(AnswersDepthTest, IgnoredObjectsJustAboveTheLimitAreRejected) {
  EXPECT_THAT(reject(with_ignored_field(nested_objects(32))),
              HasSubstr("JSON nesting is deeper than 32 levels"));
}

TEST(AnswersDepthTest, ValidDocumentsAfterDeepButAllowedFieldsStillValidate) {
  // Depth bookkeeping returns to the top level: a later bad option id is still caught.
  EXPECT_THAT(reject(R"({"x":)" + nested_arrays(31) + R"(,"answers":{"1":["a"]}})"),
              HasSubstr("option ids in question 1 must be integers"));
}

TEST(AnswersDepthTest, CustomLimitCountsTheTopLevelObject) {
  const std::string body = R"({"answers": {"1": [1]}})";  // object, object, array: 3 levels
  EXPECT_EQ(accept(body, AnswersLimits{3}).json, R"({"1":[1]})");
  EXPECT_THAT(reject(body, AnswersLimits{2}), HasSubstr("deeper than 2 levels"));
}

TEST(AnswersDepthTest, CustomLimitAppliesToIgnoredFields) {
  EXPECT_THAT(reject(with_ignored_field(nested_arrays(5)), AnswersLimits{5}),
              HasSubstr("deeper than 5 levels"));
  accept(with_ignored_field(nested_arrays(4)), AnswersLimits{5});
}

// Hostile input must fail fast and not recurse: each of these is checked for time as well.
class AnswersHostileTest : public testing::TestWithParam<RejectCase> {};

TEST_P(AnswersHostileTest, IsRejectedQuicklyWithoutCrashing) {
  const auto start = std::chrono::steady_clock::now();
  const std::string message = reject(GetParam().body);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(message, HasSubstr(std::string(GetParam().message_part)));
  EXPECT_LT(elapsed, std::chrono::seconds(1));
}

const std::string kDeepArraysInIgnoredField = R"({"x":)" + std::string(100000, '[');
const std::string kDeepClosedArraysInIgnoredField = with_ignored_field(nested_arrays(100000));
const std::string kDeepBraces(100000, '{');
const std::string kDeepObjectsInIgnoredField = with_ignored_field(nested_objects(100000));
const std::string kDeepArraysAtTopLevel(100000, '[');
const std::string kDeepArraysInOptions = R"({"answers": {"1": )" + std::string(100000, '[');
const std::string kDeepArraysInAnswers = R"({"answers": )" + std::string(100000, '[');

INSTANTIATE_TEST_SUITE_P(
    Nesting, AnswersHostileTest,
    testing::Values(
        RejectCase{"ArraysInIgnoredField", kDeepArraysInIgnoredField, "deeper than 32 levels"},
        RejectCase{"ClosedArraysInIgnoredField", kDeepClosedArraysInIgnoredField,
                   "deeper than 32 levels"},
        RejectCase{"OpeningBraces", kDeepBraces, kMalformed},
        RejectCase{"ObjectsInIgnoredField", kDeepObjectsInIgnoredField, "deeper than 32 levels"},
        RejectCase{"ArraysAtTopLevel", kDeepArraysAtTopLevel, kNotObject},
        RejectCase{"ArraysInOptions", kDeepArraysInOptions, "must be integers, not an array"},
        RejectCase{"ArraysAsAnswers", kDeepArraysInAnswers, R"("answers" must be an object)"}),
    [](const auto& test) { return std::string(test.param.name); });

}  // namespace
}  // namespace attempts
