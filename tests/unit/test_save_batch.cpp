// Hand-picked cases of the pure save path: who shares a statement (SaveBatch::add), what each
// caller is told from the result rows, retries, losses and deadlines; what the planner holds
// back (SavePlanner); the queue's bounds (CallQueue). The generated cases against the
// sequential model are in test_save_model.cpp.
#include <gtest/gtest.h>

#include <deque>
#include <limits>
#include <memory>
#include <vector>

#include "attempts/db/call_queue.hpp"
#include "attempts/db/save_batch.hpp"
#include "attempts/db/save_planner.hpp"

namespace attempts::db {
namespace {

using Clock = std::chrono::steady_clock;

// Calls that record their outcome.
struct Calls final : CallAnswerer, StoreCompletion {
  std::deque<StoreCall> calls;  // stable addresses
  std::vector<std::pair<const StoreCall*, StoreOutcome>> answered;

  PendingCall make(StoreCall::Kind kind, AttemptId id, std::optional<StudentId> student,
                   std::optional<Revision> revision = std::nullopt, std::string answers = "{}") {
    StoreCall& call = calls.emplace_back();
    call.kind = kind;
    call.attempt_id = id;
    call.student = student;
    call.revision = revision;
    call.answers_json = std::move(answers);
    call.deadline = Clock::time_point::max();
    return {&call, this, 0};
  }
  PendingCall save(AttemptId id, std::optional<StudentId> student,
                   std::optional<Revision> revision = std::nullopt, std::string answers = "{}") {
    return make(StoreCall::Kind::save_answers, id, student, revision, std::move(answers));
  }

  void answer(PendingCall& pending, StoreOutcome outcome) override {
    StoreCall* call = std::exchange(pending.call, nullptr);
    if (call == nullptr) return;
    call->outcome = outcome;
    pending.completion->on_store_complete(*call);
  }
  void on_store_complete(StoreCall& call) override { answered.emplace_back(&call, call.outcome); }

  // The outcome of the i-th call made; unavailable if it was not answered.
  StoreOutcome outcome(std::size_t i) const {
    for (const auto& [call, outcome] : answered) {
      if (call == &calls[i]) return outcome;
    }
    ADD_FAILURE() << "call " << i << " was not answered";
    return StoreOutcome::unavailable;
  }
  bool was_answered(std::size_t i) const {
    for (const auto& [call, outcome] : answered) {
      if (call == &calls[i]) return true;
    }
    return false;
  }
};

// ---- SaveBatch: who shares a statement ----------------------------------------------------

TEST(SaveBatchTest, OneWritersSavesWithoutRevisionShareARowAndTheLastIsSent) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  EXPECT_TRUE(batch.add(calls.save(5, 1, std::nullopt, "a")));
  EXPECT_TRUE(batch.add(calls.save(5, 1, std::nullopt, "b")));
  batch.seal();
  ASSERT_EQ(batch.rows().size(), 1u);
  EXPECT_EQ(batch.rows()[0].answers, "b");
  EXPECT_EQ(batch.calls(), 2u);
}

TEST(SaveBatchTest, ASecondWriteWithARevisionOfTheSameWriterWaits) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  EXPECT_TRUE(batch.add(calls.save(5, 1, 3)));
  EXPECT_FALSE(batch.add(calls.save(5, 1, 4)));
  EXPECT_FALSE(batch.add(calls.save(5, 1)));  // nor one without, after one with
  SaveBatch other;
  other.reset(0, 256);
  EXPECT_TRUE(other.add(calls.save(5, 1)));
  EXPECT_FALSE(other.add(calls.save(5, 1, 4)));  // nor one with, after one without
}

TEST(SaveBatchTest, DifferentWritersOfOneAttemptGetRowsOfTheirOwn) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  EXPECT_TRUE(batch.add(calls.save(5, 2, 9)));
  EXPECT_TRUE(batch.add(calls.save(5, 1)));
  EXPECT_TRUE(batch.add(calls.save(4, 3)));
  batch.seal();
  ASSERT_EQ(batch.rows().size(), 3u);
  // Sending order: attempt, then writer.
  EXPECT_EQ(batch.rows()[0].id, 4);
  EXPECT_EQ(batch.rows()[1].student, 1);
  EXPECT_EQ(batch.rows()[2].student, 2);
}

