#include "export_job.hpp"

#include <boost/asio/post.hpp>

namespace attempts::db {

ExportJob::ExportJob(boost::asio::io_context& loop, ExportCall& call, ExportCompletion& completion,
                     std::function<void(ExportCall&)> on_over)
    : exam_id(call.exam_id),
      staff_id(call.staff_id),
      filter(call.filter),
      encoder(*call.encoder),
      first_deadline(call.deadline),
      loop_(loop),
      call_(&call),
      completion_(&completion),
      on_over_(std::move(on_over)) {}

void ExportJob::request_next() {
  {
    const std::lock_guard lock(mutex_);
    wanted_ = true;
  }
  wake_.notify_one();
}

void ExportJob::abandon() {
  abandoned_on_loop_ = true;
  interrupt();
}

void ExportJob::interrupt() {
  {
    const std::lock_guard lock(mutex_);
    abandoned_.store(true, std::memory_order_release);
  }
  wake_.notify_one();
}

bool ExportJob::wait_for_demand(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, timeout, [this] { return wanted_ || abandoned(); });
  if (!wanted_ || abandoned()) return false;
  wanted_ = false;
  return true;
}

bool ExportJob::pause_until(Clock::time_point until) {
  std::unique_lock lock(mutex_);
  wake_.wait_until(lock, until, [this] { return abandoned(); });
  return !abandoned();
}

std::string& ExportJob::buffer() {
  filling_.clear();
  return filling_;
}

void ExportJob::deliver(ExportOutcome outcome, std::size_t rows, std::string problem) {
  {
    const std::lock_guard lock(mutex_);
    std::swap(handoff_, filling_);
  }
  boost::asio::post(
      loop_, [self = shared_from_this(), outcome, rows, problem = std::move(problem)]() mutable {
        self->complete_on_loop(outcome, rows, std::move(problem));
      });
}

void ExportJob::complete_on_loop(ExportOutcome outcome, std::size_t rows, std::string problem) {
  if (abandoned_on_loop_) return;  // cancelled meanwhile: the call may be gone
  {
    const std::lock_guard lock(mutex_);
    std::swap(call_->chunk, handoff_);
  }
  call_->outcome = outcome;
  call_->rows = rows;
  call_->problem = std::move(problem);
  if (outcome != ExportOutcome::rows) {
    abandoned_on_loop_ = true;
    if (on_over_) on_over_(*call_);
  }
  completion_->on_export_step(*call_);
}

}  // namespace attempts::db
