// GET /attempts/{id}/history: its route, its query (cursor, limit, instant) and its JSON.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "attempts/http/history_query.hpp"
#include "attempts/http/responses.hpp"
#include "attempts/http/router.hpp"

namespace attempts::http {
namespace {

HistoryQuery parsed(std::string_view target) {
  auto result = parse_history_query(target);
  if (auto* error = std::get_if<std::string>(&result)) ADD_FAILURE() << target << ": " << *error;
  return std::get_if<HistoryQuery>(&result) ? std::get<HistoryQuery>(result) : HistoryQuery{};
}

std::string refusal(std::string_view target) {
  auto result = parse_history_query(target);
  if (std::holds_alternative<HistoryQuery>(result)) {
    ADD_FAILURE() << target << " was accepted";
    return {};
  }
  return std::get<std::string>(result);
}

TEST(HistoryRouteTest, ReadsOnlyWithAValidId) {
  EXPECT_EQ(match_route(Verb::get, "/attempts/42/history").route, Route::get_history);
  EXPECT_EQ(match_route(Verb::get, "/attempts/42/history").attempt_id, 42);
  EXPECT_EQ(match_route(Verb::head, "/attempts/42/history?limit=3").route, Route::get_history);
  const RouteMatch patch = match_route(Verb::patch, "/attempts/42/history");
  EXPECT_EQ(patch.route, Route::method_not_allowed);
  EXPECT_EQ(patch.allow, "GET, HEAD");
  EXPECT_EQ(match_route(Verb::get, "/attempts/0/history").route, Route::bad_attempt_id);
  EXPECT_EQ(match_route(Verb::get, "/attempts/42/history/").route, Route::not_found);
  EXPECT_EQ(match_route(Verb::get, "/attempts/42/histories").route, Route::not_found);
}

TEST(HistoryQueryTest, DefaultsToTheNewestPageOfFifty) {
  const HistoryQuery query = parsed("/attempts/1/history");
  EXPECT_FALSE(query.before);
  EXPECT_EQ(query.limit, 50);
  EXPECT_FALSE(query.at);
  EXPECT_EQ(parsed("/attempts/1/history?").limit, 50);
}

TEST(HistoryQueryTest, TakesACursorAndALimit) {
  const HistoryQuery query = parsed("/attempts/1/history?before=12&limit=200");
  EXPECT_EQ(query.before, 12);
  EXPECT_EQ(query.limit, 200);
  EXPECT_EQ(parsed("/attempts/1/history?limit=1&before=9223372036854775807").before,
            9223372036854775807);
}

TEST(HistoryQueryTest, AnInstantAsksForOneEntryAndIsPercentDecoded) {
  const HistoryQuery query = parsed("/attempts/1/history?at=2026-12-07T10%3A03%3A00.5%2B01%3A00");
  EXPECT_EQ(query.at, "2026-12-07T10:03:00.5+01:00");
  EXPECT_EQ(query.limit, 1);
  EXPECT_EQ(parsed("/attempts/1/history?at=2026-12-07t10:03:00z").at, "2026-12-07t10:03:00z");
}

TEST(HistoryQueryTest, RefusesWhatItCannotMean) {
  EXPECT_NE(refusal("/h?before=0").find("before must be a positive integer"), std::string::npos);
  EXPECT_NE(refusal("/h?before=-3").find("before"), std::string::npos);
  EXPECT_NE(refusal("/h?before=1&before=2").find("twice"), std::string::npos);
  EXPECT_NE(refusal("/h?limit=0").find("from 1 to 200"), std::string::npos);
  EXPECT_NE(refusal("/h?limit=201").find("from 1 to 200"), std::string::npos);
  EXPECT_NE(refusal("/h?limit=ten").find("limit"), std::string::npos);
  EXPECT_NE(refusal("/h?page=2").find("unknown query parameter 'page'"), std::string::npos);
  EXPECT_NE(refusal("/h?at=yesterday").find("RFC 3339"), std::string::npos);
  EXPECT_NE(refusal("/h?at=2026-12-07T10:03:00Z&limit=5").find("cannot be given with"),
            std::string::npos);
  EXPECT_NE(refusal("/h?at=2026-12-07T10:03:00Z&at=2026-12-07T10:03:00Z").find("twice"),
            std::string::npos);
  EXPECT_NE(refusal("/h?at=2026-12-07T10%3").find("%-escape"), std::string::npos);
}

TEST(HistoryQueryTest, AnInstantIsSentInUtcWithinTheYearsEveryStoreTakes) {
  EXPECT_EQ(rfc3339_in_utc("2026-12-07T10:03:00Z"), "2026-12-07T10:03:00.000000Z");
  EXPECT_EQ(rfc3339_in_utc("2026-12-07T10:03:00.1234567+01:30"), "2026-12-07T08:33:00.123456Z");
  EXPECT_EQ(rfc3339_in_utc("2026-12-31T23:30:00-01:00"), "2027-01-01T00:30:00.000000Z");
  EXPECT_EQ(rfc3339_in_utc("2024-03-01T00:10:00+23:59"), "2024-02-29T00:11:00.000000Z");
  EXPECT_EQ(rfc3339_in_utc("2016-12-31T23:59:60Z"), "2017-01-01T00:00:00.000000Z");
  // PostgreSQL refuses year 0 and offsets past 15:59: what the client meant is kept in range.
  EXPECT_EQ(rfc3339_in_utc("0000-01-01T00:00:00Z"), "0001-01-01T00:00:00.000000Z");
  EXPECT_EQ(rfc3339_in_utc("9999-12-31T23:59:59-23:00"), "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(parsed("/h?at=2026-12-07T10:00:00%2B23:59").at_utc, "2026-12-06T10:01:00.000000Z");
}

TEST(HistoryQueryTest, Rfc3339NeedsAFullDateTimeWithAnOffset) {
  for (const char* good : {"2026-12-07T10:03:00Z", "2024-02-29T23:59:60.123456Z",
                           "2026-12-07T10:03:00-23:59", "2026-01-01t00:00:00z"}) {
    EXPECT_TRUE(is_rfc3339_date_time(good)) << good;
  }
  for (const char* bad :
       {"2026-12-07", "2026-12-07T10:03:00", "2026-12-07 10:03:00Z", "2025-02-29T10:03:00Z",
        "2026-13-01T10:03:00Z", "2026-12-07T24:00:00Z", "2026-12-07T10:60:00Z",
        "2026-12-07T10:03:00.Z", "2026-12-07T10:03:00+24:00", "2026-12-07T10:03:00+0100",
        "2026-12-07T10:03:00Zjunk", "+02026-12-07T10:03:00Z", ""}) {
    EXPECT_FALSE(is_rfc3339_date_time(bad)) << bad;
  }
}

StoreCall history_call(std::int32_t limit, std::initializer_list<std::int64_t> seqs) {
  StoreCall call;
  call.kind = StoreCall::Kind::load_history;
  call.attempt_id = 42;
  call.saves = 7;
  call.history_query.limit = limit;
  for (const auto seq : seqs) {
    HistoryEntry& entry = call.history.emplace_back();
    entry.seq = seq;
    entry.kind = seq == 0 ? HistoryEntry::Kind::start : HistoryEntry::Kind::save;
    entry.written_at = "2026-12-07T10:03:0" + std::to_string(seq % 10) + "+00:00";
    if (seq % 2 == 1) entry.revision = seq * 10;
    entry.writes = 2;
    entry.answers_json = R"({"1": [)" + std::to_string(seq) + "]}";
  }
  call.outcome = StoreOutcome::done;
  return call;
}

TEST(HistoryJsonTest, AFullPageGivesTheCursorOfTheNext) {
  const auto body = nlohmann::json::parse(history_json(history_call(2, {7, 6})));
  EXPECT_EQ(body["id"], 42);
  EXPECT_EQ(body["saves"], 7);
  ASSERT_EQ(body["entries"].size(), 2u);
  EXPECT_EQ(body["entries"][0]["seq"], 7);
  EXPECT_EQ(body["entries"][0]["kind"], "save");
  EXPECT_EQ(body["entries"][0]["revision"], 70);
  EXPECT_EQ(body["entries"][1]["revision"], nullptr);
  EXPECT_EQ(body["entries"][0]["writes"], 2);
  EXPECT_EQ(body["entries"][0]["answers"], nlohmann::json::parse(R"({"1":[7]})"));
  EXPECT_EQ(body["next"], "/attempts/42/history?before=6&limit=2");
}

TEST(HistoryJsonTest, TheLastPageHasNoNext) {
  EXPECT_EQ(nlohmann::json::parse(history_json(history_call(5, {2, 1, 0})))["next"], nullptr);
  // A full page ending at the start has nothing older.
  const auto started = nlohmann::json::parse(history_json(history_call(2, {1, 0})));
  EXPECT_EQ(started["next"], nullptr);
  EXPECT_EQ(started["entries"][1]["kind"], "start");
  EXPECT_EQ(nlohmann::json::parse(history_json(history_call(5, {})))["entries"],
            nlohmann::json::array());
}

TEST(HistoryJsonTest, AnInstantGivesTheEntryInForceAndItsAnswers) {
  StoreCall call = history_call(1, {3});
  call.history_query.at = "2026-12-07T10:03:05Z";
  const auto body = nlohmann::json::parse(history_json(call));
  EXPECT_EQ(body["at"], "2026-12-07T10:03:05Z");
  EXPECT_EQ(body["entry"]["seq"], 3);
  EXPECT_EQ(body["answers"], nlohmann::json::parse(R"({"1":[3]})"));
  EXPECT_FALSE(body.contains("entries"));
  StoreCall before_any = history_call(1, {});
  before_any.history_query.at = "2020-01-01T00:00:00Z";
  const auto empty = nlohmann::json::parse(history_json(before_any));
  EXPECT_EQ(empty["entry"], nullptr);
  EXPECT_EQ(empty["answers"], nlohmann::json::object());
}

TEST(HistoryJsonTest, TheResponseIsForItsStudentAlone) {
  const Response response = store_response(history_call(5, {1}), std::chrono::seconds(1));
  EXPECT_EQ(response.result(), Status::ok);
  EXPECT_EQ(response[beast_http::field::cache_control], "no-store");
  StoreCall missing = history_call(5, {});
  missing.outcome = StoreOutcome::not_found;
  EXPECT_EQ(store_response(missing, std::chrono::seconds(1)).result(), Status::not_found);
}

}  // namespace
}  // namespace attempts::http
