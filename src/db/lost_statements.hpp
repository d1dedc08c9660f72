#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "attempts/domain/attempt_id.hpp"

namespace attempts::db {

// A PostgreSQL backend, as a session setup reads it: its process id, and its start time (in
// microseconds since the epoch), which together name it even after the id is reused.
struct BackendIdentity {
  int pid = 0;
  std::int64_t started_us = 0;

  bool operator==(const BackendIdentity&) const = default;
};

// What a session that was lost in use may still do. When the connection breaks without the
// server saying why (a network that failed, a server stalled past the stall timeout), its
// backend may go on running the statements it had received, and commit them: a write answered
// `unknown` may still apply after its client's next write. So the attempts of those statements
// stay in flight (claimed, and held back in this connection's planner) until either
// - the next session on the same server has seen that backend gone: its setup looks for it by
//   pid and start time and, if it still runs, terminates it and waits for it to exit; or
// - the server's own statement_timeout has ended whatever it could still run (a fallback for a
//   server that cannot be reached again: a Citus node taken out, say).
// A server that said why (FATAL: terminated, shutting down) ran nothing after it: nothing is
// held then. No I/O: the connection sends the setup and says what it read.
class LostStatements {
 public:
  using Clock = std::chrono::steady_clock;

  // A session was set up on `backend` (nullopt: the server did not say).
  void set_up(std::optional<BackendIdentity> backend) { current_ = backend; }

  // The session was lost; `attempt` had a statement in flight that may still apply. Each call
  // holds one statement of the attempt (as many as the planner counts).
  void hold(AttemptId attempt) { held_.push_back(attempt); }
  // Done holding for this loss: the attempts are held until the next session sees the backend
  // gone, or `until`.
  void lost(Clock::time_point until);

  // The backend the next session's setup must see gone first, if anything is held.
  const std::optional<BackendIdentity>& to_end() const { return to_end_; }
  // When the hold ends by itself; time_point::max() if nothing is held.
  Clock::time_point until() const { return held_.empty() ? Clock::time_point::max() : until_; }
  bool holding() const { return !held_.empty(); }

  // The backend is gone (or the hold's time is up): the held attempts, to be finished by the
  // caller, once each as held. Nothing is held afterwards.
  std::vector<AttemptId> release();

 private:
  std::optional<BackendIdentity> current_;
  std::optional<BackendIdentity> to_end_;
  std::vector<AttemptId> held_;
  Clock::time_point until_ = Clock::time_point::min();
};

}  // namespace attempts::db
