#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "attempts/domain/attempt_store.hpp"

namespace attempts {

// Which of an exam's attempts an export streams.
struct ExportFilter {
  // Only submitted ones (true) or only those not submitted yet (false); none: both.
  std::optional<bool> submitted;
  // Only those saved at or after this instant (RFC 3339, checked by the caller); none: all.
  std::optional<std::string> updated_since;

  friend bool operator==(const ExportFilter&, const ExportFilter&) = default;
};

// One exported attempt, as the store read it: views into the store's buffers, valid only during
// ExportEncoder::row. Timestamps are ISO 8601 in UTC, as in AttemptRecord.
struct ExportedAttempt {
  AttemptId id = 0;
  StudentId student_id = 0;
  std::string_view answers_json;  // the stored jsonb as PostgreSQL prints it
  Revision revision = 0;
  std::string_view started_at;
  std::optional<std::string_view> updated_at;
  std::optional<std::string_view> submitted_at;
  std::optional<std::string_view> deadline;
  std::int64_t saves = 0;  // the answer history's count of saves (0 without history)
};

// Turns exported attempts into the bytes of a representation (NDJSON, CSV), chunk by chunk. The
// store calls it on a thread of its own, so that the event loops spend nothing on an export but
// its writes: an encoder keeps no state and must be safe to call from any thread.
class ExportEncoder {
 public:
  virtual ~ExportEncoder() = default;
  // What comes before the first row (a CSV header line); appended to the first chunk.
  virtual void begin(std::string& out) const = 0;
  virtual void row(const ExportedAttempt& attempt, std::string& out) const = 0;
};

// How the step an export was asked for ended.
enum class ExportOutcome {
  rows,         // `chunk` holds the next rows; more follow: call next() once it is written
  finished,     // `chunk` holds the last rows (maybe none); the export is over
  not_found,    // first step only: no such exam, or the staff member is not one of its staff
  busy,         // first step only: as many exports run as the store allows; nothing was read
  unavailable,  // the database could not do it (down, timed out); the export is over
};

// One export, owned by the caller (a connection) from open() until the export is over or
// cancelled. The caller fills the inputs; each completion hands it the next chunk.
struct ExportCall {
  // Inputs.
  ExamId exam_id = 0;
  // The staff member asking; nullopt only when authentication is off (anyone may export).
  std::optional<std::string> staff_id;
  ExportFilter filter;
  const ExportEncoder* encoder = nullptr;  // must outlive the export
  // The first chunk comes by then, or the call completes `unavailable`.
  std::chrono::steady_clock::time_point deadline;

  // Outputs of the step that completed. `chunk`'s buffer goes back and forth between the
  // caller and the store, so a long export reuses two buffers instead of allocating per chunk.
  ExportOutcome outcome = ExportOutcome::unavailable;
  std::string chunk;
  std::size_t rows = 0;  // in `chunk`
  std::string problem;   // with `unavailable`: what went wrong, for the log
};

// Told when a step of an export is complete: on the event loop that called open(), exactly once
// per open() or next(), never after cancel().
class ExportCompletion {
 public:
  virtual void on_export_step(ExportCall& call) = 0;

 protected:
  ~ExportCompletion() = default;
};

// The port through which the HTTP layer streams an exam's attempts, like AttemptStore for
// single calls: one instance per event loop, used only from its thread. An export reads one
// consistent snapshot of the exam (every row as of one instant) in chunks of bounded size, and
// reads the next chunk only when asked to (next()), once the previous one has been written:
// a slow reader slows only its own export, and no export holds more than a chunk or two.
class AttemptExports {
 public:
  virtual ~AttemptExports() = default;

  // Starts an export; the first completion says whether there is one (its first chunk) or why
  // not. `call` and `completion` must stay alive until the export is over or cancelled.
  virtual void open(ExportCall& call, ExportCompletion& completion) = 0;
  // After a completion with `rows`: the chunk was written, read the next one.
  virtual void next(ExportCall& call) = 0;
  // Ends the export now, whatever step it is at (the client went away, or a timeout): its
  // query ends and its connection is free for the next one. No completion follows.
  virtual void cancel(ExportCall& call) = 0;
};

}  // namespace attempts
