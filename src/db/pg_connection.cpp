#include "pg_connection.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <utility>

#include "sql.hpp"

namespace attempts::db {

namespace net = boost::asio;

namespace {

// Times a write rolled back by a transient error is sent again before it is answered
// unavailable.
constexpr std::uint8_t kMaxRetries = 3;

// Every statement the connection prepares once set up, those of the answer history last: both
// kinds of save statement, since whether attempts is distributed is known only from the setup's
// own answer.
struct Prepared {
  const char* name;
  const char* text;
  std::span<const unsigned> types;
};
constexpr Prepared kPrepared[] = {
    {sql::kSaveOneName, sql::kSaveOne, sql::kSaveOneTypes},
    {sql::kSaveOneShardName, sql::kSaveOneShard, sql::kSaveOneTypes},
    {sql::kSaveBatchName, sql::kSaveBatch, sql::kSaveBatchTypes},
    {sql::kSaveShardName, sql::kSaveShard, sql::kSaveBatchTypes},
    {sql::kWhyNotSavedName, sql::kWhyNotSaved, sql::kWhyNotSavedTypes},
    {sql::kLoadAttemptName, sql::kLoadAttempt, sql::kLoadAttemptTypes},
    {sql::kSubmitAttemptName, sql::kSubmitAttempt, sql::kSubmitAttemptTypes},
    {sql::kStartAttemptName, sql::kStartAttempt, sql::kStartAttemptTypes},
    {sql::kPingName, sql::kPing, {}},
    {sql::kSaveOneKeptName, sql::kSaveOneKept, sql::kSaveOneKeptTypes},
    {sql::kSaveOneShardKeptName, sql::kSaveOneShardKept, sql::kSaveOneKeptTypes},
    {sql::kSaveBatchKeptName, sql::kSaveBatchKept, sql::kSaveBatchKeptTypes},
    {sql::kSaveShardKeptName, sql::kSaveShardKept, sql::kSaveBatchKeptTypes},
    {sql::kLoadHistoryName, sql::kLoadHistory, sql::kLoadHistoryTypes},
};
constexpr std::size_t kPreparedForHistory = 5;

template <class Field>
constexpr auto prepared_column(Field Prepared::*field) {
  std::array<Field, std::size(kPrepared)> column{};
  for (std::size_t i = 0; i < column.size(); ++i) column[i] = kPrepared[i].*field;
  return column;
}
constexpr auto kPreparedNames = prepared_column(&Prepared::name);
constexpr auto kPreparedTexts = prepared_column(&Prepared::text);
constexpr auto kPreparedTypes = prepared_column(&Prepared::types);

const std::string& session_setup_text() {
  static const std::string text =
      std::string(sql::kSessionSetupHead) + kDetectCitusQuery + sql::kSessionSetupTail;
  return text;
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

PgConnection::PgConnection(net::io_context& loop, std::size_t index, const PoolContext& pool,
                           ConnectionGauges& gauges, const MakePipeline& make_pipeline)
    : loop_(loop),
      index_(index),
      pool_(pool),
      options_(pool.options),
      metrics_(pool.metrics),
      gauges_(gauges),
      queue_({options_.queue_capacity, options_.queue_bytes}),
      planner_(options_.max_batch, this),
      monitor_(index, options_, metrics_),
      errors_(index),
      driver_(make_pipeline(*this)),
      deadline_timer_(loop.get_executor()),
      check_timer_(loop.get_executor()) {}

PgConnection::~PgConnection() {
  ready_ = false;  // nothing is sent, nor scheduled, from here on
  abandon_in_flight(false);
  release_lost();
  queue_.answer_all(StoreOutcome::unavailable, *this);
}

void PgConnection::start() {
  driver_->start();
}

// ---- calls ------------------------------------------------------------------------------------

void PgConnection::submit(StoreCall& call, StoreCompletion& completion) {
  PendingCall pending{&call, &completion};
  // Answered at once: a request never waits for a database that is known to be down.
  if (closing_ || driver_->down()) return answer(pending, StoreOutcome::unavailable);
  // A misconfigured table: nothing is done in another durability mode than the one promised,
  // nor on a cluster that is not what --citus requires. Pings go through, to notice when it is
  // fixed.
  if (const auto& why = monitor_.refusal(); why && call.kind != StoreCall::Kind::ping) {
    call.problem = *why;
    return answer(pending, StoreOutcome::unavailable);
  }
  if (!queue_.admit(pending)) return answer(pending, StoreOutcome::overloaded);
  watch_deadline(call.deadline);
  schedule_flush();
  gauges_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
}

void PgConnection::answer(PendingCall& pending, StoreOutcome outcome) {
  StoreCall* call = std::exchange(pending.call, nullptr);
  if (call == nullptr) return;
  if (outcome == StoreOutcome::unknown) metrics_.outcomes_unknown.add();
  call->outcome = outcome;
  // The completion may end the request (and reuse or free the call): nothing of it is touched
  // after this.
  pending.completion->on_store_complete(*call);
}

bool PgConnection::claim(AttemptId attempt) {
  return pool_.claims.claim(attempt, static_cast<ClaimTable::Owner>(index_ + 1));
}

void PgConnection::release(AttemptId attempt) {
  if (pool_.claims.release(attempt, static_cast<ClaimTable::Owner>(index_ + 1)) &&
      pool_.claims_released) {
    pool_.claims_released();
  }
}

// ---- connecting -------------------------------------------------------------------------------

void PgConnection::on_connected() {
  // Without history the kept statements are not even prepared: a database without
  // answer_history (an older schema) then works as before.
  const std::size_t prepared =
      options_.history ? std::size(kPrepared) : std::size(kPrepared) - kPreparedForHistory;
  const std::string statement_timeout = std::to_string(options_.statement_timeout.count());
  // The backend of a session lost with writes that may still apply, to be seen gone first; the
  // wait for it to exit stays within the connect timeout, which the setup runs under.
  const auto& previous = lost_.to_end();
  const std::string previous_pid = previous ? std::to_string(previous->pid) : "";
  const std::string previous_start = previous ? std::to_string(previous->started_us) : "";
  const std::string exit_wait =
      std::to_string(std::max<long long>(options_.connect_timeout.count() / 2, 1));
  // async: commits return before their WAL is flushed, on these connections only. sync: on,
  // whatever the server's default. unlogged: the server's own (UNLOGGED writes no WAL).
  const char* synchronous_commit = options_.durability == Durability::async  ? "off"
                                   : options_.durability == Durability::sync ? "on"
                                                                             : nullptr;
  // Whether attempts is a Citus distributed table is always asked (any non-NULL value): even
  // with --citus off, Citus refuses the single-node save statements (ClusterMonitor).
  const char* values[] = {statement_timeout.c_str(),
                          synchronous_commit,
                          "detect",
                          previous ? previous_pid.c_str() : nullptr,
                          previous ? previous_start.c_str() : nullptr,
                          exit_wait.c_str(),
                          options_.history ? "on" : "off"};
  if (driver_->send_setup(
          std::span(kPreparedNames).first(prepared), std::span(kPreparedTexts).first(prepared),
          std::span(kPreparedTypes).first(prepared), session_setup_text().c_str(), values)) {
    push(Setup{}, false);
  }
}

void PgConnection::on_connect_failed(std::string_view) {
  // Only the setup (or its shard map read) was in flight. Calls waited for this attempt; with
  // the database unreachable they are answered now.
  in_flight_.clear();
  monitor_.forget_reads();
  ready_ = false;
  queue_.answer_all(StoreOutcome::unavailable, *this);
  publish_gauges();
  maybe_finish_closing();
}

void PgConnection::became_ready() {
  ready_ = true;
  driver_->set_up();
  publish_gauges();
  schedule_flush();
  schedule_check();
}

// ---- sending ----------------------------------------------------------------------------------

void PgConnection::schedule_flush() {
  // Posted, not run now: the other requests the loop reads in this round join the same batch.
  if (flush_scheduled_ || !ready_) return;
  flush_scheduled_ = true;
  net::post(loop_, [this] {
    flush_scheduled_ = false;
    flush();
  });
}

void PgConnection::flush() {
  if (!ready_) return;
  // Calls queued before the setup (or a later check) found a reason to refuse them are refused
  // now, never sent.
  if (const auto& why = monitor_.refusal()) queue_.refuse_all_but_pings(*why, *this);
  bool sent = false;
  while (ready_ && in_flight_.requests() < options_.pipeline_depth && !queue_.empty()) {
    planner_.next_round(queue_, monitor_.shard_map(), round_);
    if (round_.empty()) break;  // everything queued waits for an attempt in flight
    for (auto& batch : round_.batches) send_save(std::move(batch));
    round_.batches.clear();
    if (!round_.call.answered()) send_call(std::exchange(round_.call, PendingCall{}));
    sent = true;
  }
  if (sent && ready_) {
    driver_->flush();
    if (!in_flight_.empty()) watch_deadline(in_flight_.front().sent_at + options_.stall_timeout);
  }
  publish_gauges();
  maybe_finish_closing();
}

void PgConnection::push(StatementsInFlight::Statement statement, bool request) {
  in_flight_.push(std::move(statement), pool_.now(), request);
}

void PgConnection::send_save(std::unique_ptr<SaveBatch> batch) {
  if (!driver_->send(codec_.save(*batch, monitor_.distributed(), options_.history))) {
    batch->failed(StoreOutcome::unavailable, *this);  // not sent: nothing was done
    return done_with(std::move(batch));
  }
  push(Save{std::move(batch)}, true);
}

void PgConnection::send_why_not_saved(std::unique_ptr<SaveBatch> batch) {
  if (!driver_->send(codec_.why_not_saved(*batch))) {
    // Those rows were not updated: whatever fails now, nothing of theirs was saved.
    batch->failed(StoreOutcome::unavailable, *this);
    return done_with(std::move(batch));
  }
  // Behind everything already sent; it needs no pipeline slot.
  push(WhyNotSaved{std::move(batch)}, false);
}

void PgConnection::send_call(PendingCall pending) {
  const StoreCall& call = *pending.call;
  Call sent{pending, call.kind, call.attempt_id};
  if (!driver_->send(codec_.call(call))) {
    answer(pending, StoreOutcome::unavailable);  // not sent: nothing was done
    return planner_.finished(sent.kind, sent.attempt);
  }
  push(std::move(sent), true);
}

void PgConnection::send_check() {
  StoreCall ping;  // the ping's statement, without a call waiting on it
  if (driver_->send(codec_.call(ping))) push(Check{}, false);
}

void PgConnection::send_shard_map_read() {
  if (!monitor_.start_shard_map_read()) return;
  if (!driver_->send_query(kShardMapQuery)) return monitor_.shard_map_read_finished();
  push(ShardMapRead{}, false);
}

void PgConnection::schedule_check() {
  check_timer_.expires_after(options_.durability_check_interval);
  check_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !ready_ || closing_) return;
    send_check();
    // Shards move and split while we run (the rebalancer): the map is read again each time.
    if (monitor_.follows_shards()) send_shard_map_read();
    driver_->flush();
    schedule_check();
  });
}

