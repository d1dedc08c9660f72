// The progress stream's pure parts: the state a watch keeps of an exam (which rows changed, the
// events that resumes are served from), the totals, and the Server-Sent Events'
// bytes. Checked against a simple model: a consumer applying snapshot then changes ends with
// exactly the rows the reads returned.

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "attempts/progress/exam_progress_state.hpp"
#include "attempts/progress/progress_events.hpp"
#include "db/progress_rows.hpp"

namespace attempts::progress {
namespace {

constexpr UnixMicros kSecond = 1'000'000;
// 2026-12-07T06:00:00Z
constexpr UnixMicros kNoon = 1'796'623'200LL * kSecond;

ProgressAttempt attempt(AttemptId id, std::int32_t answered = 0,
                        std::optional<UnixMicros> updated = std::nullopt) {
  return {id, 100 + id, answered, kNoon, updated, std::nullopt, std::nullopt};
}

// The data line of one SSE event, parsed.
nlohmann::json data_of(const std::string& event) {
  const auto start = event.find("\ndata: ");
  const auto end = event.find('\n', start + 1);
  return nlohmann::json::parse(event.substr(start + 7, end - start - 7));
}

TEST(ProgressTimeTest, MicrosecondsPrintAsRfc3339InUtcWithZ) {
  std::string out;
  append_rfc3339_micros(out, kNoon + 123456);
  EXPECT_EQ(out, "2026-12-07T06:00:00.123456Z");
  out.clear();
  append_rfc3339_micros(out, 0);
  EXPECT_EQ(out, "1970-01-01T00:00:00.000000Z");
}

TEST(ProgressTimeTest, PostgresIsoTextParsesToMicroseconds) {
  EXPECT_EQ(db::micros_from_iso("2026-12-07 06:00:00.123456+00"), kNoon + 123456);
  EXPECT_EQ(db::micros_from_iso("2026-12-07 06:00:00.5+00"), kNoon + 500000);
  EXPECT_EQ(db::micros_from_iso("2026-12-07 06:00:00+00"), kNoon);
  EXPECT_EQ(db::micros_from_iso("infinity"), std::nullopt);
  EXPECT_EQ(db::micros_from_iso("2026-12-07 06:00:00+02"), std::nullopt);
  EXPECT_EQ(db::micros_from_iso("2026-02-30 06:00:00+00"), std::nullopt);
  // Round trip through the stream's printing.
  std::string out;
  append_rfc3339_micros(out, *db::micros_from_iso("2024-02-29 23:59:59.999999+00"));
  EXPECT_EQ(out, "2024-02-29T23:59:59.999999Z");
}

TEST(ProgressEventIdTest, ParsesWatchAndSequence) {
  const auto id = parse_event_id("Ab3xYz-42");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->watch, "Ab3xYz");
  EXPECT_EQ(id->seq, 42u);
  EXPECT_EQ(event_id("Ab3xYz", 42), "Ab3xYz-42");
  for (const char* bad : {"", "-1", "abc-", "abc", "a_b-1", "abc-01", "abc-1x", "abc--1",
                          "abc-99999999999999999999999"}) {
    EXPECT_FALSE(parse_event_id(bad)) << bad;
  }
}

TEST(ProgressStateTest, FirstReadIsTheStateAndLaterReadsGiveOnlyWhatChanged) {
  ExamProgressState state(10);
  EXPECT_FALSE(state.ready());
  const auto first = state.apply({attempt(2), attempt(1)}, kNoon);
  EXPECT_TRUE(state.ready());
  EXPECT_EQ(state.seq(), 1u);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].id, 1);  // by id
  // The overlap returns rows already known: they are not changes.
  const auto second = state.apply({attempt(1), attempt(2, 3, kNoon + kSecond)}, kNoon + kSecond);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].answered, 3);
  EXPECT_EQ(state.seq(), 2u);
  const auto third = state.apply({}, kNoon + 2 * kSecond);
  EXPECT_TRUE(third.empty());
  EXPECT_EQ(state.seq(), 3u);
}

TEST(ProgressStateTest, ResumeMergesTheChangesAfterTheIdAsTheyAreNow) {
  ExamProgressState state(10);
  state.apply({attempt(1), attempt(2)}, kNoon);                            // 1
  state.apply({attempt(1, 1, kNoon + 1)}, kNoon + kSecond);                // 2
  state.apply({attempt(3)}, kNoon + 2 * kSecond);                          // 3
  state.apply({attempt(1, 2, kNoon + 3 * kSecond)}, kNoon + 3 * kSecond);  // 4
  const auto after1 = state.changed_after(1);
  ASSERT_TRUE(after1);
  ASSERT_EQ(after1->size(), 2u);
  EXPECT_EQ((*after1)[0].id, 1);
  EXPECT_EQ((*after1)[0].answered, 2);  // as it is now, once
  EXPECT_EQ((*after1)[1].id, 3);
  const auto after3 = state.changed_after(3);
  ASSERT_TRUE(after3);
  ASSERT_EQ(after3->size(), 1u);
  EXPECT_TRUE(state.changed_after(4)->empty());  // up to date
  EXPECT_FALSE(state.changed_after(5));          // never issued
  EXPECT_FALSE(state.changed_after(0));          // before the state existed
}

TEST(ProgressStateTest, TooOldForTheRingIsNotResumable) {
  ExamProgressState state(3);
  state.apply({attempt(1)}, kNoon);  // 1
  for (int i = 2; i <= 6; ++i) state.apply({attempt(1, i)}, kNoon + i * kSecond);
  // The last 3 events are 4, 5, 6: resuming after 3 or later works, after 2 does not.
  EXPECT_TRUE(state.changed_after(3));
  EXPECT_TRUE(state.changed_after(6));
  EXPECT_FALSE(state.changed_after(2));
  EXPECT_FALSE(state.changed_after(1));
}

