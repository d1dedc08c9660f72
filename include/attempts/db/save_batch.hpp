#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attempts/db/attempt_map.hpp"
#include "attempts/db/pending_call.hpp"

namespace attempts::db {

// What the why-not-saved query read of one attempt that an UPDATE did not change.
struct StoredAttempt {
  AttemptId id = 0;
  StudentId owner = 0;
  Revision revision = 0;
  std::optional<std::string> submitted_at;  // ISO 8601, as AttemptRecord holds it
  std::optional<std::string> deadline;
  bool deadline_passed = false;
};

// The writes that go out as one UPDATE, and what each write's caller is told. No libpq, no
// sockets, no timers: calls in, rows to send out; result rows in, outcomes out.
//
// Who may share the statement (add):
// - A row is one attempt and one writer (the student of the token). The writes of one writer to
//   one attempt without a revision share a row: the last one received is sent, and they all get
//   its fate (applied one after another, or refused for the same reason).
// - A write with a revision has a row of its own: whether it applies depends on the revision
//   stored before it, which only its own statement tells, so a second write of that writer to
//   that attempt waits for a later statement.
// - Writers who differ share an attempt's rows: at most one of them owns it, so at most one row
//   can match it, and the others' fates do not depend on one another. A write without a writer
//   (authentication off) matches any owner, so it never shares an attempt with another writer.
//
// What each caller is told (committed, explained): a row the UPDATE returned was applied; the
// other rows of its attempt are someone else's (404, like a missing attempt). For a row that
// was not applied and whose attempt no row changed, the why-not-saved query reads the attempt
// (its owner, revision, submit time and deadline) right after the UPDATE, before anything else
// of that attempt is sent (SavePlanner holds it back), so the reason is the one that stood in
// the UPDATE's way: someone else's attempt or a missing one, submitted, past its deadline, or a
// revision that is not newer. The outcome of every write is then the one it would get if the
// writes were applied one at a time in the order they arrived (tests/unit/test_save_model.cpp).
class SaveBatch {
 public:
  using Clock = std::chrono::steady_clock;

  // One row of the statement.
  struct Row {
    AttemptId id = 0;
    std::optional<StudentId> student;
    std::optional<Revision> revision;  // of the sent write (rows with a revision have one write)
    // Of the sent write (the last received): a copy the batch owns from seal() on, since the
    // calls belong to their callers again once answered (a deadline can answer them while the
    // statement is in flight, and the session then reuses the call).
    std::string_view answers;
    // How many writes the row stands for (the answer history records it), from seal() on.
    std::int32_t writes = 1;
    // How many questions the sent write answers (attempts.answered), from seal() on.
    std::int32_t answered = 0;
  };

  // The most bytes of answers one statement carries: PostgreSQL takes no parameter past 1 GB,
  // and libpq counts a parameter's length in an int. A write that would pass it waits for the
  // next statement; one write alone is far below it (--body-limit is at most 64 MiB).
  static constexpr std::size_t kMaxAnswerBytes = std::size_t{256} << 20;

  enum class Phase {
    building,    // taking writes (add)
    saving,      // the UPDATE is sent
    explaining,  // the why-not-saved query is sent for the rows that were not applied
    done,        // every call is answered
  };

  // Starts an empty batch for statement group `group` (the Citus shard; 0 on one PostgreSQL),
  // holding at most `max_rows` rows.
  void reset(std::uint32_t group, std::size_t max_rows);

  // Adds the write `pending` (a save_answers call) if it may share this statement with the
  // writes already in it (see above); false if it must wait for a later one.
  bool add(const PendingCall& pending);

  // Ends building: the rows in sending order, ascending by attempt then writer (so that two
  // statements lock rows in the same order and cannot deadlock), each with a copy of the
  // answers it sends.
  void seal();
  std::span<const Row> rows() const { return sorted_; }

