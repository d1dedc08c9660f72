#pragma once

#include <libpq-fe.h>
#include <spdlog/common.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "attempts/db/pg_pool.hpp"
#include "attempts/db/shard_map.hpp"
#include "attempts/db/write_plan.hpp"
#include "pqxx_connection.hpp"

namespace attempts::db {

// One pool connection, owned by one event loop and driven only from it: connecting
// (PQconnectStart/PQconnectPoll), then statements in libpq's pipeline mode, each followed by a
// sync so that each is its own transaction. The socket is watched by the loop; nothing blocks.
//
// Calls wait in a bounded queue; when fewer than pipeline_depth statements are in flight, all
// consecutive writes waiting go out as few UPDATEs as possible (coalesced, see WritePlan), and
// other calls one statement each, in the order they were made. Every call is answered by its
// deadline whatever the server does: a call still queued then is answered `unavailable`, one
// already sent `unknown` (a write) or `unavailable` (a read). A statement with no reply for
// stall_timeout drops the connection (with a cancel request to the server), never to be reused.
//
// The one place that decides what a lost connection means for the calls it held is
// fail_connection(): queued calls were never sent (`unavailable`), sent writes are `unknown`.
//
// On Citus (attempts distributed, detected at connect or required by --citus on), each batch is
// grouped by shard with the shard map read at connect, so every UPDATE is routed to one worker;
// the map is read again every few seconds and after a write fails with a transient error (a
// deadlock, a serialization failure), whose writes are then sent again: they were rolled back.
class PgConnection {
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
  // Refuses new calls; once nothing is queued or in flight, closes and runs `on_closed`.
  void close_when_idle(std::function<void()> on_closed);

 private:
  enum class Phase { waiting_to_connect, connecting, setting_up, ready, closed };

  struct Waiter {
    StoreCall* call = nullptr;  // null once answered
    StoreCompletion* completion = nullptr;
    std::uint8_t retries = 0;   // times sent again after a transient failure
  };

  // A statement sent and not yet finished (its sync not yet seen).
  struct Statement {
    // setup, check and shard_map are the connection's own (no calls wait on them).
    enum class Kind { setup, save, why_not_saved, single, check, shard_map };
    Kind kind = Kind::single;
    Clock::time_point sent_at;
    bool result_seen = false;
    // Whether it changes data, so that a lost reply leaves its outcome unknown.
    bool writes = false;
    // An error result: the statement or its commit failed, so it rolled back.
    std::optional<std::string> error;
    // The error was FATAL: the backend is ending, and nothing sent after this ran.
    bool fatal = false;
    // The error is transient (see is_transient): a rolled-back write may be sent again.
    bool transient = false;
    // setup: whether attempts is a Citus distributed table (unknown if not asked).
    std::optional<bool> citus;
    // shard_map: the map read, or why it cannot be used.
    std::optional<ShardMap> map;
    std::optional<std::string> map_problem;
    // save and why_not_saved: one row per attempt, ids ascending, with what was sent for it.
    std::vector<AttemptId> ids;
    std::vector<std::optional<StudentId>> row_student;
    std::vector<std::optional<Revision>> row_revision;
    // The calls this statement answers; for save and why_not_saved, with their row and whether
    // theirs are the answers sent for it.
    std::vector<Waiter> waiters;
    std::vector<std::uint32_t> waiter_row;
    std::vector<bool> waiter_sent;
    // What the result said, kept until the sync confirms the commit.
    std::vector<char> applied;                  // save: per row, updated
    std::vector<StoreOutcome> row_outcome;      // why_not_saved: per row
    std::vector<std::string> row_detail;        // why_not_saved: submitted_at or deadline
    std::vector<Revision> row_stored_revision;  // why_not_saved: for stale revisions
    StoreOutcome single_outcome = StoreOutcome::unavailable;

    void clear();
  };

  // Connecting.
  void connect();
  void continue_connecting(PostgresPollingStatusType status);
  void on_connected();
  void send_setup();
  void connect_failed(std::string_view why);
  Clock::duration next_backoff();

  // Sending.
  void schedule_flush();
  void flush();
  void send_writes(std::size_t count);
  void send_save_statement(const WritePlan::Statement& rows, std::uint32_t statement_index);
  void send_single(Waiter waiter);
  void send_why_not_saved(Statement& saved, const std::vector<char>& applied);
  void push_in_flight(std::unique_ptr<Statement> statement);
  void flush_output();