// ---- results ----------------------------------------------------------------------------------

void PgConnection::on_error(const StatementError& error) {
  Sent& sent = in_flight_.front();
  if (!sent.error) sent.error = error;
}

void PgConnection::on_result(const PGresult& result) {
  Sent& sent = in_flight_.front();
  // The setup sends the prepared statements first; only its query has a row.
  if (std::holds_alternative<Setup>(sent.statement) && PQntuples(&result) != 1) return;
  if (sent.result_seen) return;
  sent.result_seen = true;
  std::visit(Overloaded{
                 [&](Setup& setup) {
                   if (const auto found = StatementCodec::read_persistence(result)) {
                     monitor_.saw_persistence(*found);
                   }
                   setup.distributed = StatementCodec::read_citus(result);
                   setup.backend = StatementCodec::read_backend(result);
                   setup.previous_gone = StatementCodec::read_previous_gone(result);
                 },
                 [&](Check&) {
                   if (const auto found = StatementCodec::read_persistence(result)) {
                     monitor_.saw_persistence(*found);
                   }
                 },
                 [&](ShardMapRead& read) {
                   try {
                     read.map = StatementCodec::read_shard_map(result);
                   } catch (const std::invalid_argument& error) {
                     read.problem = error.what();
                   }
                 },
                 [&](Save& save) { StatementCodec::read_updated(result, *save.batch); },
                 [&](WhyNotSaved& why) { StatementCodec::read_stored(result, *why.batch); },
                 [&](Call& call) {
                   if (call.pending.answered()) return;  // answered at its deadline already
                   if (call.kind != StoreCall::Kind::ping) {
                     call.outcome = StatementCodec::read_call(result, *call.pending.call);
                     return;
                   }
                   if (const auto found = StatementCodec::read_persistence(result)) {
                     monitor_.saw_persistence(*found);
                   }
                   call.outcome = StoreOutcome::done;
                   if (const auto& why = monitor_.refusal()) {
                     call.outcome = StoreOutcome::unavailable;
                     call.pending.call->problem = *why;
                   }
                 },
             },
             sent.statement);
}

