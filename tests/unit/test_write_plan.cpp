// Unit tests for plan_writes: how queued writes are coalesced into UPDATE statements.
#include "attempts/db/write_plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

namespace attempts::db {
namespace {

WritePlan plan(const std::vector<WriteKey>& writes, std::size_t max_rows = 256) {
  WritePlan result;
  plan_writes(writes, max_rows, result);
  return result;
}

WriteKey write(AttemptId id) {
  return {id, std::nullopt};
}
WriteKey write(AttemptId id, Revision revision) {
  return {id, revision};
}

TEST(WritePlanTest, NothingQueuedPlansNothing) {
  const auto result = plan({});
  EXPECT_TRUE(result.statements.empty());
  EXPECT_TRUE(result.placement.empty());
}

TEST(WritePlanTest, DistinctAttemptsGoOutInOneStatementInAscendingOrder) {
  const auto result = plan({write(30), write(10), write(20)});
  ASSERT_EQ(result.statements.size(), 1u);
  EXPECT_EQ(result.statements[0].ids, (std::vector<AttemptId>{10, 20, 30}));
  EXPECT_EQ(result.statements[0].sent, (std::vector<std::size_t>{1, 2, 0}));
  for (const auto& placement : result.placement) EXPECT_TRUE(placement.sent);
  EXPECT_EQ(result.placement[0].row, 2u);
  EXPECT_EQ(result.placement[1].row, 0u);
}

TEST(WritePlanTest, WithoutRevisionsTheLastWriteToAnAttemptWins) {
  const auto result = plan({write(5), write(7), write(5), write(5)});
  ASSERT_EQ(result.statements.size(), 1u);
  EXPECT_EQ(result.statements[0].ids, (std::vector<AttemptId>{5, 7}));
  EXPECT_EQ(result.statements[0].sent[0], 3u);
  EXPECT_FALSE(result.placement[0].sent);
  EXPECT_FALSE(result.placement[2].sent);
  EXPECT_TRUE(result.placement[3].sent);
  EXPECT_EQ(result.placement[0].row, 0u);
}

TEST(WritePlanTest, WithRevisionsTheHighestWinsWhateverTheOrder) {
  const auto result = plan({write(5, 3), write(5, 9), write(5, 4)});
  ASSERT_EQ(result.statements.size(), 1u);
  EXPECT_EQ(result.statements[0].sent[0], 1u);
  EXPECT_TRUE(result.placement[1].sent);
  EXPECT_FALSE(result.placement[0].sent);
  EXPECT_FALSE(result.placement[2].sent);
}

TEST(WritePlanTest, AmongEqualRevisionsTheLastReceivedWins) {
  const auto result = plan({write(5, 4), write(5, 4)});
  EXPECT_EQ(result.statements[0].sent[0], 1u);
}

TEST(WritePlanTest, SwitchingBetweenRevisionedAndPlainWritesStartsANewStatement) {
  // Attempt 5: plain, plain, revisioned, plain -> three runs in three statements, in order.
  const auto result = plan({write(5), write(6), write(5), write(5, 2), write(5)});
  ASSERT_EQ(result.statements.size(), 3u);
  EXPECT_EQ(result.statements[0].ids, (std::vector<AttemptId>{5, 6}));
  EXPECT_EQ(result.statements[0].sent, (std::vector<std::size_t>{2, 1}));
  EXPECT_EQ(result.statements[1].ids, (std::vector<AttemptId>{5}));
  EXPECT_EQ(result.statements[1].sent, (std::vector<std::size_t>{3}));
  EXPECT_EQ(result.statements[2].sent, (std::vector<std::size_t>{4}));
  EXPECT_EQ(result.placement[0].statement, 0u);
  EXPECT_EQ(result.placement[3].statement, 1u);
  EXPECT_EQ(result.placement[4].statement, 2u);
}

TEST(WritePlanTest, MaxRowsSplitsAStatementKeepingEachAttemptInOne) {
  const auto result = plan({write(1), write(2), write(3), write(2), write(4), write(5)}, 2);
  ASSERT_EQ(result.statements.size(), 3u);
  EXPECT_EQ(result.statements[0].ids, (std::vector<AttemptId>{1, 2}));
  EXPECT_EQ(result.statements[1].ids, (std::vector<AttemptId>{3, 4}));
  EXPECT_EQ(result.statements[2].ids, (std::vector<AttemptId>{5}));
  EXPECT_EQ(result.placement[1].statement, result.placement[3].statement);
  EXPECT_TRUE(result.placement[3].sent);
}

TEST(WritePlanTest, EveryWriteIsPlacedOnTheRowOfItsAttempt) {
  std::vector<WriteKey> writes;
  for (int i = 0; i < 200; ++i) {
    writes.push_back(i % 3 == 0 ? write(i % 17, i) : write(i % 17));
  }
  const auto result = plan(writes, 7);
  std::vector<int> sent_per_row_checked(writes.size(), 0);
  for (std::size_t w = 0; w < writes.size(); ++w) {
    const auto& placement = result.placement[w];
    ASSERT_LT(placement.statement, result.statements.size());
    const auto& statement = result.statements[placement.statement];
    ASSERT_LT(placement.row, statement.ids.size());
    EXPECT_EQ(statement.ids[placement.row], writes[w].id);
    EXPECT_EQ(placement.sent, statement.sent[placement.row] == w);
  }
  for (const auto& statement : result.statements) {
    EXPECT_LE(statement.ids.size(), 7u);
    EXPECT_TRUE(std::is_sorted(statement.ids.begin(), statement.ids.end()));
    EXPECT_EQ(std::adjacent_find(statement.ids.begin(), statement.ids.end()), statement.ids.end());
  }
}

WriteKey in_group(WriteKey key, std::uint32_t group) {
  key.group = group;
  return key;
}

TEST(WritePlanTest, GroupsNeverShareAStatement) {
  // Citus: the group is the shard. Ids 1 and 4 in shard 0, 2 and 3 in shard 1.
  const auto result = plan({in_group(write(3), 1), in_group(write(1), 0), in_group(write(2), 1),
                            in_group(write(4), 0)});
  ASSERT_EQ(result.statements.size(), 2u);
  EXPECT_EQ(result.statements[0].group, 0u);
  EXPECT_EQ(result.statements[0].ids, (std::vector<AttemptId>{1, 4}));
  EXPECT_EQ(result.statements[0].sent, (std::vector<std::size_t>{1, 3}));
  EXPECT_EQ(result.statements[1].group, 1u);
  EXPECT_EQ(result.statements[1].ids, (std::vector<AttemptId>{2, 3}));
  EXPECT_EQ(result.placement[0].statement, 1u);
  EXPECT_EQ(result.placement[0].row, 1u);
}

TEST(WritePlanTest, GroupingKeepsTheOrderOfEachAttempt) {
  // Attempt 7 (group 2): plain, revisioned, plain; attempt 8 (group 1): revisioned twice.
  // Each attempt's runs go out in the order received, and coalescing works within a group as
  // without groups.
  const auto result = plan({in_group(write(7), 2), in_group(write(8, 5), 1),
                            in_group(write(7, 3), 2), in_group(write(8, 9), 1),
                            in_group(write(7), 2), in_group(write(6), 1)});
  std::vector<std::size_t> statement_of(6);
  for (std::size_t w = 0; w < 6; ++w) statement_of[w] = result.placement[w].statement;
  EXPECT_LT(statement_of[0], statement_of[2]);
  EXPECT_LT(statement_of[2], statement_of[4]);
  EXPECT_EQ(statement_of[1], statement_of[3]);  // coalesced: the higher revision is sent
  EXPECT_TRUE(result.placement[3].sent);
  EXPECT_EQ(statement_of[1], statement_of[5]);  // same group and round: one statement
  for (const auto& statement : result.statements) {
    EXPECT_TRUE(std::is_sorted(statement.ids.begin(), statement.ids.end()));
  }
}

TEST(WritePlanTest, EveryStatementHoldsOneGroupUnderAnyMix) {
  std::vector<WriteKey> writes;
  for (int i = 0; i < 300; ++i) {
    const AttemptId id = (i * 7919) % 101;
    WriteKey key = i % 4 == 0 ? write(id, i) : write(id);
    key.group = static_cast<std::uint32_t>(id % 5);  // a function of the id, like a shard
    writes.push_back(key);
  }
  const auto result = plan(writes, 8);
  for (std::size_t w = 0; w < writes.size(); ++w) {
    const auto& statement = result.statements[result.placement[w].statement];
    EXPECT_EQ(statement.group, writes[w].group);
    EXPECT_EQ(statement.ids[result.placement[w].row], writes[w].id);
  }
  // Per attempt, statements in the order its writes were received.
  std::map<AttemptId, std::size_t> last_statement;
  for (std::size_t w = 0; w < writes.size(); ++w) {
    const auto at = last_statement.find(writes[w].id);
    if (at != last_statement.end()) {
      EXPECT_GE(result.placement[w].statement, at->second);
    }
    last_statement[writes[w].id] = result.placement[w].statement;
  }
}

TEST(WritePlanTest, ABufferIsReusedAcrossPlans) {
  WritePlan reused;
  plan_writes(std::vector<WriteKey>{write(1), write(2)}, 256, reused);
  plan_writes(std::vector<WriteKey>{write(9)}, 256, reused);
  ASSERT_EQ(reused.statements.size(), 1u);
  EXPECT_EQ(reused.statements[0].ids, (std::vector<AttemptId>{9}));
  EXPECT_EQ(reused.placement.size(), 1u);
}

}  // namespace
}  // namespace attempts::db
