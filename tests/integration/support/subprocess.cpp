#include "support/subprocess.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace attempts::integration {
namespace {

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// The environment a child gets: ours, with the overrides applied.
std::vector<std::string> child_environment(
    const std::vector<std::pair<std::string, std::optional<std::string>>>& overrides) {
  std::map<std::string, std::string> variables;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string text(*entry);
    const auto equals = text.find('=');
    if (equals == std::string::npos) continue;
    variables[text.substr(0, equals)] = text.substr(equals + 1);
  }
  for (const auto& [name, value] : overrides) {
    if (value) {
      variables[name] = *value;
    } else {
      variables.erase(name);
    }
  }
  std::vector<std::string> out;
  out.reserve(variables.size());
  for (const auto& [name, value] : variables) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& text : strings) out.push_back(text.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

ExitStatus ExitStatus::from_wait_status(int status) {
  if (WIFEXITED(status)) return {true, WEXITSTATUS(status), 0};
  if (WIFSIGNALED(status)) return {false, -1, WTERMSIG(status)};
  return {};
}

std::string ExitStatus::describe() const {
  if (exited) return "exit code " + std::to_string(code);
  return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

std::ostream& operator<<(std::ostream& out, const ExitStatus& status) {
  return out << status.describe();
}

pid_t spawn_process(const SpawnOptions& options) {
  if (options.argv.empty()) throw std::invalid_argument("spawn_process: empty argv");
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> args = options.argv;
  std::vector<std::string> env = child_environment(options.env);
  std::vector<char*> argv = pointers_to(args);
  std::vector<char*> envp = pointers_to(env);
  const char* output = options.output_path.empty() ? "/dev/null" : options.output_path.c_str();
  const char* directory =
      options.working_directory.empty() ? nullptr : options.working_directory.c_str();
  const pid_t parent = getpid();
  sigset_t blocked;
  sigemptyset(&blocked);
  for (const int signal : options.blocked_signals) sigaddset(&blocked, signal);
  // Blocked in this thread across fork(), so that the child has them blocked from its first
  // instant: a signal sent right after fork() returns must not find it unprotected.
  sigset_t before;
  pthread_sigmask(SIG_BLOCK, &blocked, &before);

  const pid_t pid = fork();
  if (pid != 0) pthread_sigmask(SIG_SETMASK, &before, nullptr);
  if (pid < 0) throw std::runtime_error(errno_text("fork"));
  if (pid == 0) {
    if (options.kill_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(126);  // the parent is already gone
    }
    sigprocmask(SIG_SETMASK, &blocked, nullptr);
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    if (in > STDERR_FILENO) close(in);
    if (out > STDERR_FILENO) close(out);
    if (directory && chdir(directory) != 0) _exit(126);
    execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

std::optional<ExitStatus> poll_exit(pid_t pid) {
  int status = 0;
  pid_t result;
  do {
    result = waitpid(pid, &status, WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result < 0) throw std::runtime_error(errno_text("waitpid(" + std::to_string(pid) + ")"));
  if (result == 0) return std::nullopt;
  return ExitStatus::from_wait_status(status);
}

std::optional<ExitStatus> wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto status = poll_exit(pid)) return status;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

CommandResult run_command(SpawnOptions options, std::chrono::milliseconds timeout) {
  TempDir dir("attempts-cmd");
  options.output_path = dir.file("output.txt");
  const pid_t pid = spawn_process(options);
  const auto status = wait_for_exit(pid, timeout);
  if (!status) {
    kill(pid, SIGKILL);
    wait_for_exit(pid, std::chrono::seconds(10));
    throw std::runtime_error("'" + options.argv[0] + "' still running after " +
                             std::to_string(timeout.count()) + " ms; killed. Output:\n" +
                             read_file(options.output_path));
  }
  return {*status, read_file(options.output_path)};
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/" + prefix + ".XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error(errno_text("mkdtemp " + pattern));
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

rlim_t raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

}  // namespace attempts::integration
