#pragma once

// Child processes for the integration tests: spawn, wait with a deadline, collect the output.
// Only ever signals or reaps the pids it spawned itself.

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace attempts::integration {

// How a child ended: exited with a code, or killed by a signal.
struct ExitStatus {
  bool exited = false;
  int code = -1;   // meaningful when exited
  int signal = 0;  // meaningful when !exited

  static ExitStatus from_wait_status(int status);
  static ExitStatus exit_code(int code) { return {true, code, 0}; }

  bool operator==(const ExitStatus&) const = default;
  std::string describe() const;
};

std::ostream& operator<<(std::ostream& out, const ExitStatus& status);

struct SpawnOptions {
  // argv[0] is the program: an absolute path, or a name looked up in PATH.
  std::vector<std::string> argv;
  // Environment changes on top of ours: a value sets the variable, nullopt removes it.
  std::vector<std::pair<std::string, std::optional<std::string>>> env;
  // stdout and stderr go to this file (created or truncated); empty means /dev/null.
  std::string output_path;
  // Directory the child starts in; empty keeps ours.
  std::string working_directory;
  // The child gets SIGKILL when the spawning thread ends, so a test binary that dies (or is
  // killed by ctest's timeout) never leaves a child behind.
  bool kill_with_parent = false;
  // Signals blocked in the child as it starts the program (the mask survives exec): sent to it
  // early, they stay pending until the program unblocks them itself.
  std::vector<int> blocked_signals;
};

// Starts the child; throws std::runtime_error if it cannot be forked. A program that cannot be
// executed makes the child exit with code 127.
pid_t spawn_process(const SpawnOptions& options);

// The child's status if it has ended (reaping it), nullopt if still running. Never blocks.
std::optional<ExitStatus> poll_exit(pid_t pid);

// Waits up to `timeout` for the child to end (reaping it); nullopt if it is still running.
std::optional<ExitStatus> wait_for_exit(pid_t pid, std::chrono::milliseconds timeout);

struct CommandResult {
  ExitStatus status;
  std::string output;  // stdout and stderr together
};

// Runs a command to completion with its output captured. If it is still running after
// `timeout` it is killed (SIGKILL) and std::runtime_error is thrown.
CommandResult run_command(SpawnOptions options, std::chrono::milliseconds timeout);

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "attempts-itest");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Raises this process's open-file soft limit to its hard limit (tests that open thousands of
// connections); returns the limit now in force.
rlim_t raise_open_file_limit();

// The whole file, or "" if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace attempts::integration
