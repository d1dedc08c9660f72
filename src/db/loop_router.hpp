#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attempts/domain/attempt_store.hpp"

namespace attempts::db {

class PgConnection;
class ShardMap;

// The store of one event loop: picks the connection each call goes to, on the loop's thread.
//
// The loop's pool connections (to --database-url) take calls by the hash slice of the attempt,
// as they always have. With `to_nodes` (CitusEntry::nodes), the router follows the shard map its
// first pool connection reads: for every node that takes distributed statements it asks
// `open_node` for a connection (once per node), and sends a shard's calls to the connection on
// the node holding the shard while that connection accepts calls; otherwise (the node cannot
// be reached, is still connecting, or has no connection) they go the pool's way, through the
// coordinator.
//
// Whatever the routes say, a call of an attempt goes to the connection that still holds a call
// of that attempt (queued, or in flight): routes change when shards move or a node goes down,
// and the connection's own rule (nothing of an attempt sent while a statement of it is in
// flight) keeps one attempt's writes in arrival order only if they meet on one connection.
// Calls that meet on different connections (another loop's, or this loop's after a route
// changed) still wait for each other through the pool's ClaimTable.
class LoopRouter final : public AttemptStore {
 public:
  using OpenNode = std::function<PgConnection*(const std::string& node)>;

  LoopRouter(bool to_nodes, OpenNode open_node)
      : to_nodes_(to_nodes), open_node_(std::move(open_node)) {}

  // One of the loop's pool connections, in pool order.
  void add(PgConnection& connection);

  void execute(StoreCall& call, StoreCompletion& completion) override;

  // Claims were released elsewhere (ClaimTable): every connection of the loop sends what may go
  // now.
  void wake();

 private:
  PgConnection& pool_connection_for(const StoreCall& call);
  // Rebuilds the routes when the shard map changed.
  void follow_shard_map();
  PgConnection* node_connection(const std::string& node);
  // The nodes whose connection cannot reach them, for /readyz; empty if none.
  std::string unreachable_nodes() const;

  struct Node {
    std::string name;  // "host:port"
    PgConnection* connection;
    // Whether the map in use routes shards to it: a node that left the cluster keeps its
    // connection (retrying, idle) but is not reported down.
    bool in_map = true;
  };

  const bool to_nodes_;
  const OpenNode open_node_;
  std::vector<PgConnection*> pool_;
  std::vector<PgConnection*> all_;  // pool connections, then node connections
  std::vector<Node> nodes_;
  // By shard index of map_: the node connection to prefer, or nullptr for the pool's way.
  std::vector<PgConnection*> shard_routes_;
  const ShardMap* map_ = nullptr;
  std::uint64_t map_version_ = 0;
  std::size_t next_ping_ = 0;
};

}  // namespace attempts::db
