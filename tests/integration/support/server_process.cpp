#include "support/server_process.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "support/http_client.hpp"
#include "support/postgres.hpp"

namespace attempts::integration {
namespace {

// Settings the server would otherwise pick up from the environment it inherits.
constexpr const char* kServerEnvironment[] = {
    "LISTEN",
    "DATABASE_URL",
    "THREADS",
    "POOL_SIZE",
    "BODY_LIMIT",
    "LOG_LEVEL",
    "MAX_BATCH",
    "QUEUE_CAPACITY",
    "QUEUE_BYTES",
    "PIPELINE_DEPTH",
    "MAX_CONNECTIONS",
    "IDLE_TIMEOUT",
    "REQUEST_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "LOG_FORMAT",
    "ACCESS_LOG",
    "REUSE_PORT",
    "CONFIG",
    "AUTH",
    "JWKS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY",
    "TOKEN_CACHE_SIZE",
    "DURABILITY",
    "JWT_STUDENT_CLAIM",
    "CITUS",
    "CITUS_ENTRY",
    "CORS_ORIGIN",
};

constexpr int kStartAttempts = 3;  // a free port can be taken before the server binds it
constexpr std::size_t kPrintedLogBytes = 64 * 1024;

// What each sanitizer prints when it finds an error. UBSan's "runtime error:" line comes before
// its summary, hence the context kept before a match.
constexpr std::string_view kSanitizerMarkers[] = {
    "WARNING: ThreadSanitizer:",
    "ERROR: AddressSanitizer:",
    "ERROR: LeakSanitizer:",
    "SUMMARY: UndefinedBehaviorSanitizer:",
};
constexpr std::size_t kReportContextBefore = 2 * 1024;
constexpr std::size_t kReportBytes = 16 * 1024;

bool contains_ignoring_case(std::string text, std::string_view needle) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text.find(needle) != std::string::npos;
}

bool healthz_answers_ok(std::uint16_t port) {
  try {
    HttpClient client(port, std::chrono::milliseconds(1000));
    return client.request(get_request("/healthz")).status == 200;
  } catch (const HttpError&) {
    return false;
  }
}

}  // namespace

std::string server_binary() {
  return ATTEMPTS_SERVER_BINARY;
}

std::uint16_t pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot find a free port: " + error);
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

ServerProcess::ServerProcess(ServerSettings settings)
    : settings_(std::move(settings)), dir_("attempts-server"), log_path_(dir_.file("server.log")) {
  if (settings_.database_url.empty()) settings_.database_url = TestEnvironment::get().database_url;
  for (int attempt = 1;; ++attempt) {
    const auto failure = start_once();
    if (!failure) return;
    kill_if_running();
    // Someone may have taken the port between pick_free_port() and the server's bind.
    const bool port_taken = contains_ignoring_case(log(), "address already in use");
    if (!port_taken || attempt == kStartAttempts) throw std::runtime_error(*failure);
  }
}

std::optional<std::string> ServerProcess::start_once() {
  port_ = pick_free_port();
  SpawnOptions options;
  if (settings_.open_file_limit) {
    const std::string limit = std::to_string(*settings_.open_file_limit);
    options.argv = {"prlimit", "--nofile=" + limit + ":" + limit, "--"};
  }
  options.argv.insert(options.argv.end(),
                      {server_binary(), "--listen", "127.0.0.1:" + std::to_string(port_)});
  // Tests of the HTTP and database behaviour talk to the server without tokens; those about
  // authentication say --auth jwt (or --jwks) themselves.
  const bool auth_chosen =
      std::any_of(settings_.flags.begin(), settings_.flags.end(), [](const std::string& flag) {
        return flag.rfind("--auth", 0) == 0 || flag.rfind("--jwks", 0) == 0;
      });
  if (!auth_chosen) options.argv.insert(options.argv.end(), {"--auth", "none"});
  options.argv.insert(options.argv.end(), settings_.flags.begin(), settings_.flags.end());
  for (const char* name : kServerEnvironment) options.env.emplace_back(name, std::nullopt);
  options.env.emplace_back("DATABASE_URL", settings_.database_url);
  for (const auto& [name, value] : settings_.env) options.env.emplace_back(name, value);
  options.output_path = log_path_;
  options.kill_with_parent = true;
  options.blocked_signals = settings_.signals_while_starting;
  pid_ = spawn_process(options);
  exit_status_.reset();
  for (const int early : settings_.signals_while_starting) ::kill(pid_, early);

  const auto deadline = std::chrono::steady_clock::now() + settings_.ready_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (healthz_answers_ok(port_)) return std::nullopt;
    if (!running()) {
      return "attempts-server exited during start-up (" + exit_status_->describe() +
             "); its log:\n" + log();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "attempts-server did not answer GET /healthz with 200 within " +
         std::to_string(settings_.ready_timeout.count()) + " ms; its log:\n" + log();
}

ServerProcess::~ServerProcess() {
  kill_if_running();
  if (const auto report = sanitizer_report()) {
    ADD_FAILURE() << "attempts-server (pid " << pid_ << ") reported a sanitizer error:\n"
                  << *report;
  }
  if (::testing::Test::HasFailure()) print_log(std::cerr);
}

void ServerProcess::kill_if_running() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  exit_status_ = attempts::integration::wait_for_exit(pid_, std::chrono::seconds(10));
}

bool ServerProcess::running() {
  if (exit_status_) return false;
  exit_status_ = poll_exit(pid_);
  return !exit_status_;
}

void ServerProcess::signal(int signal) {
  if (running()) ::kill(pid_, signal);
}

std::optional<ExitStatus> ServerProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  if (!exit_status_) exit_status_ = attempts::integration::wait_for_exit(pid_, timeout);
  return exit_status_;
}

std::optional<ExitStatus> ServerProcess::terminate(int signal, std::chrono::milliseconds timeout) {
  this->signal(signal);
  return wait_for_exit(timeout);
}

std::string ServerProcess::log() const {
  return read_file(log_path_);
}

std::size_t ServerProcess::rss_kib() const {
  const std::string status = read_file("/proc/" + std::to_string(pid_) + "/status");
  const auto at = status.find("VmRSS:");
  if (at == std::string::npos) return 0;
  return std::strtoull(status.c_str() + at + 6, nullptr, 10);
}

std::optional<std::string> ServerProcess::sanitizer_report() const {
  const std::string text = log();
  std::size_t first = std::string::npos;
  for (const auto marker : kSanitizerMarkers) first = std::min(first, text.find(marker));
  if (first == std::string::npos) return std::nullopt;
  std::size_t begin = first > kReportContextBefore ? first - kReportContextBefore : 0;
  if (const auto line = text.find('\n', begin); begin > 0 && line < first) begin = line + 1;
  return text.substr(begin, kReportBytes);
}

void ServerProcess::print_log(std::ostream& out) const {
  std::string text = log();
  if (text.size() > kPrintedLogBytes) {
    text = "[...]\n" + text.substr(text.size() - kPrintedLogBytes);
  }
  out << "---- attempts-server log (pid " << pid_ << ", port " << port_ << ") ----\n"
      << text << "---- end of attempts-server log ----\n";
}

}  // namespace attempts::integration