TEST(SaveBatchTest, AWriteMatchingAnyOwnerSharesAnAttemptWithNobody) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  EXPECT_TRUE(batch.add(calls.save(5, std::nullopt)));
  EXPECT_TRUE(batch.add(calls.save(5, std::nullopt)));  // the same writer: shares its row
  EXPECT_FALSE(batch.add(calls.save(5, 1)));
  SaveBatch other;
  other.reset(0, 256);
  EXPECT_TRUE(other.add(calls.save(5, 1)));
  EXPECT_FALSE(other.add(calls.save(5, std::nullopt)));
}

TEST(SaveBatchTest, RowsBeyondTheLimitWaitButWritesToARowInItStillJoin) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 2);
  EXPECT_TRUE(batch.add(calls.save(1, 1)));
  EXPECT_TRUE(batch.add(calls.save(2, 2)));
  EXPECT_FALSE(batch.add(calls.save(3, 3)));
  EXPECT_TRUE(batch.add(calls.save(1, 1)));
}

// ---- SaveBatch: what each caller is told ---------------------------------------------------

TEST(SaveBatchTest, AnAppliedRowMakesItsAttemptsOtherRowsSomeoneElses) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  batch.add(calls.save(5, 1));  // the owner
  batch.add(calls.save(5, 2));  // an intruder
  batch.add(calls.save(5, 1));
  batch.seal();
  batch.saw_updated(5, 1);
  EXPECT_FALSE(batch.committed(calls)) << "nothing left to read";
  EXPECT_EQ(batch.applied_rows(), 1u);
  EXPECT_EQ(calls.outcome(0), StoreOutcome::done);
  EXPECT_EQ(calls.outcome(1), StoreOutcome::not_found);
  EXPECT_EQ(calls.outcome(2), StoreOutcome::done);
  EXPECT_EQ(batch.phase(), SaveBatch::Phase::done);
}

TEST(SaveBatchTest, TheOneRowStatementNamesNoOwner) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  batch.add(calls.save(5, 1));
  batch.add(calls.save(5, 1));
  batch.seal();
  batch.saw_updated(5, std::nullopt);
  EXPECT_FALSE(batch.committed(calls));
  EXPECT_EQ(calls.outcome(0), StoreOutcome::done);
  EXPECT_EQ(calls.outcome(1), StoreOutcome::done);
}

TEST(SaveBatchTest, RowsNotAppliedAreExplainedByWhatIsStored) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  batch.add(calls.save(1, 9));     // someone else's
  batch.add(calls.save(2, 1));     // submitted
  batch.add(calls.save(3, 1));     // past its deadline
  batch.add(calls.save(4, 1, 2));  // stale: stored revision 5
  batch.add(calls.save(6, 1));     // missing
  batch.add(calls.save(7, 1));     // nothing explains it
  batch.seal();
  ASSERT_TRUE(batch.committed(calls));
  EXPECT_EQ(std::vector<AttemptId>(batch.unsaved_ids().begin(), batch.unsaved_ids().end()),
            (std::vector<AttemptId>{1, 2, 3, 4, 6, 7}));
  EXPECT_TRUE(calls.answered.empty());
  batch.saw_stored({1, 1, 0, std::nullopt, std::nullopt, false});
  batch.saw_stored({2, 1, 0, "2026-01-01T00:00:00Z", std::nullopt, false});
  batch.saw_stored({3, 1, 0, std::nullopt, "2026-01-02T00:00:00Z", true});
  batch.saw_stored({4, 1, 5, std::nullopt, std::nullopt, false});
  batch.saw_stored({7, 1, 0, std::nullopt, std::nullopt, false});
  EXPECT_EQ(batch.explained(calls), 1u);
  EXPECT_EQ(calls.outcome(0), StoreOutcome::not_found);
  EXPECT_EQ(calls.outcome(1), StoreOutcome::submitted);
  EXPECT_EQ(calls.calls[1].record.submitted_at, "2026-01-01T00:00:00Z");
  EXPECT_EQ(calls.outcome(2), StoreOutcome::deadline_passed);
  EXPECT_EQ(calls.calls[2].record.deadline, "2026-01-02T00:00:00Z");
  EXPECT_EQ(calls.outcome(3), StoreOutcome::stale_revision);
  EXPECT_EQ(calls.calls[3].record.revision, 5);
  EXPECT_EQ(calls.outcome(4), StoreOutcome::not_found);
  EXPECT_EQ(calls.outcome(5), StoreOutcome::unavailable);
  // Someone else's attempt reveals nothing of it.
  EXPECT_EQ(calls.calls[0].record.revision, 0);
  EXPECT_EQ(calls.calls[0].record.submitted_at, std::nullopt);
}