  // Receiving.
  void wait_readable();
  void on_readable(boost::system::error_code ec);
  void process_results();
  void on_ready();
  void on_result(Statement& statement, PGresult* result);
  void read_save_result(Statement& statement, PGresult* result);
  void read_why_not_saved_result(Statement& statement, PGresult* result);
  void read_single_result(Statement& statement, PGresult* result);
  void on_committed(Statement& statement);
  void retry_writes(Statement& statement);
  bool written_later(AttemptId id) const;
  void finish_save(Statement& statement);
  void finish_why_not_saved(Statement& statement);

  // Citus: whether attempts is distributed, and where each attempt's shard is.
  void after_setup(std::optional<bool> citus);
  void send_shard_map_read();
  void read_shard_map_result(Statement& statement, PGresult* result);
  void install_shard_map(Statement& statement);
  std::uint32_t group_of(AttemptId id) const;

  // Why calls are refused although the database answers, if they are.
  const std::optional<std::string>& refusal() const;

  // Durability: the table's persistence must fit the mode.
  void check_persistence(const char* relpersistence);
  void schedule_durability_check();
  void send_durability_check();

  // Deadlines and failure.
  void watch_deadline(Clock::time_point at);
  void on_deadline_timer(boost::system::error_code ec);
  void fail_connection(std::string_view why, bool cancel_statements);
  // Empty on success, else why the socket cannot be watched.
  std::string watch_socket();
  void close_socket();
  void answer(Waiter& waiter, StoreOutcome outcome);
  void answer_statement(Statement& statement, StoreOutcome outcome);
  void maybe_finish_closing();
  void publish_gauges();
  std::unique_ptr<Statement> new_statement(Statement::Kind kind);
  void log_error(spdlog::level::level_enum level, std::string_view what,
                 const std::string& message, std::string_view cause);

  boost::asio::io_context& loop_;
  const std::size_t index_;
  const std::string conninfo_;
  const PgPoolOptions& options_;
  PoolMetrics& metrics_;
  ConnectionGauges& gauges_;

  Phase phase_ = Phase::waiting_to_connect;
  bool closing_ = false;
  // Why calls are refused although the database answers: the table's persistence does not fit
  // the durability mode. Checked at connect, by every ping and every few seconds.
  std::optional<std::string> misconfigured_;
  // Citus: the shard map while attempts is distributed (batches are grouped by its shards), and
  // why calls are refused if --citus on finds no distributed table or the map is unusable.
  std::optional<ShardMap> shard_map_;
  std::optional<std::string> citus_problem_;
  bool shard_map_reading_ = false;
  std::unique_ptr<PqxxConnection> connection_;
  PGconn* pg_ = nullptr;  // connection_'s libpq handle, while there is one
  boost::asio::posix::basic_stream_descriptor<boost::asio::io_context::executor_type> socket_;
  // Socket waits started before the socket was last released are stale when they complete.
  std::uint64_t socket_generation_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool flush_scheduled_ = false;
  // Set while results are being processed, acted on once they are (see process_results).
  std::optional<std::string> pending_failure_;

  std::deque<Waiter> queue_;
  std::size_t queued_bytes_ = 0;
  std::deque<std::unique_ptr<Statement>> in_flight_;
  std::size_t request_statements_in_flight_ = 0;  // counted against pipeline_depth
  std::vector<std::unique_ptr<Statement>> spare_statements_;

  // Reused for every batch, so the hot path allocates nothing once warmed up.
  std::vector<Waiter> batch_;
  std::vector<WriteKey> write_keys_;
  WritePlan plan_;
  std::string params_;
  std::vector<std::string_view> answers_;

  using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                  boost::asio::io_context::executor_type>;
  Timer connect_timer_;   // backoff before connecting, then the connect timeout
  Timer deadline_timer_;  // the earliest deadline of a queued or sent call, or a stall
  Timer check_timer_;     // the next durability check
  Clock::time_point deadline_armed_ = Clock::time_point::max();

  unsigned failed_connects_ = 0;
  std::minstd_rand jitter_;
  std::function<void()> on_closed_;

  struct LoggedError {
    Clock::time_point logged_at;
    unsigned not_logged = 0;
  };
  std::unordered_map<std::string, LoggedError> recent_errors_;
};

}  // namespace attempts::db
