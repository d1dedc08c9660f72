#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "attempts/db/call_queue.hpp"
#include "attempts/db/claim_table.hpp"
#include "attempts/db/pg_pool.hpp"
#include "attempts/db/save_batch.hpp"
#include "attempts/db/save_planner.hpp"
#include "cluster_monitor.hpp"
#include "error_log.hpp"
#include "lost_statements.hpp"
#include "statement_codec.hpp"
#include "statement_pipeline.hpp"
#include "statements_in_flight.hpp"

namespace attempts::db {

// What the connections of a pool share; it outlives them.
struct PoolContext {
  using Clock = std::chrono::steady_clock;

  const PgPoolOptions& options;
  PoolMetrics& metrics;
  ClaimTable& claims;
  // Claims were released that other connections waited for: every event loop looks at its
  // queued calls again. Called from any loop's thread.
  std::function<void()> claims_released;
  // The clock deadlines are read from (the model tests pass a simulated one).
  Clock::time_point (*now)() = &Clock::now;
};

// One pool connection, owned by one event loop and driven only from it. It puts together the
// pieces that each do one job: calls wait in a CallQueue; the SavePlanner picks what goes out
// next (writes batched into SaveBatches, each a single UPDATE, and nothing of an attempt sent
// while a statement of it is in flight, here or, through the pool's ClaimTable, on any other
// connection); the StatementCodec turns them into bytes and results back into outcomes; the
// StatementPipeline (PipelineDriver on libpq) talks to the server; the ClusterMonitor says
// whether calls may go (durability, Citus shard map); LostStatements keeps the attempts a lost
// session may still write. What it keeps itself is the list of statements in flight, oldest
// first, and what each one's end means for its callers.
//
// Every call is answered by its deadline whatever the server does: a call still queued then is
// answered `unavailable`, one already sent `unknown` (a write) or `unavailable` (a read). A
// statement with no reply for stall_timeout drops the connection (with a cancel request),
// never to be reused. The one place that decides what a lost connection means for the calls it
// held is on_lost(): queued calls were never sent (`unavailable`), sent writes are `unknown`.
class PgConnection final : PipelineHandler, CallAnswerer, AttemptClaims {
 public:
  using Clock = std::chrono::steady_clock;
  using MakePipeline = std::function<std::unique_ptr<StatementPipeline>(PipelineHandler& handler)>;

  // `index` numbers the connection within the pool (logs, claims).
  PgConnection(boost::asio::io_context& loop, std::size_t index, const PoolContext& pool,
               ConnectionGauges& gauges, const MakePipeline& make_pipeline);
  // Answers whatever is still queued or in flight (unavailable / unknown).
  ~PgConnection();

  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  void start();
  void submit(StoreCall& call, StoreCompletion& completion);

  // For the loop's router (LoopRouter), on this connection's loop:
  // whether a call of `attempt` is queued here or a statement of it is in flight;
  bool holds(AttemptId attempt) const {
    return queue_.holds(attempt) || planner_.in_flight(attempt);
  }
  // whether a call sent now would be sent (set up, not refusing, not closing);
  bool accepting() const { return ready_ && !closing_ && !monitor_.refusal(); }
  // whether its server cannot be reached: not set up, and the last connection attempt failed;
  bool unreachable() const { return !ready_ && !closed_ && driver_->failed_connects() > 0; }
  // the Citus shard map it last read, if any, and its version (ClusterMonitor).
  const ShardMap* shard_map() const { return monitor_.shard_map(); }
  std::uint64_t shard_map_version() const { return monitor_.shard_map_version(); }
  // Refuses new calls; once nothing is queued or in flight, closes and runs `on_closed`.
  void close_when_idle(std::function<void()> on_closed);
  // Claims that queued calls may wait for were released elsewhere: sends what may go now.
  void wake() { schedule_flush(); }

  // Answers the calls whose deadline has passed, and drops a stalled connection. The deadline
  // timer runs it; the model tests run it after moving their clock.
  void check_deadlines();

 private:
  using Sent = StatementsInFlight::Sent;
  using Setup = StatementsInFlight::Setup;
  using ShardMapRead = StatementsInFlight::ShardMapRead;
  using Save = StatementsInFlight::Save;
  using WhyNotSaved = StatementsInFlight::WhyNotSaved;
  using Call = StatementsInFlight::Call;
  using Check = StatementsInFlight::Check;

  // PipelineHandler
  void on_connected() override;
  void on_connect_failed(std::string_view why) override;
  void on_result(const PGresult& result) override;
  void on_error(const StatementError& error) override;
  void on_statement_finished() override;
  void on_lost(std::string_view why) override;
  void on_results_handled() override;
  // CallAnswerer
  void answer(PendingCall& pending, StoreOutcome outcome) override;
  // AttemptClaims
  bool claim(AttemptId attempt) override;
  void release(AttemptId attempt) override;

  // Sending.
  void schedule_flush();
  void flush();
  void send_save(std::unique_ptr<SaveBatch> batch);
  void send_why_not_saved(std::unique_ptr<SaveBatch> batch);
  void send_call(PendingCall pending);
  void send_check();
  void send_shard_map_read();
  // `request`: a save or a call, counted against the pipeline depth.
  void push(StatementsInFlight::Statement statement, bool request);
  void schedule_check();

  // What each statement's end means.
  void became_ready();
  void finish_setup(const Sent& sent, Setup& setup);
  void finish_shard_map_read(const Sent& sent, ShardMapRead& read);
  void finish_save(const Sent& sent, Save& save);
  void retry_save(const Sent& sent, SaveBatch& batch);
  void finish_why_not_saved(const Sent& sent, WhyNotSaved& why);
  void finish_call(const Sent& sent, Call& call);
  void done_with(std::unique_ptr<SaveBatch> batch);

  // Deadlines, failure and closing.
  void watch_deadline(Clock::time_point at);
  // Answers what is in flight as a lost connection leaves it, and forgets it. With
  // `may_still_run` (lost in use), the attempts of writes that may still apply stay held.
  void abandon_in_flight(bool may_still_run) {
    in_flight_.abandon(may_still_run, planner_, lost_, metrics_, *this);
    monitor_.forget_reads();
  }
  // A lost session's writes can no longer apply: their attempts may be sent again.
  void release_lost();
  void maybe_finish_closing();
  void publish_gauges();

  boost::asio::io_context& loop_;
  const std::size_t index_;
  const PoolContext& pool_;
  const PgPoolOptions& options_;
  PoolMetrics& metrics_;
  ConnectionGauges& gauges_;

  CallQueue queue_;
  SavePlanner planner_;
  StatementCodec codec_;
  ClusterMonitor monitor_;
  ErrorLog errors_;
  LostStatements lost_;
  // Last: its handler (this) is whole before it can call it.
  std::unique_ptr<StatementPipeline> driver_;

  bool ready_ = false;  // set up: calls may be sent
  bool closing_ = false;
  bool closed_ = false;
  bool flush_scheduled_ = false;
  StatementsInFlight in_flight_;
  SavePlanner::Round round_;        // reused
  std::vector<PendingCall> retry_;  // reused

  using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                  boost::asio::io_context::executor_type>;
  Timer deadline_timer_;  // the earliest deadline of a queued or sent call, or a stall
  Timer check_timer_;     // the next durability check
  Clock::time_point deadline_armed_ = Clock::time_point::max();
  std::function<void()> on_closed_;
};

}  // namespace attempts::db