TEST(SaveBatchTest, UnexplainedRowsCanBeSentAgainUntilTheyHaveTriedEnough) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  batch.add(calls.save(2, 1));  // submitted
  batch.add(calls.save(7, 1));  // nothing explains it
  batch.add(calls.save(8, 1));  // nothing explains it
  batch.seal();
  ASSERT_TRUE(batch.committed(calls));
  batch.saw_stored({2, 1, 0, "2026-01-01T00:00:00Z", std::nullopt, false});
  batch.saw_stored({7, 1, 0, std::nullopt, std::nullopt, false});
  batch.saw_stored({8, 1, 0, std::nullopt, std::nullopt, false});
  std::vector<PendingCall> retry;
  EXPECT_EQ(batch.explained(calls, &retry, 3), 2u);
  EXPECT_EQ(calls.outcome(0), StoreOutcome::submitted);
  ASSERT_EQ(retry.size(), 2u);
  EXPECT_EQ(retry[0].call, &calls.calls[1]);
  EXPECT_EQ(retry[0].retries, 1);
  EXPECT_FALSE(calls.was_answered(1));
  EXPECT_EQ(retry[1].call, &calls.calls[2]);
  EXPECT_FALSE(calls.was_answered(2));

  // Sent again and still unexplained, up to the limit; then unavailable.
  SaveBatch again;
  again.reset(0, 256);
  PendingCall tried = retry[0];
  tried.retries = 3;
  again.add(tried);
  again.seal();
  ASSERT_TRUE(again.committed(calls));
  again.saw_stored({7, 1, 0, std::nullopt, std::nullopt, false});
  std::vector<PendingCall> none;
  EXPECT_EQ(again.explained(calls, &none, 3), 1u);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(calls.outcome(1), StoreOutcome::unavailable);
}

TEST(SaveBatchTest, ARollbackSendsTheWritesAgainInArrivalOrderUntilTheyHaveTriedEnough) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  batch.add(calls.save(2, 1));
  PendingCall tired = calls.save(1, 1);
  tired.retries = 3;
  batch.add(tired);
  batch.add(calls.save(3, 1));
  batch.seal();
  std::vector<PendingCall> retry;
  batch.rolled_back(3, retry, calls);
  ASSERT_EQ(retry.size(), 2u);
  EXPECT_EQ(retry[0].call, &calls.calls[0]);
  EXPECT_EQ(retry[1].call, &calls.calls[2]);
  EXPECT_EQ(retry[0].retries, 1);
  EXPECT_EQ(calls.outcome(1), StoreOutcome::unavailable);
  EXPECT_FALSE(calls.was_answered(0));
}

TEST(SaveBatchTest, ALostConnectionLeavesAnUpdateUnknownAndAnExplanationUnavailable) {
  Calls calls;
  SaveBatch sent;
  sent.reset(0, 256);
  sent.add(calls.save(1, 1));
  sent.seal();
  sent.lost(true, calls);
  EXPECT_EQ(calls.outcome(0), StoreOutcome::unknown);

  SaveBatch never_ran;
  never_ran.reset(0, 256);
  never_ran.add(calls.save(1, 1));
  never_ran.seal();
  never_ran.lost(false, calls);
  EXPECT_EQ(calls.outcome(1), StoreOutcome::unavailable);

  SaveBatch explaining;
  explaining.reset(0, 256);
  explaining.add(calls.save(1, 1));
  explaining.seal();
  ASSERT_TRUE(explaining.committed(calls));
  explaining.lost(true, calls);
  EXPECT_EQ(calls.outcome(2), StoreOutcome::unavailable);  // its row was not updated
}

