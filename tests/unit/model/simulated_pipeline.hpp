#pragma once

// A StatementPipeline whose server is the SimulatedDatabase: what PipelineDriver does with
// libpq, done in steps the model test chooses (connect, hand over what was run, lose the
// connection), so that PgConnection runs unchanged on top of it. It keeps the pipeline's
// contract (db/statement_pipeline.hpp): results in the order sent, a failure asked for while
// results are handed over acted on after them, a reconnect after every loss.

#include <string>
#include <vector>

#include "db/statement_pipeline.hpp"
#include "model/simulated_database.hpp"

namespace attempts::db::model {

// How a connection is lost.
enum class Loss {
  crash,      // the server process dies: nothing it received runs any more
  partition,  // the network fails: the backend runs what it received, then is left alone
  fatal,      // the server ends the session and says so (FATAL) after the results it has run
};

class SimulatedPipeline final : public StatementPipeline {
 public:
  SimulatedPipeline(SimulatedDatabase& database, PipelineHandler& handler,
                    int statement_timeout_ticks)
      : database_(database), handler_(handler), statement_timeout_ticks_(statement_timeout_ticks) {}

  // StatementPipeline
  void start() override { phase_ = Phase::connecting; }
  void set_up() override {
    set_up_ = true;
    failed_connects_ = 0;
  }
  bool open() const override { return phase_ == Phase::open; }
  bool down() const override { return phase_ == Phase::waiting || phase_ == Phase::closed; }
  unsigned failed_connects() const override { return failed_connects_; }
  bool send(const EncodedStatement& statement) override;
  bool send_query(const char* text) override;
  bool send_setup(std::span<const char* const> names, std::span<const char* const> texts,
                  std::span<const std::span<const unsigned>> types, const char* setup_query,
                  std::span<const char* const> setup_values) override;
  void flush() override;
  void fail(std::string_view why, bool cancel = false, bool connecting = false) override;
  void close() override;

  // Steps the world takes.
  // Waiting for a backoff, or connecting: the connection is made (or fails, when `reachable`
  // is false).
  bool may_connect() const { return phase_ == Phase::waiting || phase_ == Phase::connecting; }
  void connect(bool reachable);
  // What the backend has run waits to be read.
  bool has_replies() const { return open() && backend_ != nullptr && !backend_->replies.empty(); }
  // Reads up to `count` replies and hands them to the connection.
  void deliver(std::size_t count);
  // The connection is lost this way.
  bool may_lose() const { return open() && set_up_; }
  void lose(Loss how);
  // The backend of the session in use, if any.
  Backend* backend() const { return backend_; }

 private:
  enum class Phase { waiting, connecting, open, closed };

  void give_up(const std::string& why, bool connecting);
  void connect_failed(const std::string& why);
  // The client is gone; the backend runs on what it received, within its statement_timeout.
  void leave_backend();
  // The session ends with the client: the backend runs nothing more.
  void end_backend();

  SimulatedDatabase& database_;
  PipelineHandler& handler_;
  const int statement_timeout_ticks_;
  Phase phase_ = Phase::waiting;
  bool set_up_ = false;
  unsigned failed_connects_ = 0;
  Backend* backend_ = nullptr;
  std::vector<ReceivedStatement> unflushed_;
  bool handling_ = false;
  std::optional<std::pair<std::string, bool>> deferred_failure_;  // why, connecting
};

}  // namespace attempts::db::model
