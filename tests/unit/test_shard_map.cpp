// Unit tests for the client-side Citus shard map: PostgreSQL's hashint8 and the hash ranges.
//
// How the vectors were produced: every expected hash below was printed by a real PostgreSQL
// 15.20 (Debian 12's postgresql-15, x86_64) with
//   SELECT x, hashint8(x) FROM unnest(ARRAY[0, 1, -1, ...]::bigint[]) AS x;
// and the expected shard indices by Citus 13.2.2 on a coordinator with two workers, after
// sql/schema.sql and sql/citus.sql (32 shards), with
//   SELECT id, get_shard_id_for_distribution_column('attempts', id) ...
// the shard id turned into an index by ordering pg_dist_shard by shardminvalue::int. The
// integration test CitusTest.ClientShardMapMatchesCitusForEverySeededAttempt checks all ids
// 1..100000 against a live cluster.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "attempts/db/shard_map.hpp"

namespace attempts::db {
namespace {

constexpr std::int32_t kMin32 = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t kMax32 = std::numeric_limits<std::int32_t>::max();
constexpr std::int64_t kMin64 = std::numeric_limits<std::int64_t>::min();

struct HashVector {
  std::int64_t value;
  std::int32_t hash;
};

// SELECT x, hashint8(x) on PostgreSQL 15.
constexpr HashVector kHashVectors[] = {
    {0LL, -272711505},
    {1LL, -1905060026},
    {-1LL, 385747274},
    {2LL, 1134484726},
    {-2LL, -1242090879},
    {3LL, -28094569},
    {7LL, -978793473},
    {13LL, 1073282396},
    {31LL, -1814551367},
    {42LL, 1509752520},
    {77LL, -1172168408},
    {100LL, 108199381},
    {256LL, 1851357687},
    {1000LL, -840720108},
    {4096LL, 316487840},
    {12345LL, -78097827},
    {20000LL, -863179081},
    {31337LL, 1548154074},
    {50000LL, 437217226},
    {54321LL, -321838450},
    {65535LL, 800703781},
    {65536LL, 32085720},
    {65537LL, 607654552},
    {77777LL, -2082259643},
    {88888LL, 1990837508},
    {99999LL, 1065924364},
    {100000LL, 1001413960},
    {100001LL, -52985093},
    // INT32 bounds, one either side.
    {2147483646LL, 1859433618},
    {2147483647LL, -96758253},
    {2147483648LL, -1524351049},
    {-2147483647LL, 1830408514},
    {-2147483648LL, -1524351049},
    {-2147483649LL, -96758253},
    // Around 2^32: the high half folds in.
    {4294967295LL, 385747274},
    {4294967296LL, -1905060026},
    {-4294967295LL, -1905060026},
    {-4294967296LL, -272711505},
    {123456789LL, 524883300},
    {-123456789LL, 1265221938},
    {1099511627776LL, 1851357687},
    {-1099511627776LL, -1811739487},
    // INT64 bounds (INT64_MIN, -9223372036854775808, is below as kMin64).
    {9223372036854775806LL, 1830408514},
    {9223372036854775807LL, -1524351049},
    {-9223372036854775807LL, 1859433618},
    {kMin64, -96758253},
};

TEST(ShardMapTest, HashMatchesPostgresHashint8) {
  for (const auto& vector : kHashVectors) {
    EXPECT_EQ(citus_hash_int8(vector.value), vector.hash) << "hashint8(" << vector.value << ")";
  }
}

TEST(ShardMapTest, VectorsCoverNegativeAndPositiveHashes) {
  int negative = 0;
  int positive = 0;
  for (const auto& vector : kHashVectors) (vector.hash < 0 ? negative : positive) += 1;
  EXPECT_GE(negative, 10);
  EXPECT_GE(positive, 10);
  EXPECT_GE(std::size(kHashVectors), 40u);
}

TEST(ShardMapTest, AnInt8HashesLikeTheInt4OfTheSameValue) {
  // hashint8 folds the high half in so that -1 (high half all ones) hashes as hashint4(-1).
  EXPECT_EQ(citus_hash_int8(-1), citus_hash_int8(4294967295LL));
  EXPECT_EQ(citus_hash_int8(1), citus_hash_int8(4294967296LL));
}

// Citus's ranges for `count` shards (citus.shard_count): equal slices of the int32 space, the
// last one ending at INT32_MAX, as create_distributed_table makes them.
std::vector<ShardRange> uniform_ranges(int count, std::int64_t first_shard_id = 102008) {
  const std::int64_t step = (std::int64_t{1} << 32) / count;
  std::vector<ShardRange> shards;
  for (int i = 0; i < count; ++i) {
    const std::int64_t min = std::int64_t{kMin32} + i * step;
    const std::int64_t max = i == count - 1 ? std::int64_t{kMax32} : min + step - 1;
    shards.push_back({first_shard_id + i, static_cast<std::int32_t>(min),
                      static_cast<std::int32_t>(max), i % 2 ? "w2:5432" : "w1:5432"});
  }
  return shards;
}

TEST(ShardMapTest, IdsFallInTheShardsCitusPutThemIn) {
  const ShardMap map(uniform_ranges(32));
  ASSERT_EQ(map.size(), 32u);
  // get_shard_id_for_distribution_column('attempts', id) on Citus 13.2.2, as indices.
  const std::pair<AttemptId, std::size_t> expected[] = {
      {1, 1},      {2, 24},     {3, 15},     {4, 8},      {5, 6},      {6, 20},
      {7, 8},      {8, 0},      {9, 28},     {10, 4},     {42, 27},    {1000, 9},
      {12345, 15}, {50000, 19}, {65536, 16}, {99999, 23}, {100000, 23}};
  for (const auto& [id, index] : expected) {
    EXPECT_EQ(map.index_of(id), index) << "id " << id;
    EXPECT_EQ(map.shard_id(map.index_of(id)), 102008 + static_cast<std::int64_t>(index));
  }
}

TEST(ShardMapTest, EveryRangeOwnsItsEdgesAndNothingBeyond) {
  const ShardMap map(uniform_ranges(32));
  for (std::size_t i = 0; i < map.size(); ++i) {
    const auto& shard = map.shard(i);
    EXPECT_EQ(map.index_of_hash(shard.min_hash), i) << "min of shard " << i;
    EXPECT_EQ(map.index_of_hash(shard.max_hash), i) << "max of shard " << i;
    EXPECT_EQ(map.index_of_hash(shard.min_hash / 2 + shard.max_hash / 2), i);
    if (i > 0) {
      EXPECT_EQ(map.index_of_hash(shard.min_hash - 1), i - 1);
    }
    if (i + 1 < map.size()) {
      EXPECT_EQ(map.index_of_hash(shard.max_hash + 1), i + 1);
    }
  }
  EXPECT_EQ(map.index_of_hash(kMin32), 0u);
  EXPECT_EQ(map.index_of_hash(kMax32), 31u);
  // The boundary between shards 15 and 16 is hash 0.
  EXPECT_EQ(map.index_of_hash(-1), 15u);
  EXPECT_EQ(map.index_of_hash(0), 16u);
}

TEST(ShardMapTest, OneShardTakesEverything) {
  const ShardMap map({{7, kMin32, kMax32, "h:1"}});
  for (const auto& vector : kHashVectors) EXPECT_EQ(map.index_of(vector.value), 0u);
  EXPECT_EQ(map.shard_id(0), 7);
}

TEST(ShardMapTest, UnevenRangesAfterASplitAreSearchedCorrectly) {
  // citus_split_shard_by_split_points leaves ranges of any width.
  const ShardMap map({{1, kMin32, -1000, "a:1"},
                      {2, -999, -999, "a:1"},
                      {3, -998, 5, "b:1"},
                      {4, 6, kMax32, "b:1"}});
  EXPECT_EQ(map.index_of_hash(-1000), 0u);
  EXPECT_EQ(map.index_of_hash(-999), 1u);
  EXPECT_EQ(map.index_of_hash(-998), 2u);
  EXPECT_EQ(map.index_of_hash(5), 2u);
  EXPECT_EQ(map.index_of_hash(6), 3u);
  for (const auto& vector : kHashVectors) {
    const auto& shard = map.shard(map.index_of(vector.value));
    EXPECT_LE(shard.min_hash, vector.hash);
    EXPECT_GE(shard.max_hash, vector.hash);
  }
}

void expect_invalid(std::vector<ShardRange> shards, const std::string& fragment) {
  try {
    ShardMap map(std::move(shards));
    ADD_FAILURE() << "accepted; expected an error containing '" << fragment << "'";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(ShardMapTest, InvalidMapsAreRefusedWithTheReason) {
  expect_invalid({}, "no shards");
  expect_invalid({{1, kMin32 + 1, kMax32, "a:1"}}, "does not start at INT32_MIN");
  expect_invalid({{1, kMin32, kMax32 - 1, "a:1"}}, "does not end at INT32_MAX");
  expect_invalid({{1, kMin32, 10, "a:1"}, {2, 12, kMax32, "a:1"}}, "gap between");
  expect_invalid({{1, kMin32, 10, "a:1"}, {2, 10, kMax32, "a:1"}}, "overlaps");
  expect_invalid({{1, 0, kMax32, "a:1"}, {2, kMin32, -1, "a:1"}}, "does not start at INT32_MIN");
  expect_invalid({{1, kMin32, 0, "a:1"}, {2, 500, 100, "a:1"}, {3, 101, kMax32, "a:1"}},
                 "min > max");
  expect_invalid({{1, kMin32, 0, "a:1"}, {1, 1, kMax32, "b:1"}}, "appears twice");
  expect_invalid({{1, kMin32, -1, "a:1"}, {3, 0, kMax32, "a:1"}, {2, -10, 99, "a:1"}},
                 "not sorted by min hash");
  expect_invalid({{1, kMin32, 10, "a:1"}, {2, 5, kMax32, "a:1"}}, "overlaps");
}

TEST(ShardMapTest, EqualityDetectsAMovedOrSplitShard) {
  const ShardMap before(uniform_ranges(4));
  EXPECT_EQ(before, ShardMap(uniform_ranges(4)));
  auto moved = uniform_ranges(4);
  moved[2].node = "w3:5432";
  EXPECT_NE(before, ShardMap(moved));
  auto renumbered = uniform_ranges(4);
  renumbered[1].shard_id = 999;
  EXPECT_NE(before, ShardMap(renumbered));
  EXPECT_NE(before, ShardMap(uniform_ranges(8)));
}

TEST(ShardMapTest, ParsesTheQueryRows) {
  const std::vector<ShardMapRow> rows = {
      {"102008", "-2147483648", "-1", "10.0.0.1", "5432", "t"},
      {"102009", "0", "2147483647", "::1", "6432", "f"},
  };
  const auto map = parse_shard_map(rows);
  ASSERT_EQ(map.size(), 2u);
  EXPECT_EQ(map.shard(0), (ShardRange{102008, kMin32, -1, "10.0.0.1:5432", true}));
  EXPECT_EQ(map.shard(1), (ShardRange{102009, 0, kMax32, "[::1]:6432", false}));
}

TEST(ShardMapTest, ANodeThatStopsTakingStatementsChangesTheMap) {
  std::vector<ShardMapRow> rows = {{"1", "-2147483648", "2147483647", "h", "5432", "t"}};
  const auto routable = parse_shard_map(rows);
  rows[0][5] = std::nullopt;
  const auto unset = parse_shard_map(rows);
  EXPECT_TRUE(routable.shard(0).routable);
  EXPECT_FALSE(unset.shard(0).routable);
  EXPECT_NE(routable, unset);
}

void expect_parse_error(std::vector<ShardMapRow> rows, const std::string& fragment) {
  try {
    parse_shard_map(rows);
    ADD_FAILURE() << "parsed; expected an error containing '" << fragment << "'";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(ShardMapTest, BadRowsAreRefusedWithRowAndColumn) {
  const ShardMapRow good = {"1", "-2147483648", "2147483647", "h", "5432"};
  auto row = good;
  row[0] = std::nullopt;
  expect_parse_error({row}, "row 0, column shardid: NULL");
  row = good;
  row[1] = "-2147483649";
  expect_parse_error({row}, "row 0, column shardminvalue: not an integer in range");
  row = good;
  row[2] = "12x";
  expect_parse_error({row}, "column shardmaxvalue: not an integer");
  row = good;
  row[2] = "";
  expect_parse_error({row}, "column shardmaxvalue: not an integer");
  row = good;
  row[3] = "";
  expect_parse_error({row}, "column nodename");
  row = good;
  row[4] = "70000";
  expect_parse_error({row}, "column nodeport: not an integer in range");
  // Two placements of one shard (citus.shard_replication_factor 2).
  expect_parse_error({good, {"1", "-2147483648", "2147483647", "h2", "5432"}}, "appears twice");
  expect_parse_error({}, "no shards");
}

}  // namespace
}  // namespace attempts::db
