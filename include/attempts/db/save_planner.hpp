#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "attempts/db/attempt_map.hpp"
#include "attempts/db/call_queue.hpp"
#include "attempts/db/save_batch.hpp"
#include "attempts/db/shard_map.hpp"

namespace attempts::db {

// Where the planner asks, before it sends anything of an attempt, whether another connection
// still has a statement of it that may apply (ClaimTable), and says when its own statements of
// the attempt can no longer apply. PgConnection answers for its connection; without it (nullptr)
// the planner's own connection is the only one.
class AttemptClaims {
 public:
  // Claims the attempt for this connection; false if another connection holds it.
  virtual bool claim(AttemptId attempt) = 0;
  virtual void release(AttemptId attempt) = 0;

 protected:
  ~AttemptClaims() = default;
};

// Which queued calls go out next. A round is either one call on its own (a read, a submit, a
// start, a ping) or the writes that can go now, as one SaveBatch per statement group (the
// Citus shard; everything is group 0 on one PostgreSQL).
//
// The rule that keeps every caller's outcome its own: while a statement that touches an
// attempt is in flight (its UPDATE, and the why-not-saved query after it), nothing else of that
// attempt is sent, so each statement sees the attempt exactly as the calls before it left it.
// Across connections the same rule holds through AttemptClaims: an attempt goes out only once
// this connection has claimed it, and the claim is given back when no statement of it is in
// flight here any more. Calls of attempts in flight or claimed elsewhere, and calls behind one
// that must wait (SaveBatch::add), stay queued in the order they arrived; calls of other
// attempts go past them. No libpq, no sockets, no timers.
class SavePlanner {
 public:
  struct Round {
    std::vector<std::unique_ptr<SaveBatch>> batches;  // sealed, ascending by group
    PendingCall call;                                 // or one call on its own

    bool empty() const { return batches.empty() && call.answered(); }
  };

  // `max_batch`: the most writes one round takes (and rows one statement holds).
  explicit SavePlanner(std::size_t max_batch, AttemptClaims* claims = nullptr)
      : max_batch_(max_batch), claims_(claims) {}

  // Takes the next round out of `queue` into `round` (which must be empty); leaves it empty if
  // every queued call waits for an attempt in flight. `shards` groups the writes by shard.
  void next_round(CallQueue& queue, const ShardMap* shards, Round& round);

  // What a round sent has finished: its attempts may be sent again. A batch is finished when
  // it is done (or fails); a call on its own when its statement has finished.
  void finished(const SaveBatch& batch);
  void finished(StoreCall::Kind kind, AttemptId attempt);
  // One statement of `attempt` sent with a round has finished (a lost connection's statements
  // are finished this way one by one, once they can no longer apply).
  void finished(AttemptId attempt);
  bool in_flight(AttemptId attempt) const { return in_flight_.find(attempt) != 0; }
  // Attempts with a statement in flight.
  std::size_t attempts_in_flight() const { return in_flight_.size(); }

  // Batches are reused, so planning allocates nothing once warm.
  void recycle(std::unique_ptr<SaveBatch> batch);

  // Whether a call of this kind is of one attempt, sent in order with that attempt's writes.
  static bool of_attempt(StoreCall::Kind kind) {
    return kind == StoreCall::Kind::save_answers || kind == StoreCall::Kind::load_attempt ||
           kind == StoreCall::Kind::submit_attempt || kind == StoreCall::Kind::load_history;
  }

 private:
  SaveBatch& batch_for(std::uint32_t group, Round& round);
  void hold(AttemptId attempt);
  // Whether a call of `attempt` may be sent in this round: not held, nothing of it in flight,
  // and claimed for this connection (claimed now if it was not).
  bool may_send(AttemptId attempt);
  // Gives back the claims taken in this round for attempts that were not sent after all.
  void release_unsent_claims();
  void sent(AttemptId attempt) { in_flight_.increment(attempt); }

  std::size_t max_batch_;
  AttemptClaims* claims_;
  AttemptMap in_flight_;  // attempt -> statements in flight that touch it
  AttemptMap held_;       // attempts that wait in this round, so later calls of them wait too
  AttemptMap claimed_;    // attempts claimed in this round
  std::vector<AttemptId> claimed_now_;
  std::vector<std::unique_ptr<SaveBatch>> spare_;
  std::vector<std::uint32_t> batch_of_group_;  // index + 1 into round.batches; 0: none yet
  std::vector<std::uint32_t> groups_used_;
};

}  // namespace attempts::db