void PgConnection::on_statement_finished() {
  Sent sent = in_flight_.pop_front();
  std::visit(Overloaded{
                 [&](Setup& setup) { finish_setup(sent, setup); },
                 [&](Check&) {
                   if (sent.error) {
                     driver_->fail("checking the table failed: " + sent.error->message);
                   }
                 },
                 [&](ShardMapRead& read) { finish_shard_map_read(sent, read); },
                 [&](Save& save) { finish_save(sent, save); },
                 [&](WhyNotSaved& why) { finish_why_not_saved(sent, why); },
                 [&](Call& call) { finish_call(sent, call); },
             },
             sent.statement);
}

void PgConnection::on_results_handled() {
  publish_gauges();
  schedule_flush();
  maybe_finish_closing();
}

void PgConnection::finish_setup(const Sent& sent, Setup& setup) {
  if (sent.error) {
    return driver_->fail("setting up the session failed: " + sent.error->message, false, true);
  }
  if (lost_.holding() && setup.previous_gone) {
    if (!*setup.previous_gone) {
      // It did not exit in time: try again (a new session, a new look) after a backoff.
      return driver_->fail("the backend of the session lost before still runs", false, true);
    }
    metrics_.lost_backends_ended.add();
    release_lost();
  }
  lost_.set_up(setup.backend);
  // On Citus, ready once the shard map is read.
  if (monitor_.saw_setup(setup.distributed)) return send_shard_map_read();
  became_ready();
}

