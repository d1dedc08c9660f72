#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "attempts/domain/attempt_store.hpp"

namespace attempts::db {

// One queued write, as far as planning is concerned.
struct WriteKey {
  AttemptId id = 0;
  std::optional<Revision> revision;
  // Statements never mix groups: on Citus the group is the attempt's shard, so that every
  // statement is routed to one worker (on one PostgreSQL everything is group 0).
  std::uint32_t group = 0;
};

// How a run of queued writes becomes as few UPDATE statements as possible. A statement can
// update a row only once, so the writes to one attempt are coalesced:
// - consecutive writes without a revision: the last one received is sent (the others are
//   answered as it is: applied, then overwritten);
// - consecutive writes with revisions: the highest revision is sent (the last one received
//   among equals); the others changed nothing, and are answered `stale` if it applies.
// All these writes were waiting at the same time, so answering them in this order is one of
// the orders in which they could have been applied. A write with a revision after one without
// (or the other way round) goes into a later statement, so runs of one attempt are applied in
// the order they were received; so do rows beyond `max_rows`. Rows of different groups never
// share a statement.
struct WritePlan {
  struct Statement {
    std::uint32_t group = 0;
    std::vector<AttemptId> ids;      // ascending, unique
    std::vector<std::size_t> sent;   // per id: index of the write whose answers are sent
  };
  struct Placement {
    std::uint32_t statement = 0;
    std::uint32_t row = 0;   // index into that statement's ids
    bool sent = false;       // this write is the one sent for its row
  };

  std::vector<Statement> statements;  // to be executed in this order
  std::vector<Placement> placement;   // per write, in the order given

  void clear();

  // Working space of plan_writes, kept so that planning a batch allocates nothing once warm.
  struct Run {
    std::size_t round;  // 0 for an attempt's first run, 1 for its second, ...
    std::uint32_t group;
    AttemptId id;
    std::size_t sent;   // the write whose answers are sent
    std::size_t first;  // [first, last) in `order`
    std::size_t last;
  };
  std::vector<std::size_t> order;
  std::vector<Run> runs;
};

// Fills `plan` (its buffers are reused) for `writes`, given in the order they were received.
void plan_writes(std::span<const WriteKey> writes, std::size_t max_rows, WritePlan& plan);

}  // namespace attempts::db
