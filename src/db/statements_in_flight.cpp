#include "statements_in_flight.hpp"

#include <algorithm>
#include <utility>

namespace attempts::db {

void StatementsInFlight::push(Statement statement, Clock::time_point sent_at, bool request) {
  if (request) ++requests_;
  statements_.push_back({std::move(statement), sent_at, false, std::nullopt});
}

StatementsInFlight::Sent StatementsInFlight::pop_front() {
  Sent sent = std::move(statements_.front());
  statements_.pop_front();
  if (std::holds_alternative<Save>(sent.statement) ||
      std::holds_alternative<Call>(sent.statement)) {
    --requests_;
  }
  return sent;
}

std::size_t StatementsInFlight::unanswered() const {
  std::size_t calls = 0;
  for (const auto& sent : statements_) {
    if (const auto* save = std::get_if<Save>(&sent.statement)) {
      calls += save->batch->unanswered();
    } else if (const auto* why = std::get_if<WhyNotSaved>(&sent.statement)) {
      calls += why->batch->unanswered();
    } else if (const auto* call = std::get_if<Call>(&sent.statement)) {
      calls += !call->pending.answered();
    }
  }
  return calls;
}

bool StatementsInFlight::busy() const {
  return std::any_of(statements_.begin(), statements_.end(), [](const Sent& sent) {
    return !std::holds_alternative<Setup>(sent.statement) &&
           !std::holds_alternative<Check>(sent.statement);
  });
}

std::size_t StatementsInFlight::expire(Clock::time_point now, CallAnswerer& answerer,
                                       Clock::time_point& next) {
  std::size_t expired = 0;
  for (auto& sent : statements_) {
    if (auto* save = std::get_if<Save>(&sent.statement)) {
      expired += save->batch->expire(now, answerer);
      next = std::min(next, save->batch->earliest_deadline());
    } else if (auto* why = std::get_if<WhyNotSaved>(&sent.statement)) {
      expired += why->batch->expire(now, answerer);
      next = std::min(next, why->batch->earliest_deadline());
    } else if (auto* call = std::get_if<Call>(&sent.statement); call && !call->pending.answered()) {
      if (call->pending.call->deadline > now) {
        next = std::min(next, call->pending.call->deadline);
        continue;
      }
      ++expired;
      answerer.answer(call->pending,
                      is_write(call->kind) ? StoreOutcome::unknown : StoreOutcome::unavailable);
    }
  }
  return expired;
}

void StatementsInFlight::abandon(bool may_still_run, SavePlanner& planner, LostStatements& lost,
                                 PoolMetrics& metrics, CallAnswerer& answerer) {
  const auto hold_or_finish = [&](AttemptId attempt, bool may_apply) {
    if (may_still_run && may_apply) {
      lost.hold(attempt);
      metrics.lost_session_holds.add();
    } else {
      planner.finished(attempt);
    }
  };
  // What was sent may or may not have been committed. A statement that got a FATAL error did
  // not commit, and nothing after it ever ran.
  bool ran = true;
  for (auto& sent : statements_) {
    ran = ran && !(sent.error && sent.error->fatal);
    if (auto* save = std::get_if<Save>(&sent.statement)) {
      // An UPDATE that ran may commit yet; the read after one (explaining) changes nothing.
      const bool may_apply = ran && save->batch->phase() == SaveBatch::Phase::saving;
      for (const auto& row : save->batch->rows()) hold_or_finish(row.id, may_apply);
      save->batch->lost(ran, answerer);
      planner.recycle(std::move(save->batch));
    } else if (auto* why = std::get_if<WhyNotSaved>(&sent.statement)) {
      planner.finished(*why->batch);
      why->batch->lost(ran, answerer);
      planner.recycle(std::move(why->batch));
    } else if (auto* call = std::get_if<Call>(&sent.statement)) {
      if (SavePlanner::of_attempt(call->kind)) {
        hold_or_finish(call->attempt, ran && is_write(call->kind));
      }
      answerer.answer(call->pending, is_write(call->kind) && ran ? StoreOutcome::unknown
                                                                 : StoreOutcome::unavailable);
    }
  }
  clear();
}

void StatementsInFlight::clear() {
  statements_.clear();
  requests_ = 0;
}

}  // namespace attempts::db
