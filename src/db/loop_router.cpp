#include "loop_router.hpp"

#include <spdlog/spdlog.h>

#include "attempts/db/pg_pool.hpp"
#include "attempts/db/save_planner.hpp"
#include "attempts/db/shard_map.hpp"
#include "pg_connection.hpp"

namespace attempts::db {
namespace {

// One attempt, one pool connection, while no other holds it: the slice of the hash range that
// the attempt's hash falls in (PostgreSQL's hashint8, as Citus hashes the distribution column).
// Citus gives each shard a contiguous hash range, so on a distributed table each connection
// serves whole shards (or part of one) and its batches split into few single-shard statements;
// the choice needs no shard map. On one PostgreSQL it spreads ids evenly, like id % count.
std::size_t slice_of(AttemptId id, std::size_t count) {
  // Signed hash order to unsigned order: INT32_MIN..INT32_MAX to 0..UINT32_MAX.
  const std::uint32_t position = static_cast<std::uint32_t>(citus_hash_int8(id)) ^ 0x80000000u;
  return static_cast<std::size_t>((std::uint64_t{position} * count) >> 32);
}

}  // namespace

void LoopRouter::add(PgConnection& connection) {
  pool_.push_back(&connection);
  all_.push_back(&connection);
}

void LoopRouter::execute(StoreCall& call, StoreCompletion& completion) {
  if (!to_nodes_) return pool_connection_for(call).submit(call, completion);
  follow_shard_map();
  if (call.kind == StoreCall::Kind::ping) {
    call.degraded = unreachable_nodes();
    return pool_connection_for(call).submit(call, completion);
  }
  if (!SavePlanner::of_attempt(call.kind))
    return pool_connection_for(call).submit(call, completion);
  const AttemptId attempt = call.attempt_id;
  PgConnection* target = nullptr;
  if (!shard_routes_.empty()) {
    PgConnection* node = shard_routes_[map_->index_of(attempt)];
    if (node != nullptr && node->accepting()) target = node;
  }
  if (target == nullptr) target = &pool_connection_for(call);
  if (!target->holds(attempt)) {
    for (PgConnection* connection : all_) {
      if (connection != target && connection->holds(attempt)) {
        target = connection;
        break;
      }
    }
  }
  target->submit(call, completion);
}

void LoopRouter::wake() {
  for (PgConnection* connection : all_) connection->wake();
}

PgConnection& LoopRouter::pool_connection_for(const StoreCall& call) {
  const std::size_t count = pool_.size();
  switch (call.kind) {
    case StoreCall::Kind::ping:
      // Round robin, so over a few probes every connection is exercised.
      return *pool_[next_ping_++ % count];
    case StoreCall::Kind::start_attempt:
      return *pool_[static_cast<std::size_t>(call.student.value_or(0)) % count];
    default:
      return *pool_[slice_of(call.attempt_id, count)];
  }
}

void LoopRouter::follow_shard_map() {
  // The first pool connection's map: every pool connection reads the same one, every few
  // seconds; a route that lags behind a move only costs a hop inside Citus.
  const PgConnection& reader = *pool_.front();
  if (reader.shard_map_version() == map_version_) return;
  map_version_ = reader.shard_map_version();
  map_ = reader.shard_map();
  shard_routes_.clear();
  for (Node& node : nodes_) node.in_map = false;
  if (map_ == nullptr) return;
  shard_routes_.resize(map_->size(), nullptr);
  for (std::size_t i = 0; i < map_->size(); ++i) {
    const ShardRange& shard = map_->shard(i);
    if (shard.routable) shard_routes_[i] = node_connection(shard.node);
  }
}

PgConnection* LoopRouter::node_connection(const std::string& node) {
  for (Node& known : nodes_) {
    if (known.name != node) continue;
    known.in_map = true;
    return known.connection;
  }
  if (nodes_.size() >= kMaxEntryNodes) return nullptr;
  PgConnection* connection = open_node_(node);
  if (connection == nullptr) return nullptr;
  nodes_.push_back({node, connection, true});
  all_.push_back(connection);
  return connection;
}

std::string LoopRouter::unreachable_nodes() const {
  std::string down;
  for (const Node& node : nodes_) {
    if (!node.in_map || !node.connection->unreachable()) continue;
    down.append(down.empty() ? "" : ", ").append(node.name);
  }
  if (down.empty()) return down;
  return "Citus nodes unreachable, their shards' writes go through the coordinator: " + down;
}

}  // namespace attempts::db
