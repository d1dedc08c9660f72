#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "attempts/domain/attempt_id.hpp"

namespace attempts::db {

// How a run of queued writes is sent as one statement: each attempt id once, in ascending
// order, carrying the value of the last request received for it.
struct CoalescedWrites {
  std::vector<AttemptId> ids;              // sorted ascending, unique
  std::vector<std::size_t> winner;         // per id: index of the last request that wrote it
  std::vector<std::size_t> id_of_request;  // per request: index of its id in `ids`
};

CoalescedWrites coalesce_writes(std::span<const AttemptId> request_ids);

}  // namespace attempts::db
