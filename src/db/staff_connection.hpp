#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "pqxx_connection.hpp"

namespace attempts::db {

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

// One connection of the staff reader, used by one worker thread at a time with libpq's
// blocking calls, except that every wait on the server is cut into short polls: a statement is
// cancelled (PQcancel, from this same thread) as soon as the caller says to stop or its
// deadline passes, so a client that leaves an export ends the query within a poll. Opened by
// libpqxx like the pool's connections (PqxxConnection), read-only for the session
// (default_transaction_read_only): staff never write.
class StaffConnection {
 public:
  using Clock = std::chrono::steady_clock;
  // Asked between polls: true ends the statement in progress.
  using StopRequested = std::function<bool()>;

  StaffConnection(std::string conninfo, std::chrono::milliseconds statement_timeout,
                  std::chrono::milliseconds connect_timeout);
  ~StaffConnection();
  StaffConnection(const StaffConnection&) = delete;
  StaffConnection& operator=(const StaffConnection&) = delete;

  bool is_open() const;
  // Connects (again) unless open, and sets the session up (UTC, statement timeout, read only).
  // False with `error` when it cannot within the connect timeout.
  bool open(std::string& error);
  void close();

  // Runs `sql` with text parameters (nullopt: NULL) and returns its result, whose status says
  // whether it succeeded (a cancelled or timed-out statement's result is an error). nullptr with
  // `error` when the connection broke or did not answer a cancel; it is closed then.
  PgResultPtr run(const char* sql, std::span<const std::optional<std::string>> parameters,
                  const StopRequested& stop, Clock::time_point deadline, std::string& error);
  // run() without parameters, stop or deadline beyond the statement timeout: BEGIN, COMMIT...
  // True if the statement succeeded.
  bool run_simple(const char* sql, std::string& error);

 private:
  // Waits until the socket is readable or `until`; false on a poll error.
  bool wait_readable(Clock::time_point until) const;

  const std::string conninfo_;
  const std::chrono::milliseconds statement_timeout_;
  const std::chrono::milliseconds connect_timeout_;
  std::unique_ptr<PqxxConnection> connection_;
  PGcancel* cancel_ = nullptr;  // made once per session, on the worker's thread
};

}  // namespace attempts::db
