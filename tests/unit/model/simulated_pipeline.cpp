#include "model/simulated_pipeline.hpp"

#include <cstring>

namespace attempts::db::model {

bool SimulatedPipeline::send(const EncodedStatement& statement) {
  if (phase_ != Phase::open) return false;
  ReceivedStatement received;
  received.name = statement.name;
  for (int i = 0; i < statement.count; ++i) {
    const char* value = statement.values[static_cast<std::size_t>(i)];
    if (value == nullptr) {
      received.params.emplace_back(std::nullopt);
    } else if (statement.formats[static_cast<std::size_t>(i)] == 1) {
      received.params.emplace_back(std::string(
          value, static_cast<std::size_t>(statement.lengths[static_cast<std::size_t>(i)])));
    } else {
      received.params.emplace_back(std::string(value));
    }
  }
  // The codec's buffer is reused for the next statement: the copy is what was sent.
  unflushed_.push_back(std::move(received));
  return true;
}

bool SimulatedPipeline::send_query(const char* text) {
  if (phase_ != Phase::open) return false;
  unflushed_.push_back({"", text, {}});
  return true;
}

bool SimulatedPipeline::send_setup(std::span<const char* const>, std::span<const char* const>,
                                   std::span<const std::span<const unsigned>>, const char*,
                                   std::span<const char* const> setup_values) {
  if (phase_ != Phase::open) return false;
  ReceivedStatement setup{"setup", "", {}};
  for (const char* value : setup_values) {
    setup.params.emplace_back(value ? std::optional<std::string>(value) : std::nullopt);
  }
  unflushed_.push_back(std::move(setup));
  return true;
}

void SimulatedPipeline::flush() {
  if (phase_ != Phase::open || backend_ == nullptr) return;
  for (auto& statement : unflushed_) backend_->received.push_back(std::move(statement));
  unflushed_.clear();
}

void SimulatedPipeline::connect(bool reachable) {
  if (!may_connect()) return;
  if (!reachable) return connect_failed("could not connect to server: the server is down");
  backend_ = &database_.open_backend();
  phase_ = Phase::open;
  unflushed_.clear();
  handler_.on_connected();
  flush();  // the setup, as the driver flushes once connected
}

void SimulatedPipeline::deliver(std::size_t count) {
  handling_ = true;
  for (std::size_t i = 0; i < count && has_replies() && !deferred_failure_; ++i) {
    Reply reply = std::move(backend_->replies.front());
    backend_->replies.pop_front();
    for (const auto& result : reply.results) handler_.on_result(*result);
    if (reply.error) handler_.on_error(*reply.error);
    handler_.on_statement_finished();
  }
  handling_ = false;
  if (deferred_failure_) {
    const auto failure = std::move(*deferred_failure_);
    deferred_failure_.reset();
    return give_up(failure.first, failure.second);
  }
  if (phase_ != Phase::open) return;
  flush();  // what the handler sent meanwhile, as the driver flushes after reading
  handler_.on_results_handled();
}

void SimulatedPipeline::lose(Loss how) {
  if (!may_lose()) return;
  switch (how) {
    case Loss::partition:
      return give_up("connection to server lost: timed out", false);
    case Loss::crash:
      backend_->alive = false;
      backend_->received.clear();
      break;
    case Loss::fatal: {
      // What it ran is read first; the FATAL comes in place of the next statement's result.
      handling_ = true;
      while (!backend_->replies.empty()) {
        Reply reply = std::move(backend_->replies.front());
        backend_->replies.pop_front();
        for (const auto& result : reply.results) handler_.on_result(*result);
        if (reply.error) handler_.on_error(*reply.error);
        handler_.on_statement_finished();
      }
      if (!backend_->received.empty() || !unflushed_.empty()) {
        handler_.on_error({"terminating connection due to administrator command", false, true});
      }
      handling_ = false;
      deferred_failure_.reset();
      backend_->alive = false;
      backend_->received.clear();
      break;
    }
  }
  backend_->replies.clear();
  backend_ = nullptr;
  unflushed_.clear();
  set_up_ = false;
  phase_ = Phase::connecting;
  handler_.on_lost("server closed the connection unexpectedly");
}

void SimulatedPipeline::fail(std::string_view why, bool, bool connecting) {
  if (handling_) {
    if (!deferred_failure_) deferred_failure_ = std::make_pair(std::string(why), connecting);
    return;
  }
  give_up(std::string(why), connecting);
}

void SimulatedPipeline::give_up(const std::string& why, bool connecting) {
  if (phase_ == Phase::closed || phase_ == Phase::waiting) return;
  if (phase_ == Phase::connecting || connecting || !set_up_) return connect_failed(why);
  leave_backend();
  set_up_ = false;
  phase_ = Phase::connecting;  // replaced at once
  handler_.on_lost(why);
}

void SimulatedPipeline::connect_failed(const std::string& why) {
  ++failed_connects_;
  set_up_ = false;
  end_backend();  // a session that was never set up ran nothing of anyone's
  if (phase_ == Phase::closed) return;
  phase_ = Phase::waiting;
  handler_.on_connect_failed(why);
}

void SimulatedPipeline::leave_backend() {
  if (backend_ == nullptr) return;
  backend_->replies.clear();
  if (backend_->received.empty()) {
    backend_->alive = false;
  } else {
    backend_->orphan = true;
    backend_->orphan_until_tick =
        database_.tick() + statement_timeout_ticks_ * static_cast<int>(backend_->received.size());
  }
  backend_ = nullptr;
  unflushed_.clear();
}

void SimulatedPipeline::close() {
  phase_ = Phase::closed;
  end_backend();
}

void SimulatedPipeline::end_backend() {
  if (backend_ != nullptr) {
    backend_->alive = false;
    backend_->received.clear();
    backend_->replies.clear();
    backend_ = nullptr;
  }
  unflushed_.clear();
}

}  // namespace attempts::db::model
