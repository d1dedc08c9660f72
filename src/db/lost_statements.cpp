#include "lost_statements.hpp"

#include <algorithm>
#include <utility>

namespace attempts::db {

void LostStatements::lost(Clock::time_point until) {
  // A session set up only once what an earlier one held was released (its setup saw that
  // backend gone): what is held now is this session's. Without its identity (the server did
  // not say) nothing can be seen gone, and only the time ends the hold.
  if (!held_.empty()) {
    to_end_ = current_;
    until_ = std::max(until_, until);
  }
  current_.reset();
}

std::vector<AttemptId> LostStatements::release() {
  to_end_.reset();
  until_ = Clock::time_point::min();
  return std::exchange(held_, {});
}

}  // namespace attempts::db
