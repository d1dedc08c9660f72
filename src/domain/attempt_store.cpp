#include "attempts/domain/attempt_store.hpp"

namespace attempts {
namespace {

// Buffers up to this size are kept for the next request; larger ones are freed.
constexpr std::size_t kKeptBuffer = 1024;

void clear_keeping_small(std::string& text) {
  if (text.capacity() > kKeptBuffer) {
    std::string().swap(text);
  } else {
    text.clear();
  }
}

}  // namespace

void AttemptRecord::release_memory() {
  clear_keeping_small(answers_json);
  started_at.clear();
  deadline.reset();
  updated_at.reset();
  submitted_at.reset();
}

void StoreCall::reset() {
  kind = Kind::ping;
  attempt_id = 0;
  exam_id = 0;
  student.reset();
  staff_id.reset();
  revision.reset();
  clear_keeping_small(answers_json);
  answered = 0;
  clear_keeping_small(idempotency_key);
  deadline = {};
  outcome = StoreOutcome::unavailable;
  problem.clear();
  degraded.clear();
  record.release_memory();
  record.id = record.exam_id = record.student_id = record.revision = 0;
  history_query = {};
  // A page of history can be large: its entries are not kept for the next request.
  if (history.capacity() > 0) std::vector<HistoryEntry>().swap(history);
  saves = 0;
}

}  // namespace attempts