TEST(ProgressTotalsTest, CountsSavingQuietAndSubmittedAsOfAt) {
  const UnixMicros at = kNoon + 1000 * kSecond;
  std::map<AttemptId, ProgressAttempt> attempts;
  attempts[1] = attempt(1, 1, at - 10 * kSecond);   // saving
  attempts[2] = attempt(2, 1, at - 100 * kSecond);  // neither
  attempts[3] = attempt(3, 0);                      // started at kNoon, 1000 s ago: quiet
  attempts[4] = attempt(4, 2, at - 5 * kSecond);
  attempts[4].submitted_at = at - kSecond;          // submitted: neither saving nor quiet
  attempts[5] = attempt(5, 1, at - 301 * kSecond);  // quiet
  const auto totals = count_totals(attempts, at, std::chrono::seconds(300));
  EXPECT_EQ(totals, (ProgressTotals{5, 1, 2, 1}));
}

TEST(ProgressEventsTest, SnapshotAndChangesAreOneDataLineOfJsonInWireOrder) {
  std::map<AttemptId, ProgressAttempt> attempts;
  attempts[7] = attempt(7, 2, kNoon + kSecond);
  attempts[7].deadline = kNoon + 3600 * kSecond;
  const ProgressEventHeader header{9, "w1", 5, kNoon + 2 * kSecond, {1, 1, 0, 0}};
  const std::string snapshot =
      snapshot_event(header, attempts, std::chrono::milliseconds(2000), std::chrono::seconds(300));
  EXPECT_TRUE(snapshot.starts_with("id: w1-5\nevent: snapshot\ndata: {"));
  EXPECT_TRUE(snapshot.ends_with("}\n\n"));
  EXPECT_EQ(std::count(snapshot.begin(), snapshot.end(), '\n'), 4);
  const auto data = data_of(snapshot);
  EXPECT_EQ(data["exam_id"], 9);
  EXPECT_EQ(data["at"], "2026-12-07T06:00:02.000000Z");
  EXPECT_EQ(data["interval_ms"], 2000);
  EXPECT_EQ(data["quiet_after_s"], 300);
  EXPECT_EQ(data["totals"],
            (nlohmann::json{{"attempts", 1}, {"saving", 1}, {"quiet", 0}, {"submitted", 0}}));
  ASSERT_EQ(data["attempts"].size(), 1u);
  const auto& row = data["attempts"][0];
  EXPECT_EQ(row["id"], 7);
  EXPECT_EQ(row["student_id"], 107);
  EXPECT_EQ(row["answered"], 2);
  EXPECT_EQ(row["started_at"], "2026-12-07T06:00:00.000000Z");
  EXPECT_EQ(row["updated_at"], "2026-12-07T06:00:01.000000Z");
  EXPECT_TRUE(row["submitted_at"].is_null());
  EXPECT_EQ(row["deadline"], "2026-12-07T07:00:00.000000Z");

  const std::string changes = changes_event(header, {});
  EXPECT_TRUE(changes.starts_with("id: w1-5\nevent: changes\ndata: {"));
  const auto changed = data_of(changes);
  EXPECT_TRUE(changed["attempts"].empty());
  EXPECT_FALSE(changed.contains("interval_ms"));
  EXPECT_EQ(retry_field(std::chrono::milliseconds(2000)), "retry: 2000\n");
}

// Random reads (each row changing or not, rows appearing) applied to the state; a consumer that
// takes the first snapshot then every changes event, or resumes from any id still in the ring,
// holds exactly the last state.
TEST(ProgressStateTest, GeneratedReadsKeepAConsumerEqualToTheTable) {
  const auto seed = std::random_device{}();
  std::mt19937 random(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::map<AttemptId, ProgressAttempt> table;
  ExamProgressState state(8);
  std::map<AttemptId, ProgressAttempt> consumer;
  std::vector<std::map<AttemptId, ProgressAttempt>> consumer_at;  // after each event
  UnixMicros now = kNoon;
  for (int read = 0; read < 200; ++read) {
    now += kSecond;
    std::vector<ProgressAttempt> rows;
    const int touched = static_cast<int>(random() % 6);
    for (int i = 0; i < touched; ++i) {
      const AttemptId id = 1 + static_cast<AttemptId>(random() % 30);
      auto& row = table.try_emplace(id, attempt(id)).first->second;
      if (random() % 2 == 0) {
        row.answered = static_cast<std::int32_t>(random() % 10);
        row.updated_at = now;
      }
      if (random() % 20 == 0) row.submitted_at = now;
      rows.push_back(row);
    }
    // The overlap: rows read again unchanged.
    for (const auto& [id, row] : table) {
      if (random() % 4 == 0) rows.push_back(row);
    }
    const auto changed = state.apply(rows, now);
    if (state.seq() == 1) {
      for (const auto& [id, tracked] : state.attempts()) consumer[id] = tracked.attempt;
    } else {
      for (const auto& row : changed) consumer[row.id] = row;
    }
    consumer_at.push_back(consumer);
    ASSERT_EQ(consumer, table) << "after read " << read;
    // A consumer that stopped at any event still in the ring catches up with one merge.
    for (std::uint64_t from = 1; from <= state.seq(); ++from) {
      const auto merged = state.changed_after(from);
      if (!merged) continue;
      auto resumed = consumer_at[from - 1];
      for (const auto& row : *merged) resumed[row.id] = row;
      ASSERT_EQ(resumed, table) << "resumed after " << from << " at read " << read;
    }
  }
}

}  // namespace
}  // namespace attempts::progress
