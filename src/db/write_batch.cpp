#include "attempts/db/write_batch.hpp"

#include <algorithm>
#include <numeric>

namespace attempts::db {

CoalescedWrites coalesce_writes(std::span<const AttemptId> request_ids) {
  // Request indices ordered by id and, within an id, by arrival: the last of each run wins.
  std::vector<std::size_t> order(request_ids.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return request_ids[a] < request_ids[b]; });

  CoalescedWrites plan;
  plan.id_of_request.resize(request_ids.size());
  for (const std::size_t request : order) {
    const AttemptId id = request_ids[request];
    if (plan.ids.empty() || plan.ids.back() != id) {
      plan.ids.push_back(id);
      plan.winner.push_back(request);
    } else {
      plan.winner.back() = request;
    }
    plan.id_of_request[request] = plan.ids.size() - 1;
  }
  return plan;
}

}  // namespace attempts::db
