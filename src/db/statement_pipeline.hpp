#pragma once

#include <libpq-fe.h>

#include <span>
#include <string_view>

#include "statement_codec.hpp"

namespace attempts::db {

// What a pool connection (PgConnection) needs of its link to one PostgreSQL server: statements
// out, each with its sync (so each is its own transaction), and what came back handed to a
// Handler in the order the statements were sent. PipelineDriver is the one on libpq; the model
// tests put a simulated database behind this interface and drive the real PgConnection.
//
// The contract both keep: the handler is only ever called from the connection's event loop;
// fail() while results are being handed over is acted on once they have been (the handler
// never sees on_lost() from inside on_result()); after on_lost() or on_connect_failed() the
// pipeline reconnects by itself (at once after a loss, after a backoff after a failed connect)
// until close().
class StatementPipeline;

// What a StatementPipeline tells its connection, on the connection's event loop.
class PipelineHandler {
 public:
  // Connected, in pipeline mode: time to send the session setup.
  virtual void on_connected() = 0;
  // The connection could not be made (or set up); the pipeline retries after a backoff.
  virtual void on_connect_failed(std::string_view why) = 0;
  // A result with rows (or none) of the oldest statement not yet finished.
  virtual void on_result(const PGresult& result) = 0;
  // The oldest statement not yet finished failed: it, or its commit, rolls back.
  virtual void on_error(const StatementError& error) = 0;
  // The oldest statement's sync: it has finished (committed, or rolled back on error).
  virtual void on_statement_finished() = 0;
  // The connection failed in use; the pipeline reconnects at once.
  virtual void on_lost(std::string_view why) = 0;
  // Results were read and handled: time to send what waits.
  virtual void on_results_handled() = 0;

 protected:
  ~PipelineHandler() = default;
};

class StatementPipeline {
 public:
  using Handler = PipelineHandler;

  virtual ~StatementPipeline() = default;

  // Starts connecting on the loop.
  virtual void start() = 0;
  // The session is set up: the connect timeout stops, and the next failure starts the backoff
  // afresh.
  virtual void set_up() = 0;
  virtual bool open() const = 0;
  // Not connected and not trying to be right now: calls would only wait for the backoff.
  virtual bool down() const = 0;
  // Connection attempts that failed since the last session was set up.
  virtual unsigned failed_connects() const = 0;

  // Sends a statement with its sync; false if it was refused (nothing of it will run, and the
  // connection is failed, at once or after the results being handled).
  virtual bool send(const EncodedStatement& statement) = 0;
  virtual bool send_query(const char* text) = 0;
  // Sends the prepared statements and the setup query of a new session, with one sync.
  virtual bool send_setup(std::span<const char* const> names, std::span<const char* const> texts,
                          std::span<const std::span<const unsigned>> types, const char* setup_query,
                          std::span<const char* const> setup_values) = 0;
  // Sends what was queued, waiting for the socket when it is full.
  virtual void flush() = 0;

  // Gives the connection up: `connecting` (a setup that failed) counts as a failed connect,
  // retried after a backoff; otherwise it was lost in use, and is replaced at once. With
  // `cancel`, the server is asked to cancel what runs (it may be stalled). Deferred while
  // results are being handled.
  virtual void fail(std::string_view why, bool cancel = false, bool connecting = false) = 0;
  // Closes for good: no reconnect.
  virtual void close() = 0;
};

}  // namespace attempts::db
