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
#include "attempts/db/pg_pool.hpp"
#include "attempts/db/save_batch.hpp"
#include "attempts/db/save_planner.hpp"
#include "cluster_monitor.hpp"
#include "error_log.hpp"
#include "pipeline_driver.hpp"
#include "statement_codec.hpp"

namespace attempts::db {

// One pool connection, owned by one event loop and driven only from it. It puts together the
// pieces that each do one job: calls wait in a CallQueue; the SavePlanner picks what goes out
// next (writes batched into SaveBatches, each a single UPDATE, and nothing of an attempt sent
// while a statement of it is in flight); the StatementCodec turns them into bytes and results
// back into outcomes; the PipelineDriver talks to libpq; the ClusterMonitor says whether calls
// may go (durability, Citus shard map). What it keeps itself is the list of statements in
// flight, oldest first, and what each one's end means for its callers.
//
// Every call is answered by its deadline whatever the server does: a call still queued then is
// answered `unavailable`, one already sent `unknown` (a write) or `unavailable` (a read). A
// statement with no reply for stall_timeout drops the connection (with a cancel request),
// never to be reused. The one place that decides what a lost connection means for the calls it
// held is on_lost(): queued calls were never sent (`unavailable`), sent writes are `unknown`.
class PgConnection final : PipelineDriver::Handler, CallAnswerer {
 public:
  using Clock = std::chrono::steady_clock;

  PgConnection(boost::asio::io_context& loop, std::size_t index, std::string conninfo,
               const PgPoolOptions& options, PoolMetrics& metrics, ConnectionGauges& gauges);
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
  bool unreachable() const { return !ready_ && !closed_ && driver_.failed_connects() > 0; }
  // the Citus shard map it last read, if any, and its version (ClusterMonitor).
  const ShardMap* shard_map() const { return monitor_.shard_map(); }
  std::uint64_t shard_map_version() const { return monitor_.shard_map_version(); }
  // Refuses new calls; once nothing is queued or in flight, closes and runs `on_closed`.
  void close_when_idle(std::function<void()> on_closed);

 private:
  // One statement sent and not yet finished (its sync not yet read), by what it is for.
  struct Setup {  // the session setup, right after connecting
    std::optional<bool> distributed;
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

  // PipelineDriver::Handler
  void on_connected() override;
  void on_connect_failed(std::string_view why) override;
  void on_result(const PGresult& result) override;
  void on_statement_finished() override;
  void on_lost(std::string_view why) override;
  void on_results_handled() override;
  // CallAnswerer
  void answer(PendingCall& pending, StoreOutcome outcome) override;

  // Sending.
  void schedule_flush();
  void flush();
  void send_save(std::unique_ptr<SaveBatch> batch);
  void send_why_not_saved(std::unique_ptr<SaveBatch> batch);
  void send_call(PendingCall pending);
  void send_check();
  void send_shard_map_read();
  // `request`: a save or a call, counted against the pipeline depth.
  void push(Statement statement, bool request);
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
  void on_deadline_timer(boost::system::error_code ec);
  // Answers what is in flight as a lost connection leaves it, and forgets it.
  void abandon_in_flight();
  void maybe_finish_closing();
  void publish_gauges();

  boost::asio::io_context& loop_;
  const std::size_t index_;
  const PgPoolOptions& options_;
  PoolMetrics& metrics_;
  ConnectionGauges& gauges_;

  PipelineDriver driver_;
  CallQueue queue_;
  SavePlanner planner_;
  StatementCodec codec_;
  ClusterMonitor monitor_;
  ErrorLog errors_;

  bool ready_ = false;  // set up: calls may be sent
  bool closing_ = false;
  bool closed_ = false;
  bool flush_scheduled_ = false;
  std::deque<Sent> in_flight_;
  std::size_t requests_in_flight_ = 0;  // saves and calls, counted against pipeline_depth
  SavePlanner::Round round_;            // reused
  std::vector<PendingCall> retry_;      // reused

  using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                  boost::asio::io_context::executor_type>;
  Timer deadline_timer_;  // the earliest deadline of a queued or sent call, or a stall
  Timer check_timer_;     // the next durability check
  Clock::time_point deadline_armed_ = Clock::time_point::max();
  std::function<void()> on_closed_;
};

}  // namespace attempts::db
