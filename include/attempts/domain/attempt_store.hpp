#pragma once

#include <functional>
#include <optional>
#include <string>

#include "attempts/domain/attempt_id.hpp"

namespace attempts {

// `unavailable`: the database could not be reached or the statement failed. `overloaded`: the
// request was refused before it was queued. In both cases nothing is acknowledged and the client
// may retry; a full replace is idempotent.
enum class SaveOutcome {
  saved,              // committed
  not_found,          // no attempt has this id; nothing changed
  already_submitted,  // the attempt is submitted and read-only; nothing changed
  unavailable,
  overloaded,
};

struct AttemptRecord {
  AttemptId id = 0;
  std::int64_t exam_id = 0;
  std::string answers_json;                 // the stored jsonb, as PostgreSQL prints it
  std::optional<std::string> updated_at;    // ISO 8601, UTC
  std::optional<std::string> submitted_at;  // ISO 8601, UTC
};

enum class LoadOutcome { found, not_found, unavailable, overloaded };

struct LoadResult {
  LoadOutcome outcome = LoadOutcome::unavailable;
  AttemptRecord record;  // meaningful only when outcome == found
};

// The persistence port the HTTP layer talks to. Every call returns at once; the callback runs
// exactly once, on a thread of the store's choosing (possibly the caller's), and must not block.
// Calls for the same attempt id complete in the order they were made.
class AttemptStore {
 public:
  using SaveCallback = std::function<void(SaveOutcome)>;
  using LoadCallback = std::function<void(LoadResult)>;
  using ReadyCallback = std::function<void(bool ready)>;

  virtual ~AttemptStore() = default;

  // Replaces the attempt's answers with `answers_json` (a validated answers document) and sets
  // updated_at to now().
  virtual void save_answers(AttemptId id, std::string answers_json, SaveCallback done) = 0;
  virtual void load_attempt(AttemptId id, LoadCallback done) = 0;
  // Whether the database answers a trivial query right now.
  virtual void check_ready(ReadyCallback done) = 0;
};

}  // namespace attempts
