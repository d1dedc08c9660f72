#include "attempts/db/write_plan.hpp"

#include <algorithm>
#include <numeric>

namespace attempts::db {

void WritePlan::clear() {
  statements.clear();
  placement.clear();
  order.clear();
  runs.clear();
}

void plan_writes(std::span<const WriteKey> writes, std::size_t max_rows, WritePlan& plan) {
  plan.clear();
  plan.placement.resize(writes.size());
  if (writes.empty()) return;
  max_rows = std::max<std::size_t>(max_rows, 1);

  // Write indices ordered by group, then id and, within an id, by arrival.
  auto& order = plan.order;
  order.resize(writes.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (writes[a].group != writes[b].group) return writes[a].group < writes[b].group;
    return writes[a].id < writes[b].id;
  });

  using Run = WritePlan::Run;
  auto& runs = plan.runs;
  std::size_t rounds = 0;
  for (std::size_t i = 0; i < order.size();) {
    const AttemptId id = writes[order[i]].id;
    std::size_t round = 0;
    while (i < order.size() && writes[order[i]].id == id) {
      const bool revisioned = writes[order[i]].revision.has_value();
      Run run{round++, writes[order[i]].group, id, order[i], i, i};
      for (; run.last < order.size() && writes[order[run.last]].id == id &&
             writes[order[run.last]].revision.has_value() == revisioned;
           ++run.last) {
        const std::size_t write = order[run.last];
        // Later wins among equals: `>=` for revisions, always for writes without one.
        if (!revisioned || *writes[write].revision >= *writes[run.sent].revision) run.sent = write;
      }
      i = run.last;
      runs.push_back(run);
    }
    rounds = std::max(rounds, round);
  }

  // Round by round, one group after another, ids ascending within each (runs are already in
  // that order), at most max_rows per statement.
  for (std::size_t round = 0; round < rounds; ++round) {
    std::size_t statement_index = plan.statements.size();
    for (const Run& run : runs) {
      if (run.round != round) continue;
      if (statement_index == plan.statements.size() ||
          plan.statements[statement_index].ids.size() == max_rows ||
          plan.statements[statement_index].group != run.group) {
        statement_index = plan.statements.size();
        plan.statements.emplace_back();
        plan.statements[statement_index].group = run.group;
      }
      auto& statement = plan.statements[statement_index];
      const auto row = static_cast<std::uint32_t>(statement.ids.size());
      statement.ids.push_back(run.id);
      statement.sent.push_back(run.sent);
      for (std::size_t k = run.first; k < run.last; ++k) {
        plan.placement[order[k]] = {static_cast<std::uint32_t>(statement_index), row,
                                    order[k] == run.sent};
      }
    }
  }
}

}  // namespace attempts::db