TEST(SaveBatchTest, DeadlinesAnswerOnlyTheCallsPastThem) {
  Calls calls;
  SaveBatch batch;
  batch.reset(0, 256);
  const auto now = Clock::now();
  PendingCall early = calls.save(1, 1);
  early.call->deadline = now - std::chrono::seconds(1);
  PendingCall late = calls.save(2, 1);
  late.call->deadline = now + std::chrono::seconds(5);
  batch.add(early);
  batch.add(late);
  batch.seal();
  EXPECT_EQ(batch.expire(now, calls), 1u);
  EXPECT_EQ(calls.outcome(0), StoreOutcome::unknown);  // sent: it may still apply
  EXPECT_EQ(batch.earliest_deadline(), late.call->deadline);
  EXPECT_EQ(batch.unanswered(), 1u);
  batch.saw_updated(1, 1);
  batch.saw_updated(2, 1);
  batch.committed(calls);
  EXPECT_EQ(calls.answered.size(), 2u) << "the expired call was answered twice";
}

// ---- SavePlanner ------------------------------------------------------------------------------

struct Planned {
  CallQueue queue{{4096, 1u << 24}};
  SavePlanner planner{256};
  SavePlanner::Round round;

  void next(const ShardMap* shards = nullptr) {
    round = {};
    planner.next_round(queue, shards, round);
  }
};

TEST(SavePlannerTest, NothingOfAnAttemptGoesWhileAStatementOfItIsInFlight) {
  Calls calls;
  Planned p;
  p.queue.admit(calls.save(1, 1));
  p.next();
  ASSERT_EQ(p.round.batches.size(), 1u);
  auto first = std::move(p.round.batches[0]);
  p.queue.admit(calls.save(1, 1));
  p.queue.admit(calls.make(StoreCall::Kind::load_attempt, 1, 1));
  p.queue.admit(calls.save(2, 1));
  p.next();
  ASSERT_EQ(p.round.batches.size(), 1u);
  EXPECT_EQ(p.round.batches[0]->rows().size(), 1u);
  EXPECT_EQ(p.round.batches[0]->rows()[0].id, 2);
  EXPECT_EQ(p.queue.size(), 2u) << "attempt 1's write and read wait";
  p.planner.finished(*p.round.batches[0]);
  p.next();
  EXPECT_TRUE(p.round.empty()) << "attempt 1 is still in flight";
  p.planner.finished(*first);
  p.next();
  ASSERT_EQ(p.round.batches.size(), 1u);
  EXPECT_EQ(p.round.batches[0]->rows()[0].id, 1);
  EXPECT_EQ(p.queue.size(), 1u) << "the read waits for the write before it";
  p.planner.finished(*p.round.batches[0]);
  p.next();
  ASSERT_FALSE(p.round.call.answered());
  EXPECT_EQ(p.round.call.call->kind, StoreCall::Kind::load_attempt);
}

TEST(SavePlannerTest, ACallThatIsNotAWriteGoesAloneAndWritesBehindItGoPast) {
  Calls calls;
  Planned p;
  p.queue.admit(calls.make(StoreCall::Kind::start_attempt, 0, 1));
  p.queue.admit(calls.save(1, 1));
  p.next();
  ASSERT_FALSE(p.round.call.answered());
  EXPECT_TRUE(p.round.batches.empty());
  p.queue.admit(calls.make(StoreCall::Kind::submit_attempt, 3, 1));
  p.queue.admit(calls.save(3, 1));
  p.queue.admit(calls.make(StoreCall::Kind::ping, 0, std::nullopt));
  p.queue.admit(calls.save(4, 1));
  // The save of 1 leads: writes of 1 and 4 go; 3's write waits behind its submit, the ping
  // for a round of its own.
  p.next();
  ASSERT_EQ(p.round.batches.size(), 1u);
  ASSERT_EQ(p.round.batches[0]->rows().size(), 2u);
  EXPECT_EQ(p.round.batches[0]->rows()[0].id, 1);
  EXPECT_EQ(p.round.batches[0]->rows()[1].id, 4);
  EXPECT_EQ(p.queue.size(), 3u);
}

