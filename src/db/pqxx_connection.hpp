#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>

namespace attempts::db {

// One connection of the pool, owned by libpqxx: it opens and closes the libpq handle through a
// connection policy of ours, and hands the handle out, so the connection's event loop can drive
// it with libpq's non-blocking calls. libpqxx's own query API is never used on it: libpqxx 6.4
// blocks in every call, which would stall every request on the loop.
class PqxxConnection {
 public:
  // Starts connecting (PQconnectStart) and returns at once; the caller completes the
  // connection with PQconnectPoll. Throws std::runtime_error if libpq cannot even start.
  explicit PqxxConnection(const std::string& conninfo);
  ~PqxxConnection();

  PqxxConnection(const PqxxConnection&) = delete;
  PqxxConnection& operator=(const PqxxConnection&) = delete;

  PGconn* native() const { return handle_; }

 private:
  struct Connection;
  std::unique_ptr<Connection> connection_;
  PGconn* handle_ = nullptr;
};

// The connection string the pool opens: the operator's (a URI or key=value form) with defaults
// for what a pool connection needs and the operator did not set: TCP keepalives and a TCP user
// timeout so a dead or black-holed server is noticed by the kernel, and an application_name.
// Throws std::invalid_argument with libpq's message if the operator's string does not parse.
// With `node` ("host:port", an IPv6 host in brackets, as ShardRange::node names it): the same
// user, password, database and options, but that host and port (a Citus node), in place of
// whatever hosts, host addresses and ports the operator's string names.
std::string pool_conninfo(const std::string& database_url, std::string_view node = {});

}  // namespace attempts::db