  std::uint32_t group() const { return group_; }
  Phase phase() const { return phase_; }
  std::size_t calls() const { return members_.size(); }
  std::size_t unanswered() const;
  // Rows the UPDATE applied (known once it committed).
  std::size_t applied_rows() const;

  // The UPDATE returned a row: attempt `id` was updated, and `owner` owns it (nullopt from the
  // one-row statement, whose attempt has one writer).
  void saw_updated(AttemptId id, std::optional<StudentId> owner);
  // The UPDATE committed. Answers the calls whose fate is known: applied (done) or someone
  // else's (not_found); true if rows remain whose reason must be read (unsaved_ids), and the
  // batch is then explaining.
  bool committed(CallAnswerer& answerer);
  // The attempts to read for the why-not-saved query: ascending, unique.
  std::span<const AttemptId> unsaved_ids() const { return unsaved_ids_; }

  // The why-not-saved query read one attempt.
  void saw_stored(const StoredAttempt& stored);
  // The why-not-saved query finished: answers the rest. Returns how many rows were not applied
  // for no reason the query could see (answered unavailable: nothing changed). With `retry`,
  // the writes of those rows sent fewer than `max_retries` times are appended to it instead (no
  // longer this batch's), to be sent again: the UPDATE did not apply them, so sending them again
  // cannot apply one twice.
  std::size_t explained(CallAnswerer& answerer, std::vector<PendingCall>* retry = nullptr,
                        std::uint8_t max_retries = 0);

  // The statement in flight failed. `rolled_back`: it (the UPDATE) rolled back with a transient
  // error, so nothing of it was applied and each write may be sent again: those sent fewer than
  // `max_retries` times are appended to `retry` in the order they arrived (no longer this
  // batch's), the others answered unavailable. Otherwise every unanswered call gets `outcome`.
  void failed(StoreOutcome outcome, CallAnswerer& answerer);
  void rolled_back(std::uint8_t max_retries, std::vector<PendingCall>& retry,
                   CallAnswerer& answerer);
  // The connection was lost with the batch in flight: an UPDATE may have committed (unknown),
  // unless `ran` is false (a statement before it failed fatally); rows being explained were not
  // applied (unavailable).
  void lost(bool ran, CallAnswerer& answerer);
  // Answers the calls whose deadline is at or before `now`: unknown while the UPDATE may still
  // apply, unavailable once only the reason is being read. Returns how many.
  std::size_t expire(Clock::time_point now, CallAnswerer& answerer);
  // The earliest deadline of a call not yet answered; time_point::max() if none.
  Clock::time_point earliest_deadline() const;

 private:
  enum class Fate : std::uint8_t {
    pending,
    applied,
    not_found,
    submitted,
    deadline_passed,
    stale_revision,
    unexplained,
  };

  struct RowState {
    Row row;
    std::uint32_t next_of_attempt = 0;  // index + 1 of the attempt's next row; 0: none
    std::uint32_t sent_member = 0;      // the member whose answers are sent
    Fate fate = Fate::pending;
    Revision stored_revision = 0;  // stale_revision
    std::string detail;            // submitted: submitted_at; deadline_passed: the deadline
  };

  struct Member {
    PendingCall pending;
    std::uint32_t row = 0;
  };

  void answer_members(Fate only, CallAnswerer& answerer);
  void answer(Member& member, CallAnswerer& answerer);
  static Fate fate_of(const Row& row, const StoredAttempt& stored);

  Phase phase_ = Phase::done;
  std::uint32_t group_ = 0;
  std::size_t max_rows_ = 1;
  std::vector<RowState> rows_;   // in the order they were added
  std::vector<Member> members_;  // in the order the calls arrived
  std::vector<Row> sorted_;      // rows_ in sending order
  AttemptMap first_row_;         // attempt -> index + 1 of its first row in rows_
  std::vector<AttemptId> unsaved_ids_;
  std::size_t answer_bytes_ = 0;  // of the rows' sent writes, while building
  std::string answers_;           // the rows' answers, one after another, from seal() on
};

}  // namespace attempts::db
