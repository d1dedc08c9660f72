#include "pqxx_connection.hpp"

#include <pqxx/connection>
#include <stdexcept>
#include <utility>
#include <vector>

namespace attempts::db {
namespace {

// libpqxx calls this policy to open and close the libpq handle. It only starts the
// connection, and reports itself never ready, so libpqxx never waits for it; the handle it
// started is passed back to PqxxConnection through `started`.
class StartOnlyPolicy : public pqxx::connectionpolicy {
 public:
  using connectionpolicy::connectionpolicy;

  handle do_startconnect(handle orig) override {
    if (orig != nullptr) return orig;
    orig = PQconnectStart(options().c_str());
    if (orig == nullptr) throw std::bad_alloc();
    started = orig;
    return orig;
  }
  bool is_ready(handle) const noexcept override { return false; }

  // The one libpqxx constructs and the caller's constructor reads; one thread at a time.
  static thread_local PGconn* started;
};

thread_local PGconn* StartOnlyPolicy::started = nullptr;

}  // namespace

struct PqxxConnection::Connection : pqxx::basic_connection_base<StartOnlyPolicy> {
  using basic_connection_base::basic_connection_base;
};

PqxxConnection::PqxxConnection(const std::string& conninfo) {
  StartOnlyPolicy::started = nullptr;
  connection_ = std::make_unique<Connection>(conninfo);
  handle_ = std::exchange(StartOnlyPolicy::started, nullptr);
  if (handle_ == nullptr) throw std::runtime_error("libpqxx did not start a connection");
}

// libpqxx's destructor closes the handle (PQfinish).
PqxxConnection::~PqxxConnection() = default;

std::string pool_conninfo(const std::string& database_url, std::string_view node) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(database_url.c_str(), &error);
  if (parsed == nullptr) {
    std::string message = error ? error : "out of memory";
    PQfreemem(error);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw std::invalid_argument(message);
  }
  std::vector<std::pair<std::string, std::string>> settings;
  for (const PQconninfoOption* option = parsed; option->keyword != nullptr; ++option) {
    if (option->val != nullptr) settings.emplace_back(option->keyword, option->val);
  }
  PQconninfoFree(parsed);
  if (!node.empty()) {
    const auto colon = node.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == node.size()) {
      throw std::invalid_argument("not host:port: " + std::string(node));
    }
    std::string_view host = node.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    std::erase_if(settings, [](const auto& setting) {
      return setting.first == "host" || setting.first == "hostaddr" || setting.first == "port";
    });
    settings.emplace_back("host", std::string(host));
    settings.emplace_back("port", std::string(node.substr(colon + 1)));
  }

  const auto set_default = [&](const char* keyword, const char* value) {
    for (const auto& [key, existing] : settings) {
      if (key == keyword) return;
    }
    settings.emplace_back(keyword, value);
  };
  set_default("application_name", "attempts-server");
  // A peer that stops answering (a hung host, a network black hole) is declared dead by the
  // kernel after about 20 s of silence instead of hours; while a statement is outstanding,
  // unacknowledged data fails the connection after 10 s. Ignored for Unix sockets.
  set_default("keepalives", "1");
  set_default("keepalives_idle", "10");
  set_default("keepalives_interval", "3");
  set_default("keepalives_count", "3");
  set_default("tcp_user_timeout", "10000");

  std::string conninfo;
  for (const auto& [key, value] : settings) {
    if (!conninfo.empty()) conninfo.push_back(' ');
    conninfo.append(key).append("='");
    for (const char c : value) {
      if (c == '\'' || c == '\\') conninfo.push_back('\\');
      conninfo.push_back(c);
    }
    conninfo.push_back('\'');
  }
  return conninfo;
}

}  // namespace attempts::db
