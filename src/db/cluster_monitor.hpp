#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "attempts/db/pg_pool.hpp"
#include "attempts/db/shard_map.hpp"

namespace attempts::db {

// What one connection knows of the database it writes to, and whether calls may go there:
// - the attempts table's persistence must fit the durability mode (checked at connect, by
//   every ping and every few seconds: sql/durable.sql and sql/unlogged.sql switch it live);
// - on Citus, the shard map that groups batches by shard (read at connect, then again every
//   few seconds and before retrying a rolled-back batch), or why it cannot be used.
// While either is wrong, calls are refused with the reason (refusal()); once it is right
// again, they go through: nothing is written in a mode other than the one promised.
// No I/O: the connection reads the rows and says what it read.
class ClusterMonitor {
 public:
  ClusterMonitor(std::size_t index, const PgPoolOptions& options, PoolMetrics& metrics)
      : index_(index), options_(options), metrics_(metrics) {}

  // The table's relpersistence ('u' UNLOGGED, 'p' LOGGED) as the setup or a check read it.
  void saw_persistence(char relpersistence);
  // The session setup's answer to whether attempts is distributed (nullopt: not asked).
  // Returns true if the shard map must now be read before calls are sent: distributed, and
  // --citus is not off.
  bool saw_setup(std::optional<bool> distributed);
  // A shard map was read, or could not be used (`problem`).
  void saw_shard_map(ShardMap map);
  void saw_unusable_shard_map(const std::string& problem);

  // Whether a shard map read may start now (none is in flight); marks one in flight.
  bool start_shard_map_read();
  // Whether the shard map is read again every few seconds: Citus is in use, or was expected.
  bool follows_shards() const { return shard_map_ || citus_problem_; }
  void shard_map_read_finished() { shard_map_reading_ = false; }
  // A connection that is lost has no read in flight.
  void forget_reads() { shard_map_reading_ = false; }

  // Why calls are refused although the database answers, if they are.
  const std::optional<std::string>& refusal() const {
    return misconfigured_ ? misconfigured_ : citus_problem_;
  }
  // The shard map batches are grouped by: on Citus, unless --citus off.
  const ShardMap* shard_map() const { return shard_map_ ? &*shard_map_ : nullptr; }
  // Changes whenever shard_map() does (another map, or none), so routes built on it can tell
  // they are stale with one comparison.
  std::uint64_t shard_map_version() const { return shard_map_version_; }
  // Whether attempts is a Citus distributed table, whatever --citus says: the save statements
  // must then be the ones Citus accepts (sql.hpp), grouped by shard or not.
  bool distributed() const { return distributed_; }

 private:
  void set_citus_problem(std::optional<std::string> problem);

  const std::size_t index_;
  const PgPoolOptions& options_;
  PoolMetrics& metrics_;
  std::optional<std::string> misconfigured_;
  bool distributed_ = false;
  std::optional<ShardMap> shard_map_;
  std::uint64_t shard_map_version_ = 0;
  std::optional<std::string> citus_problem_;
  bool shard_map_reading_ = false;
};

}  // namespace attempts::db