void PgConnection::finish_shard_map_read(const Sent& sent, ShardMapRead& read) {
  monitor_.shard_map_read_finished();
  if (sent.error) {
    if (!ready_) {
      return driver_->fail("reading the shard map failed: " + sent.error->message, false, true);
    }
    // A re-read that failed (the coordinator restarting, say): the map in hand stays.
    return errors_.log(spdlog::level::warn, "shard map",
                       "reading the shard map failed: " + sent.error->message, sent.error->message);
  }
  if (read.problem) {
    monitor_.saw_unusable_shard_map(*read.problem);
  } else if (read.map) {
    monitor_.saw_shard_map(std::move(*read.map));
  } else {
    monitor_.saw_unusable_shard_map("it was not read");
  }
  if (!ready_) became_ready();
}

void PgConnection::finish_save(const Sent& sent, Save& save) {
  SaveBatch& batch = *save.batch;
  if (sent.error && sent.error->transient && !sent.error->fatal) {
    retry_save(sent, batch);
    return done_with(std::move(save.batch));
  }
  if (sent.error || !sent.result_seen) {
    const std::string message = sent.error ? sent.error->message : "no result";
    metrics_.database_errors.add();
    errors_.log(spdlog::level::err, "saving",
                "saving " + std::to_string(batch.rows().size()) + " attempts failed: " + message,
                message);
    batch.failed(StoreOutcome::unavailable, *this);  // rolled back: nothing of it was saved
    return done_with(std::move(save.batch));
  }
  metrics_.batch_rows.observe(static_cast<double>(batch.rows().size()));
  metrics_.batches_committed.add();
  metrics_.rows_committed.add(batch.applied_rows());
  if (batch.committed(*this)) return send_why_not_saved(std::move(save.batch));
  done_with(std::move(save.batch));
}

