#pragma once

#include <cstdint>

#include "attempts/domain/attempt_store.hpp"

namespace attempts::db {

// A store call that a connection holds, queued or sent, until it is answered.
struct PendingCall {
  StoreCall* call = nullptr;  // null once answered (or once moved elsewhere)
  StoreCompletion* completion = nullptr;
  std::uint8_t retries = 0;  // times sent again after its statement rolled back

  bool answered() const { return call == nullptr; }
};

// Where calls are answered. The connection completes them (and counts outcomes); the model
// tests record them. After answer() the call belongs to its caller again: nothing of it may be
// read or written.
class CallAnswerer {
 public:
  // Sets the outcome, completes the call and marks `pending` answered. Does nothing if it
  // already is.
  virtual void answer(PendingCall& pending, StoreOutcome outcome) = 0;

 protected:
  ~CallAnswerer() = default;
};

}  // namespace attempts::db
