#include "staff_connection.hpp"

#include <poll.h>

#include <algorithm>
#include <vector>

#include "sql.hpp"
#include "statement_codec.hpp"

namespace attempts::db {
namespace {

// How often a wait on the server looks whether it should stop: the most a cancelled export
// keeps its query running before the cancel request is sent.
constexpr std::chrono::milliseconds kPollSlice{20};
// A server that does not answer a cancel within this is given up on: the connection is closed.
constexpr std::chrono::milliseconds kCancelGrace{5000};

int milliseconds_until(StaffConnection::Clock::time_point until) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(until - StaffConnection::Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, kPollSlice.count()));
}

}  // namespace

StaffConnection::StaffConnection(std::string conninfo, std::chrono::milliseconds statement_timeout,
                                 std::chrono::milliseconds connect_timeout)
    : conninfo_(std::move(conninfo)),
      statement_timeout_(statement_timeout),
      connect_timeout_(connect_timeout) {}

StaffConnection::~StaffConnection() {
  close();
}

bool StaffConnection::is_open() const {
  return connection_ && PQstatus(connection_->native()) == CONNECTION_OK;
}

void StaffConnection::close() {
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
  cancel_ = nullptr;
  connection_.reset();  // libpqxx closes the handle
}

bool StaffConnection::open(std::string& error) {
  if (is_open()) return true;
  close();
  const auto deadline = Clock::now() + connect_timeout_;
  try {
    connection_ = std::make_unique<PqxxConnection>(conninfo_);
  } catch (const std::exception& failure) {
    error = failure.what();
    return false;
  }
  PGconn* pg = connection_->native();
  // PQconnectPoll's state machine, each wait on the socket bounded by the connect timeout.
  for (PostgresPollingStatusType status = PGRES_POLLING_WRITING;;) {
    if (status == PGRES_POLLING_OK) break;
    if (status == PGRES_POLLING_FAILED || Clock::now() >= deadline) {
      error = status == PGRES_POLLING_FAILED ? error_message(pg) : "connect timed out";
      close();
      return false;
    }
    pollfd descriptor{PQsocket(pg),
                      static_cast<short>(status == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (::poll(&descriptor, 1, static_cast<int>(std::max<std::int64_t>(left, 0))) < 0 &&
        errno != EINTR) {
      error = "poll failed while connecting";
      close();
      return false;
    }
    if (descriptor.revents != 0) status = PQconnectPoll(pg);
  }
  cancel_ = PQgetCancel(pg);
  const std::string timeout = std::to_string(statement_timeout_.count());
  const std::optional<std::string> parameters[] = {timeout};
  const PgResultPtr setup =
      run(sql::kStaffSessionSetup, parameters, {}, Clock::now() + connect_timeout_, error);
  if (!setup || PQresultStatus(setup.get()) != PGRES_TUPLES_OK) {
    if (setup) error = error_message(*setup);
    close();
    return false;
  }
  return true;
}

bool StaffConnection::wait_readable(Clock::time_point until) const {
  pollfd descriptor{PQsocket(connection_->native()), POLLIN, 0};
  return ::poll(&descriptor, 1, milliseconds_until(until)) >= 0 || errno == EINTR;
}

PgResultPtr StaffConnection::run(const char* sql,
                                 std::span<const std::optional<std::string>> parameters,
                                 const StopRequested& stop, Clock::time_point deadline,
                                 std::string& error) {
  if (!connection_) {
    error = "not connected";
    return nullptr;
  }
  PGconn* pg = connection_->native();
  std::vector<const char*> values;
  values.reserve(parameters.size());
  for (const auto& parameter : parameters)
    values.push_back(parameter ? parameter->c_str() : nullptr);
  if (PQsendQueryParams(pg, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                        nullptr, 0) != 1) {
    error = error_message(pg);
    close();
    return nullptr;
  }
  bool cancelled = false;
  Clock::time_point give_up = Clock::time_point::max();
  while (PQisBusy(pg) != 0) {
    if (!cancelled && ((stop && stop()) || Clock::now() >= deadline)) {
      // Sent from this thread, which owns the connection: one path for a client gone, a
      // shutdown and a deadline. The statement then ends with an error, read below.
      char message[256];
      PQcancel(cancel_, message, sizeof message);
      cancelled = true;
      give_up = Clock::now() + kCancelGrace;
    }
    if (Clock::now() >= give_up) {
      error = "the server did not answer a cancel request";
      close();
      return nullptr;
    }
    if (!wait_readable(cancelled ? give_up : deadline) || PQconsumeInput(pg) != 1) {
      error = error_message(pg);
      close();
      return nullptr;
    }
  }
  // One statement, one result (then the null that ends it); an error wins over what came first.
  PgResultPtr last;
  while (PGresult* result = PQgetResult(pg)) {
    if (!last || PQresultStatus(result) == PGRES_FATAL_ERROR) {
      last.reset(result);
    } else {
      PQclear(result);
    }
  }
  if (!last || PQstatus(pg) != CONNECTION_OK) {
    error = error_message(pg);
    close();
    return nullptr;
  }
  return last;
}

bool StaffConnection::run_simple(const char* sql, std::string& error) {
  const PgResultPtr result = run(sql, {}, {}, Clock::now() + statement_timeout_ * 2, error);
  if (!result) return false;
  const auto status = PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return true;
  error = error_message(*result);
  return false;
}

}  // namespace attempts::db