void PgConnection::retry_save(const Sent& sent, SaveBatch& batch) {
  // The statement rolled back: none of its writes was applied, and nothing else of their
  // attempts was sent meanwhile (SavePlanner), so each is sent again, ahead of everything
  // queued. Writes retried too often are answered unavailable: not saved, which is true.
  metrics_.database_errors.add();
  errors_.log(
      spdlog::level::warn, "retrying",
      "saving " + std::to_string(batch.rows().size()) +
          " attempts failed with a transient error, sending them again: " + sent.error->message,
      sent.error->message);
  if (monitor_.shard_map()) send_shard_map_read();  // ahead of the retry: the map may have moved
  retry_.clear();
  batch.rolled_back(kMaxRetries, retry_, *this);
  metrics_.writes_retried.add(retry_.size());
  queue_.requeue_front(retry_);
  for (const auto& pending : retry_) watch_deadline(pending.call->deadline);
  schedule_flush();
}

void PgConnection::finish_why_not_saved(const Sent& sent, WhyNotSaved& why) {
  if (sent.error || !sent.result_seen) {
    const std::string message = sent.error ? sent.error->message : "no result";
    metrics_.database_errors.add();
    errors_.log(spdlog::level::err, "saving", "checking unsaved attempts failed: " + message,
                message);
    why.batch->failed(StoreOutcome::unavailable, *this);  // those rows were not updated
    return done_with(std::move(why.batch));
  }
  // On Citus, a statement that races a shard split can run against a placement that does not
  // hold the row at that moment (seen at the nodes): those writes were not applied, so they are
  // sent again, after the map is read again, as a rolled-back batch's are.
  retry_.clear();
  const bool citus = monitor_.shard_map() != nullptr;
  if (const std::size_t unexplained =
          why.batch->explained(*this, citus ? &retry_ : nullptr, kMaxRetries);
      unexplained > 0) {
    // Nothing the query could see explains it; the write may race a change it cannot see.
    errors_.log(spdlog::level::warn, "saving",
                std::to_string(unexplained) + " attempts were not updated for no visible reason" +
                    (retry_.empty() ? "" : "; sending them again"),
                "not updated for no visible reason");
  }
  if (!retry_.empty()) {
    send_shard_map_read();
    metrics_.writes_retried.add(retry_.size());
    queue_.requeue_front(retry_);
    for (const auto& pending : retry_) watch_deadline(pending.call->deadline);
    schedule_flush();
  }
  done_with(std::move(why.batch));
}

void PgConnection::finish_call(const Sent& sent, Call& call) {
  planner_.finished(call.kind, call.attempt);
  if (sent.error || !sent.result_seen) {
    const std::string message = sent.error ? sent.error->message : "no result";
    metrics_.database_errors.add();
    if (call.kind != StoreCall::Kind::ping) {
      errors_.log(spdlog::level::err, "running", "a statement failed: " + message, message);
    }
    return answer(call.pending, StoreOutcome::unavailable);  // rolled back: nothing was done
  }
  answer(call.pending, call.outcome);
}

void PgConnection::done_with(std::unique_ptr<SaveBatch> batch) {
  planner_.finished(*batch);
  planner_.recycle(std::move(batch));
}

