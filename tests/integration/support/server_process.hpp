#pragma once

// The attempts-server under test, as a child process on a free loopback port.

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "support/subprocess.hpp"

namespace attempts::integration {

// Path of the built attempts-server (CMake passes it in).
std::string server_binary();

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed).
std::uint16_t pick_free_port();

struct ServerSettings {
  // DATABASE_URL for the server; empty means the test environment's database.
  std::string database_url;
  // More flags, e.g. {"--body-limit", "1024"}. --listen is always set by ServerProcess, and
  // --auth none unless the flags choose --auth or --jwks.
  std::vector<std::string> flags;
  // How long start-up may take until GET /healthz answers 200.
  std::chrono::milliseconds ready_timeout{10000};
  // More environment variables for the server, e.g. {"ASAN_OPTIONS", "..."}.
  std::vector<std::pair<std::string, std::string>> env;
  // RLIMIT_NOFILE (soft and hard) for the server, set with prlimit(1) as it starts.
  std::optional<unsigned> open_file_limit;
  // Signals sent to the server the moment it is spawned, blocked until it unblocks them itself:
  // they arrive while it starts, whatever the timing.
  std::vector<int> signals_while_starting;

  static ServerSettings with_flags(std::vector<std::string> flags) {
    ServerSettings settings;
    settings.flags = std::move(flags);
    return settings;
  }
};

// Starts attempts-server on 127.0.0.1:<free port> with stdout/stderr in a log file, and waits
// until GET /healthz answers 200 (throws std::runtime_error with the log if it does not). On
// destruction a still-running server is killed (SIGKILL); a sanitizer report in its log fails
// the current test (a sanitized server may be killed before it could exit with an error code);
// if the current test failed, the log is printed. Only ever signals the pid it spawned.
class ServerProcess {
 public:
  explicit ServerProcess(ServerSettings settings = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // Whether the process has not exited yet.
  bool running();
  // Sends `signal` to the server (if it is still running).
  void signal(int signal);
  // Waits up to `timeout` for the server to exit; nullopt if it is still running.
  std::optional<ExitStatus> wait_for_exit(std::chrono::milliseconds timeout);
  // signal() then wait_for_exit().
  std::optional<ExitStatus> terminate(int signal = SIGTERM,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

  std::string log() const;
  // The server's resident set size now (VmRSS), in KiB; 0 if it cannot be read.
  std::size_t rss_kib() const;
  void print_log(std::ostream& out) const;
  // The first report of ThreadSanitizer, AddressSanitizer, LeakSanitizer or
  // UndefinedBehaviorSanitizer in the log, from a little before it; nullopt if there is none.
  std::optional<std::string> sanitizer_report() const;

 private:
  // Spawns the server and waits until it is healthy; what went wrong, or nullopt.
  std::optional<std::string> start_once();
  void kill_if_running();

  ServerSettings settings_;
  TempDir dir_;
  std::string log_path_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_status_;
};

}  // namespace attempts::integration