TEST(SavePlannerTest, WritesAreGroupedByShardOneStatementEach) {
  Calls calls;
  Planned p;
  const ShardMap shards({{1, std::numeric_limits<std::int32_t>::min(), -1, "w1:5432"},
                         {2, 0, std::numeric_limits<std::int32_t>::max(), "w2:5432"}});
  for (AttemptId id = 1; id <= 20; ++id) p.queue.admit(calls.save(id, 1));
  p.next(&shards);
  ASSERT_EQ(p.round.batches.size(), 2u);
  EXPECT_LT(p.round.batches[0]->group(), p.round.batches[1]->group());
  for (const auto& batch : p.round.batches) {
    for (const auto& row : batch->rows()) {
      EXPECT_EQ(shards.index_of(row.id), batch->group()) << row.id;
    }
  }
  EXPECT_EQ(p.round.batches[0]->rows().size() + p.round.batches[1]->rows().size(), 20u);
}

TEST(SavePlannerTest, ARoundTakesAtMostMaxBatchWrites) {
  Calls calls;
  CallQueue queue({4096, 1u << 24});
  SavePlanner planner(3);
  for (AttemptId id = 1; id <= 5; ++id) queue.admit(calls.save(id, 1));
  SavePlanner::Round round;
  planner.next_round(queue, nullptr, round);
  ASSERT_EQ(round.batches.size(), 1u);
  EXPECT_EQ(round.batches[0]->calls(), 3u);
  EXPECT_EQ(queue.size(), 2u);
}

// ---- CallQueue --------------------------------------------------------------------------------

TEST(CallQueueTest, AdmitsWithinItsCountAndBytes) {
  Calls calls;
  CallQueue queue({2, 10});
  EXPECT_TRUE(queue.admit(calls.save(1, 1, std::nullopt, "12345")));
  EXPECT_FALSE(queue.admit(calls.save(2, 1, std::nullopt, "1234567")));  // 12 bytes
  EXPECT_TRUE(queue.admit(calls.save(3, 1, std::nullopt, "12345")));
  EXPECT_FALSE(queue.admit(calls.save(4, 1, std::nullopt, "")));  // 3 calls
  EXPECT_EQ(queue.bytes(), 10u);
}

TEST(CallQueueTest, ExpiredCallsAreAnsweredUnavailableAndTheRestKeepTheirOrder) {
  Calls calls;
  CallQueue queue({16, 1024});
  const auto now = Clock::now();
  for (int i = 0; i < 4; ++i) {
    PendingCall pending = calls.save(i + 1, 1);
    pending.call->deadline = i % 2 == 0 ? now : now + std::chrono::seconds(1);
    queue.admit(pending);
  }
  EXPECT_EQ(queue.expire(now, calls), 2u);
  EXPECT_EQ(calls.outcome(0), StoreOutcome::unavailable);
  ASSERT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.at(0).call->attempt_id, 2);
  EXPECT_EQ(queue.at(1).call->attempt_id, 4);
  EXPECT_EQ(queue.earliest_deadline(), now + std::chrono::seconds(1));
}

TEST(CallQueueTest, RequeuedCallsGoFirstInTheirOrder) {
  Calls calls;
  CallQueue queue({16, 1024});
  queue.admit(calls.save(9, 1));
  const std::vector<PendingCall> again = {calls.save(1, 1), calls.save(2, 1)};
  queue.requeue_front(again);
  EXPECT_EQ(queue.at(0).call->attempt_id, 1);
  EXPECT_EQ(queue.at(1).call->attempt_id, 2);
  EXPECT_EQ(queue.at(2).call->attempt_id, 9);
}

TEST(CallQueueTest, ARefusalAnswersEverythingButPingsWithTheProblem) {
  Calls calls;
  CallQueue queue({16, 1024});
  queue.admit(calls.save(1, 1));
  queue.admit(calls.make(StoreCall::Kind::ping, 0, std::nullopt, std::nullopt, ""));
  queue.refuse_all_but_pings("the table is LOGGED", calls);
  EXPECT_EQ(calls.outcome(0), StoreOutcome::unavailable);
  EXPECT_EQ(calls.calls[0].problem, "the table is LOGGED");
  ASSERT_EQ(queue.size(), 1u);
  EXPECT_EQ(queue.at(0).call->kind, StoreCall::Kind::ping);
  EXPECT_EQ(queue.bytes(), 0u);
}

}  // namespace
}  // namespace attempts::db
