// The export's pure parts: its query, the Accept negotiation, RFC 4180 quoting, and what the
// NDJSON and CSV encoders write for one attempt.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "attempts/http/export_format.hpp"

namespace attempts::http {
namespace {

ExportFilter filter_of(std::string_view target) {
  auto parsed = parse_export_query(target);
  EXPECT_TRUE(std::holds_alternative<ExportFilter>(parsed)) << target;
  return std::holds_alternative<ExportFilter>(parsed) ? std::get<ExportFilter>(parsed)
                                                      : ExportFilter{};
}

std::string error_of(std::string_view target) {
  auto parsed = parse_export_query(target);
  EXPECT_TRUE(std::holds_alternative<std::string>(parsed)) << target;
  return std::holds_alternative<std::string>(parsed) ? std::get<std::string>(parsed) : "";
}

TEST(ExportQueryTest, NoQueryIsEveryAttempt) {
  EXPECT_EQ(filter_of("/exams/1/attempts"), ExportFilter{});
  EXPECT_EQ(filter_of("/exams/1/attempts?"), ExportFilter{});
}

TEST(ExportQueryTest, SubmittedAndUpdatedSinceAreRead) {
  EXPECT_EQ(filter_of("/exams/1/attempts?submitted=true").submitted, true);
  EXPECT_EQ(filter_of("/exams/1/attempts?submitted=false").submitted, false);
  const ExportFilter both =
      filter_of("/exams/1/attempts?updated_since=2026-12-07T10:03:00%2B01:00&submitted=true");
  EXPECT_EQ(both.updated_since, "2026-12-07T09:03:00.000000Z");  // sent in UTC
  EXPECT_EQ(both.submitted, true);
  EXPECT_EQ(filter_of("/exams/1/attempts?updated_since=2026-12-07T10:03:00.5Z").updated_since,
            "2026-12-07T10:03:00.500000Z");
  // PostgreSQL refuses year 0 and offsets past 15:59: the instant meant is kept in range.
  EXPECT_EQ(filter_of("/exams/1/attempts?updated_since=0000-01-01T00:00:00Z").updated_since,
            "0001-01-01T00:00:00.000000Z");
  EXPECT_EQ(filter_of("/exams/1/attempts?updated_since=2026-12-07T10:00:00%2B23:59").updated_since,
            "2026-12-06T10:01:00.000000Z");
}

TEST(ExportQueryTest, BadValuesRepeatsAndUnknownParametersAre400s) {
  EXPECT_NE(error_of("/x?submitted=yes").find("true or false"), std::string::npos);
  EXPECT_NE(error_of("/x?submitted=true&submitted=false").find("twice"), std::string::npos);
  EXPECT_NE(error_of("/x?updated_since=2026-12-07").find("RFC 3339"), std::string::npos);
  EXPECT_NE(error_of("/x?updated_since=2026-02-30T00:00:00Z").find("RFC 3339"), std::string::npos);
  EXPECT_NE(error_of("/x?updated_since=2026-12-07T10:03:00Z&updated_since=2026-12-07T10:03:00Z")
                .find("twice"),
            std::string::npos);
  EXPECT_NE(error_of("/x?format=csv").find("unknown query parameter 'format'"), std::string::npos);
  EXPECT_NE(error_of("/x?submitted=%zz").find("%-escape"), std::string::npos);
}

TEST(ExportAcceptTest, NdjsonByDefaultCsvWhenAskedFor) {
  EXPECT_EQ(negotiate_export_format(""), ExportFormat::ndjson);
  EXPECT_EQ(negotiate_export_format("*/*"), ExportFormat::ndjson);
  EXPECT_EQ(negotiate_export_format("application/x-ndjson"), ExportFormat::ndjson);
  EXPECT_EQ(negotiate_export_format("text/csv"), ExportFormat::csv);
  EXPECT_EQ(negotiate_export_format("TEXT/CSV; charset=utf-8"), ExportFormat::csv);
  EXPECT_EQ(negotiate_export_format("text/*"), ExportFormat::csv);
  // A browser's download: text/csv named among others.
  EXPECT_EQ(negotiate_export_format("text/csv, */*;q=0.1"), ExportFormat::csv);
  EXPECT_EQ(negotiate_export_format("text/csv;q=0.5, application/x-ndjson"), ExportFormat::ndjson);
  EXPECT_EQ(negotiate_export_format("application/x-ndjson;q=0.2, text/csv;q=0.9"),
            ExportFormat::csv);
  // Equal weights: the type named exactly wins over */*.
  EXPECT_EQ(negotiate_export_format("*/*, text/csv"), ExportFormat::csv);
}

TEST(ExportAcceptTest, NeitherAcceptableIsNone) {
  EXPECT_EQ(negotiate_export_format("application/json"), std::nullopt);
  EXPECT_EQ(negotiate_export_format("text/html, application/xml"), std::nullopt);
  EXPECT_EQ(negotiate_export_format("text/csv;q=0, application/x-ndjson;q=0"), std::nullopt);
  EXPECT_EQ(negotiate_export_format("*/*;q=0"), std::nullopt);
}

TEST(AcceptEncodingTest, GzipWhenNamedOrCoveredByAStarWithAWeightAboveZero) {
  EXPECT_FALSE(accepts_gzip(""));  // no field: no coding
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("gzip, deflate, br, zstd"));  // what Chromium sends
  EXPECT_TRUE(accepts_gzip("GZIP"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("br;q=1.0, gzip;q=0.8, *;q=0.1"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("identity, *;q=0.5"));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("br, deflate"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0.000, *"));  // named at 0: the star does not override it
  EXPECT_FALSE(accepts_gzip("*;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=2"));  // a malformed weight counts as 0
  EXPECT_TRUE(accepts_gzip(" gzip ; q=0.001 "));
  EXPECT_FALSE(accepts_gzip("gzip;level=9;q=0"));  // q after another parameter still counts
}

TEST(CsvFieldTest, QuotedOnlyWhenNeededInnerQuotesDoubled) {
  const auto field = [](std::string_view value, bool always = false) {
    std::string out;
    append_csv_field(out, value, always);
    return out;
  };
  EXPECT_EQ(field("plain"), "plain");
  EXPECT_EQ(field(""), "");
  EXPECT_EQ(field("a,b"), "\"a,b\"");
  EXPECT_EQ(field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(field("line\nbreak"), "\"line\nbreak\"");
  EXPECT_EQ(field("cr\r"), "\"cr\r\"");
  EXPECT_EQ(field("{}", true), "\"{}\"");
  EXPECT_EQ(field(R"({"1":[2],"2":[1,3]})", true), R"("{""1"":[2],""2"":[1,3]}")");
}

ExportedAttempt sample_attempt() {
  ExportedAttempt attempt;
  attempt.id = 12;
  attempt.student_id = 34;
  attempt.answers_json = R"({"1": [2], "2": [1, 3]})";
  attempt.revision = 5;
  attempt.started_at = "2026-12-07T09:00:00+00:00";
  attempt.updated_at = "2026-12-07T09:10:00.5+00:00";
  attempt.submitted_at = std::nullopt;
  attempt.deadline = "2026-12-07T10:00:00+00:00";
  attempt.saves = 9;
  return attempt;
}

TEST(ExportEncoderTest, NdjsonIsOneJsonObjectPerLine) {
  std::string out;
  const ExportEncoder& encoder = export_encoder(ExportFormat::ndjson);
  encoder.begin(out);
  EXPECT_EQ(out, "");
  encoder.row(sample_attempt(), out);
  encoder.row(sample_attempt(), out);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  const auto first = nlohmann::json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(first, nlohmann::json::parse(R"({"id":12,"student_id":34,
      "answers":{"1":[2],"2":[1,3]},"revision":5,"started_at":"2026-12-07T09:00:00+00:00",
      "updated_at":"2026-12-07T09:10:00.5+00:00","submitted_at":null,
      "deadline":"2026-12-07T10:00:00+00:00","saves":9})"));
}

TEST(ExportEncoderTest, CsvHasAHeaderThenOneCrlfLinePerAttemptWithTheAnswersQuoted) {
  std::string out;
  const ExportEncoder& encoder = export_encoder(ExportFormat::csv);
  encoder.begin(out);
  encoder.row(sample_attempt(), out);
  EXPECT_EQ(out,
            "id,student_id,answers,revision,started_at,updated_at,submitted_at,deadline,saves\r\n"
            "12,34,\"{\"\"1\"\": [2], \"\"2\"\": [1, 3]}\",5,2026-12-07T09:00:00+00:00,"
            "2026-12-07T09:10:00.5+00:00,,2026-12-07T10:00:00+00:00,9\r\n");
  EXPECT_EQ(content_type(ExportFormat::csv), "text/csv; charset=utf-8; header=present");
  EXPECT_EQ(content_type(ExportFormat::ndjson), "application/x-ndjson");
}

}  // namespace
}  // namespace attempts::http
