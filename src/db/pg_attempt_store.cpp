#include "attempts/db/pg_attempt_store.hpp"

#include <spdlog/spdlog.h>

#include "connection_worker.hpp"

namespace attempts::db {
namespace {

// Adds libpq's connect_timeout unless the operator set one; works for both URI and
// keyword/value connection strings.
std::string with_connect_timeout(const std::string& url, std::chrono::seconds timeout) {
  if (url.find("connect_timeout") != std::string::npos) return url;
  const std::string value = std::to_string(timeout.count());
  const bool is_uri = url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  if (!is_uri) return url + (url.empty() ? "" : " ") + "connect_timeout=" + value;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=" + value;
}

// Queues the operation, or answers it at once: overloaded when the queue is full, unavailable
// when the pool is stopping.
void submit(ConnectionWorker& worker, Operation operation) {
  if (const auto result = worker.submit(operation); result != PushResult::queued) {
    fail_operation(operation,
                   result == PushResult::full ? SaveOutcome::overloaded : SaveOutcome::unavailable);
  }
}

}  // namespace

PgAttemptStore::PgAttemptStore(PgPoolOptions options) : options_(std::move(options)) {
  const std::string conninfo =
      with_connect_timeout(options_.database_url, options_.connect_timeout);
  workers_.reserve(options_.pool_size);
  for (std::size_t i = 0; i < options_.pool_size; ++i) {
    workers_.push_back(std::make_unique<ConnectionWorker>(i, conninfo, options_, metrics_));
  }
}

PgAttemptStore::~PgAttemptStore() {
  stop();
}

std::vector<ConnectionState> PgAttemptStore::connection_states() const {
  std::vector<ConnectionState> states;
  states.reserve(workers_.size());
  for (const auto& worker : workers_) states.push_back(worker->state());
  return states;
}

void PgAttemptStore::stop() {
  for (auto& worker : workers_) worker->stop();
}

ConnectionWorker& PgAttemptStore::worker_for(AttemptId id) {
  return *workers_[static_cast<std::size_t>(id) % workers_.size()];
}

void PgAttemptStore::save_answers(AttemptId id, std::string answers_json, SaveCallback done) {
  submit(worker_for(id), SaveOperation{id, std::move(answers_json), std::move(done)});
}

void PgAttemptStore::load_attempt(AttemptId id, LoadCallback done) {
  submit(worker_for(id), LoadOperation{id, std::move(done)});
}

void PgAttemptStore::check_ready(ReadyCallback done) {
  // Round robin, so over a few probes every connection is exercised.
  const std::size_t index = next_ping_worker_.fetch_add(1, std::memory_order_relaxed);
  submit(*workers_[index % workers_.size()], PingOperation{std::move(done)});
}

}  // namespace attempts::db
