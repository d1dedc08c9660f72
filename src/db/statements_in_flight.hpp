#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "attempts/db/pending_call.hpp"
#include "attempts/db/pool_metrics.hpp"
#include "attempts/db/save_batch.hpp"
#include "attempts/db/save_planner.hpp"
#include "attempts/db/shard_map.hpp"
#include "lost_statements.hpp"
#include "statement_codec.hpp"

namespace attempts::db {

// The statements a connection has sent and not yet seen finish (their sync not yet read),
// oldest first, by what each is for; and what their callers are told when a deadline passes or
// the connection is lost before they finish. No I/O: the connection sends and reads.
class StatementsInFlight {
 public:
  using Clock = std::chrono::steady_clock;

  struct Setup {  // the session setup, right after connecting
    std::optional<bool> distributed;
    std::optional<BackendIdentity> backend;
    std::optional<bool> previous_gone;
  };
  struct Check {};  // the table's persistence, every few seconds
  struct ShardMapRead {
    std::optional<ShardMap> map;
    std::optional<std::string> problem;
  };
  struct Save {  // a batch's UPDATE
    std::unique_ptr<SaveBatch> batch;
  };
  struct WhyNotSaved {  // the same batch, reading why rows were not applied
    std::unique_ptr<SaveBatch> batch;
  };
  struct Call {  // a load, submit, start or ping
    PendingCall pending;
    StoreCall::Kind kind = StoreCall::Kind::ping;
    AttemptId attempt = 0;
    StoreOutcome outcome = StoreOutcome::unavailable;
  };
  using Statement = std::variant<Setup, Check, ShardMapRead, Save, WhyNotSaved, Call>;

  struct Sent {
    Statement statement;
    Clock::time_point sent_at;
    bool result_seen = false;
    // An error result: the statement, or its commit, failed and rolled back.
    std::optional<StatementError> error;
  };

  // Calls that change data: a lost reply leaves their outcome unknown.
  static bool is_write(StoreCall::Kind kind) {
    return kind == StoreCall::Kind::save_answers || kind == StoreCall::Kind::submit_attempt ||
           kind == StoreCall::Kind::start_attempt;
  }

  // `request`: a save or a call, counted against the pipeline depth.
  void push(Statement statement, Clock::time_point sent_at, bool request);
  Sent& front() { return statements_.front(); }
  Sent pop_front();
  bool empty() const { return statements_.empty(); }
  std::size_t size() const { return statements_.size(); }
  // Saves and calls in flight.
  std::size_t requests() const { return requests_; }
  // The calls not yet answered.
  std::size_t unanswered() const;
  // Whether anything but the connection's own statements (setup, checks) is in flight.
  bool busy() const;

  // Answers the calls whose deadline is at or before `now` while their statement goes on: a
  // write `unknown` while it may still commit, anything else `unavailable`. Returns how many;
  // lowers `next` to the earliest deadline left.
  std::size_t expire(Clock::time_point now, CallAnswerer& answerer, Clock::time_point& next);

  // The connection is gone: answers every call as that leaves it (a write that ran may have
  // committed: unknown; anything else: unavailable) and forgets every statement. With
  // `may_still_run` (lost in use, without a word from the server), the attempts of writes that
  // may still apply stay in flight in `planner`, held in `lost`; everything else is finished.
  void abandon(bool may_still_run, SavePlanner& planner, LostStatements& lost, PoolMetrics& metrics,
               CallAnswerer& answerer);
  // Forgets what is in flight without answering anything: only the setup (or its shard map
  // read) was, and a failed connect ends it.
  void clear();

 private:
  std::deque<Sent> statements_;
  std::size_t requests_ = 0;
};

}  // namespace attempts::db
