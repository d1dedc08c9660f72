#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/domain/attempt_store.hpp"

// Where an attempt lives when `attempts` is a Citus distributed table (sql/citus.sql): Citus
// hashes the distribution column `id` with PostgreSQL's hash function for bigint and keeps each
// shard's range of hash values in pg_dist_shard. Computing the same hash here lets the service
// group a batch by shard, so that every batched statement touches one shard and Citus routes it
// to one worker.
namespace attempts::db {

// PostgreSQL 15's hashint8(value) as a signed 32-bit integer, which is how Citus compares it with
// the shard ranges (pg_dist_shard.shardminvalue/shardmaxvalue are int4 text).
std::int32_t citus_hash_int8(std::int64_t value);

// One shard of `attempts`: the hash values [min_hash, max_hash] (inclusive) and where its
// placement is.
struct ShardRange {
  std::int64_t shard_id = 0;
  std::int32_t min_hash = 0;
  std::int32_t max_hash = 0;
  std::string node;  // "host:port" of the worker holding the placement
  // Whether that node can run distributed statements itself (active, with synced metadata), so
  // that a statement sent to it runs there without a hop through the coordinator.
  bool routable = false;

  bool operator==(const ShardRange&) const = default;
};

// The shard ranges of a hash-distributed table, checked to be ordered, disjoint and to cover
// every int32 hash value, so that every id has exactly one shard.
class ShardMap {
 public:
  // Throws std::invalid_argument, saying what is wrong, if the shards are empty, not sorted by
  // min_hash, overlap, leave a gap, do not reach INT32_MIN or INT32_MAX, have min > max, or
  // repeat a shard id.
  explicit ShardMap(std::vector<ShardRange> shards);

  // The index (0 .. size() - 1) of the shard holding `id`; binary search on the hash.
  std::size_t index_of(AttemptId id) const { return index_of_hash(citus_hash_int8(id)); }
  std::size_t index_of_hash(std::int32_t hash) const;

  std::int64_t shard_id(std::size_t index) const { return shards_[index].shard_id; }
  const ShardRange& shard(std::size_t index) const { return shards_[index]; }
  std::size_t size() const { return shards_.size(); }
  const std::vector<ShardRange>& shards() const { return shards_; }

  // Equal maps route every id to the same shard id on the same node: a map read again after a
  // shard move or split compares unequal.
  bool operator==(const ShardMap&) const = default;

 private:
  std::vector<ShardRange> shards_;
};

// Whether the connected database runs Citus with `attempts` distributed: one row, one boolean
// column. Safe on a plain PostgreSQL, where pg_dist_partition does not exist: that table is read
// only when the citus extension is installed in the database (CASE evaluates its branches in
// order, and query_to_xml runs its query only when called).
inline constexpr const char* kDetectCitusQuery = R"sql(
SELECT CASE
         WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')
           THEN false
         ELSE pg_catalog.query_to_xml(
                'SELECT 1 FROM pg_catalog.pg_dist_partition '
                'WHERE logicalrelid = pg_catalog.to_regclass(''attempts'')',
                false, true, '')::text <> ''
       END AS attempts_is_distributed)sql";

// The shard map of `attempts`: one row per shard and active primary placement, columns shard id,
// min hash, max hash (int4), node name, node port, whether the node takes distributed statements
// (bool), ordered by the min hash. Read on the
// coordinator (or any node with Citus metadata). parse_shard_map() turns the rows into a
// ShardMap.
inline constexpr const char* kShardMapQuery = R"sql(
SELECT s.shardid, s.shardminvalue::int, s.shardmaxvalue::int, n.nodename, n.nodeport,
       n.isactive AND n.hasmetadata AND n.metadatasynced
  FROM pg_catalog.pg_dist_shard s
  JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid AND p.shardstate = 1
  JOIN pg_catalog.pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary'
 WHERE s.logicalrelid = 'attempts'::regclass
 ORDER BY s.shardminvalue::int, s.shardid)sql";

inline constexpr std::size_t kShardMapColumns = 6;
// One row of kShardMapQuery in libpq's text format; nullopt for an SQL NULL.
using ShardMapRow = std::array<std::optional<std::string_view>, kShardMapColumns>;

// Builds the ShardMap from kShardMapQuery's rows. Throws std::invalid_argument naming the row
// and column if a value is NULL or not an integer in range, if a shard has more than one
// placement (a replication factor above 1 is not supported), or if the ranges are not valid
// (see ShardMap). The last column is true only as 't' (libpq's text for true); NULL is false.
ShardMap parse_shard_map(std::span<const ShardMapRow> rows);

}  // namespace attempts::db
