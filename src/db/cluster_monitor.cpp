#include "cluster_monitor.hpp"

#include <spdlog/spdlog.h>

namespace attempts::db {

void ClusterMonitor::saw_persistence(char relpersistence) {
  const char expected = options_.durability == Durability::unlogged ? 'u' : 'p';
  const char* mode = options_.durability == Durability::unlogged ? "unlogged"
                     : options_.durability == Durability::async  ? "async"
                                                                 : "sync";
  std::optional<std::string> problem;
  if (relpersistence != expected) {
    const char* table = relpersistence == 'u'   ? "UNLOGGED"
                        : relpersistence == 'p' ? "LOGGED"
                                                : "not a plain table";
    problem = std::string("the attempts table is ") + table + ", but --durability " + mode +
              (expected == 'u' ? " needs it UNLOGGED (sql/unlogged.sql)"
                               : " needs it LOGGED (sql/durable.sql)");
  }
  if (problem == misconfigured_) return;
  if (problem) {
    spdlog::error("db connection {}: {}; refusing calls until it is fixed", index_, *problem);
  } else {
    spdlog::info("db connection {}: the attempts table fits --durability {} again", index_, mode);
  }
  misconfigured_ = std::move(problem);
}

bool ClusterMonitor::saw_setup(std::optional<bool> distributed) {
  distributed_ = distributed.value_or(false);
  // Grouped by shard once the map is read.
  if (distributed_ && options_.citus != CitusMode::off) return true;
  if (shard_map_) ++shard_map_version_;
  shard_map_.reset();
  metrics_.citus_shards.store(0, std::memory_order_relaxed);
  std::optional<std::string> problem;
  if (options_.citus == CitusMode::required) {
    problem =
        "--citus on, but attempts is not a Citus distributed table in this database "
        "(sql/citus.sql)";
  }
  set_citus_problem(std::move(problem));
  return false;
}

void ClusterMonitor::set_citus_problem(std::optional<std::string> problem) {
  if (problem && problem != citus_problem_) {
    spdlog::error("db connection {}: {}; refusing calls until it is fixed", index_, *problem);
  } else if (!problem && citus_problem_ && shard_map_) {
    spdlog::info("db connection {}: the shard map of attempts is usable again", index_);
  }
  citus_problem_ = std::move(problem);
}

void ClusterMonitor::saw_unusable_shard_map(const std::string& problem) {
  set_citus_problem("the shard map of attempts cannot be used: " + problem);
}

void ClusterMonitor::saw_shard_map(ShardMap map) {
  if (shard_map_ && *shard_map_ == map) return set_citus_problem(std::nullopt);
  if (shard_map_) {
    metrics_.shard_map_changes.add();
    spdlog::info("db connection {}: the shard map of attempts changed ({} shards, was {})", index_,
                 map.size(), shard_map_->size());
  } else {
    spdlog::info(
        "db connection {}: attempts is a Citus distributed table with {} shards; "
        "batches go by shard",
        index_, map.size());
  }
  shard_map_ = std::move(map);
  ++shard_map_version_;
  metrics_.citus_shards.store(shard_map_->size(), std::memory_order_relaxed);
  set_citus_problem(std::nullopt);
}

bool ClusterMonitor::start_shard_map_read() {
  if (shard_map_reading_) return false;
  shard_map_reading_ = true;
  return true;
}

}  // namespace attempts::db