// ---- deadlines, failure and closing -----------------------------------------------------------

void PgConnection::watch_deadline(Clock::time_point at) {
  if (at >= deadline_armed_) return;
  deadline_armed_ = at;
  deadline_timer_.expires_at(at);
  deadline_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // re-armed for an earlier time, or closing
    deadline_armed_ = Clock::time_point::max();
    check_deadlines();
  });
}

void PgConnection::check_deadlines() {
  const auto now = pool_.now();
  // A lost session's backend that was never seen gone has had the time its statement_timeout
  // gives it to end what it ran.
  if (lost_.holding() && lost_.until() <= now) release_lost();
  // Queued calls past their deadline were never sent: nothing was done. Sent calls are
  // answered now while their statement goes on: a write may still commit (unknown).
  std::size_t expired = queue_.expire(now, *this);
  auto next = queue_.earliest_deadline();
  expired += in_flight_.expire(now, *this, next);
  metrics_.deadline_expirations.add(expired);
  next = std::min(next, lost_.until());

  // No reply at all for the stall timeout: the server or the network has stalled, where
  // statement_timeout cannot help. The connection is never used again.
  if (ready_ && !in_flight_.empty()) {
    const auto stalled_at = in_flight_.front().sent_at + options_.stall_timeout;
    if (stalled_at <= now) {
      metrics_.stalled_connections.add();
      return driver_->fail(
          "no reply from the server for " + std::to_string(options_.stall_timeout.count()) + " ms",
          /*cancel=*/true);
    }
    next = std::min(next, stalled_at);
  }
  publish_gauges();
  if (next != Clock::time_point::max()) watch_deadline(next);
  maybe_finish_closing();
}

void PgConnection::on_lost(std::string_view why) {
  metrics_.database_errors.add();
  errors_.log(spdlog::level::warn, "lost", "lost: " + std::string(first_line(why)),
              first_line(why));
  ready_ = false;
  // Each statement in flight may have been behind another on the server, each under the
  // server's statement_timeout: by then all of them have ended, whether or not anyone sees it.
  const auto statements = static_cast<Clock::duration::rep>(in_flight_.size());
  abandon_in_flight(true);
  lost_.lost(pool_.now() + statements * Clock::duration(options_.statement_timeout));
  if (lost_.holding()) watch_deadline(lost_.until());
  queue_.answer_all(StoreOutcome::unavailable, *this);
  publish_gauges();
  maybe_finish_closing();
}

void PgConnection::release_lost() {
  if (!lost_.holding()) return;
  for (const AttemptId attempt : lost_.release()) planner_.finished(attempt);
  schedule_flush();
}

void PgConnection::close_when_idle(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  maybe_finish_closing();
}

void PgConnection::maybe_finish_closing() {
  if (!closing_ || closed_) return;
  // The connection's own statements (setup, checks) hold nobody up.
  const bool busy = !queue_.empty() || in_flight_.busy();
  // Busy while connected or setting up: what it holds is answered first. Otherwise (waiting to
  // reconnect, or connecting) nothing it holds can be sent: it is answered now.
  if (busy && driver_->open()) return;
  abandon_in_flight(false);
  queue_.answer_all(StoreOutcome::unavailable, *this);
  closed_ = true;
  ready_ = false;
  driver_->close();
  deadline_timer_.cancel();
  check_timer_.cancel();
  publish_gauges();
  if (auto on_closed = std::exchange(on_closed_, nullptr)) net::post(loop_, std::move(on_closed));
}

void PgConnection::publish_gauges() {
  const std::size_t in_flight = in_flight_.unanswered();
  gauges_.connected.store(ready_, std::memory_order_relaxed);
  gauges_.refusing.store(ready_ && monitor_.refusal().has_value(), std::memory_order_relaxed);
  gauges_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
  gauges_.in_flight.store(in_flight, std::memory_order_relaxed);
}

}  // namespace attempts::db
