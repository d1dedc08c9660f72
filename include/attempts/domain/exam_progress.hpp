#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "attempts/domain/attempt_store.hpp"

namespace attempts {

// Microseconds since the Unix epoch: how the progress stream holds the database's times.
using UnixMicros = std::int64_t;

// What a proctor sees of one attempt: its small columns only, never its answers.
struct ProgressAttempt {
  AttemptId id = 0;
  StudentId student_id = 0;
  std::int32_t answered = 0;  // questions with an answer (attempts.answered)
  UnixMicros started_at = 0;
  std::optional<UnixMicros> updated_at;  // the last save; none yet
  std::optional<UnixMicros> submitted_at;
  std::optional<UnixMicros> deadline;

  friend bool operator==(const ProgressAttempt&, const ProgressAttempt&) = default;
};

// How a read of an exam's progress ended.
enum class ProgressReadOutcome {
  done,         // `attempts` and `at` are set
  not_found,    // authorize only: no such exam, or the staff member is not one of its staff
  unavailable,  // the database could not do it (down, timed out, too many jobs waiting)
};

struct ProgressReadResult {
  ProgressReadOutcome outcome = ProgressReadOutcome::unavailable;
  // The database's now() at the read: the rows are as of this instant.
  UnixMicros at = 0;
  std::vector<ProgressAttempt> attempts;
  std::string problem;  // with `unavailable`, for the log
};

// The port through which the progress stream reads the database (the db layer implements it on
// the staff connections, never the write pool's). Completions run on a thread of the
// implementation's, not the caller's: post them where they belong.
class ProgressReads {
 public:
  using Completion = std::function<void(ProgressReadResult)>;

  virtual ~ProgressReads() = default;

  // Whether the exam exists and `staff_id` is one of its staff (nullopt: anyone, authentication
  // off): `done` (no rows) or `not_found`.
  virtual void authorize(ExamId exam, std::optional<std::string> staff_id,
                         std::chrono::steady_clock::time_point deadline, Completion done) = 0;
  // The exam's attempts started, saved or submitted after `since` (nullopt: all of them), with
  // the database's now().
  virtual void changed_since(ExamId exam, std::optional<UnixMicros> since,
                             std::chrono::steady_clock::time_point deadline, Completion done) = 0;
};

}  // namespace attempts
