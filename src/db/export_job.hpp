#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "attempts/domain/attempt_exports.hpp"

namespace attempts::db {

// One export between the event loop that asked for it and the staff worker that reads it: what
// the worker needs of the call (copied, so that it never touches the call), the hand-over of
// chunks, and the one way it ends early (abandon()). The loop's side is used on its thread
// only; the worker's side on the worker's thread only; they meet under one mutex, once per
// chunk.
//
// Three buffers take turns, so a long export allocates nothing once they have grown: the
// worker fills its own, hands it over (deliver), and the loop swaps it with the call's chunk,
// which it has written, and which the worker fills next.
class ExportJob : public std::enable_shared_from_this<ExportJob> {
 public:
  using Clock = std::chrono::steady_clock;

  // `on_over` runs on the loop when the last step reaches the call (not after abandon()).
  ExportJob(boost::asio::io_context& loop, ExportCall& call, ExportCompletion& completion,
            std::function<void(ExportCall&)> on_over);

  // The call's inputs, for the worker.
  const ExamId exam_id;
  const std::optional<std::string> staff_id;
  const ExportFilter filter;
  const ExportEncoder& encoder;
  const Clock::time_point first_deadline;

  // --- the loop's side
  // The chunk handed over was written: the worker may read the next rows.
  void request_next();
  // Ends the export: the worker stops at its next poll or wake-up, and no completion reaches
  // the call after this returns.
  void abandon();

  // From any thread (the reader stopping): the worker ends the export as abandon() makes it,
  // but the loop is not told; its sessions are gone by then.
  void interrupt();

  // --- the worker's side
  bool abandoned() const { return abandoned_.load(std::memory_order_acquire); }
  // Waits until the loop asks for the next rows (true) or abandons the export, or `timeout`
  // passes (false).
  bool wait_for_demand(std::chrono::milliseconds timeout);
  // Waits until `until` unless the export is abandoned first (false then): the pace of
  // --export-rate.
  bool pause_until(Clock::time_point until);
  // The buffer to encode the next chunk into (emptied, its capacity kept).
  std::string& buffer();
  // Hands the buffer to the loop, which completes the call with `outcome` unless abandoned.
  void deliver(ExportOutcome outcome, std::size_t rows, std::string problem = {});

 private:
  void complete_on_loop(ExportOutcome outcome, std::size_t rows, std::string problem);

  boost::asio::io_context& loop_;
  // The loop's alone.
  ExportCall* const call_;
  ExportCompletion* const completion_;
  bool abandoned_on_loop_ = false;
  const std::function<void(ExportCall&)> on_over_;

  std::atomic<bool> abandoned_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool wanted_ = false;  // under mutex_: the loop asked for rows not delivered yet
  std::string handoff_;  // under mutex_: between deliver() and the loop's swap
  std::string filling_;  // the worker's
};

}  // namespace attempts::db
