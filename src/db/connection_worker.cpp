#include "connection_worker.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <pqxx/pqxx>

#include "attempts/db/pg_array.hpp"
#include "attempts/db/write_batch.hpp"
#include "sql.hpp"

namespace attempts::db {

void fail_operation(Operation& operation, SaveOutcome why) {
  const bool overloaded = why == SaveOutcome::overloaded;
  std::visit(
      [&](auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, SaveOperation>) {
          op.done(why);
        } else if constexpr (std::is_same_v<T, LoadOperation>) {
          op.done(LoadResult{overloaded ? LoadOutcome::overloaded : LoadOutcome::unavailable, {}});
        } else {
          op.done(false);
        }
      },
      operation);
}

ConnectionWorker::ConnectionWorker(std::size_t index, std::string conninfo,
                                   const PgPoolOptions& options, PoolMetrics& metrics)
    : index_(index),
      conninfo_(std::move(conninfo)),
      options_(options),
      metrics_(metrics),
      queue_(options.queue_capacity),
      jitter_(static_cast<std::minstd_rand::result_type>(std::random_device{}() + index)),
      thread_([this] { run(); }) {}

ConnectionWorker::~ConnectionWorker() {
  stop();
}

void ConnectionWorker::stop() {
  queue_.stop();
  if (thread_.joinable()) thread_.join();
}

void ConnectionWorker::run() {
  std::vector<Operation> batch;
  batch.reserve(options_.max_batch);
  for (;;) {
    // Disconnected, the worker also wakes when the next connection attempt is due.
    const auto wake_at = connection_ ? std::nullopt : std::optional(next_connect_at_);
    if (!queue_.wait_take(batch, options_.max_batch, wake_at)) break;
    if (!connection_ && Clock::now() >= next_connect_at_) connect();
    if (batch.empty()) continue;

    if (connection_) check_connection_alive();
    if (connection_) {
      execute(batch);
    } else {
      // Answered at once: a request never waits for a database that is down.
      for (auto& operation : batch) fail_operation(operation, SaveOutcome::unavailable);
    }
    batch.clear();
  }
  connection_.reset();
  connected_.store(false, std::memory_order_relaxed);
}

void ConnectionWorker::connect() {
  metrics_.connect_attempts.add();
  try {
    auto connection = std::make_unique<pqxx::connection>(conninfo_);
    connection->prepare(sql::kSaveOneName, sql::kSaveOne);
    connection->prepare(sql::kSaveBatchName, sql::kSaveBatch);
    connection->prepare(sql::kExistingIdsName, sql::kExistingIds);
    connection->prepare(sql::kLoadAttemptName, sql::kLoadAttempt);
    connection->prepare(sql::kPingName, sql::kPing);
    pqxx::nontransaction setup(*connection);
    setup.exec("SET TIME ZONE 'UTC'");
    setup.exec("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()));
    setup.commit();
    if (failed_connects_ > 0) {
      spdlog::info("db connection {}: connected after {} failed attempts", index_,
                   failed_connects_);
    }
    connection_ = std::move(connection);
    connected_.store(true, std::memory_order_relaxed);
    failed_connects_ = 0;
  } catch (const std::exception& error) {
    metrics_.connect_failures.add();
    // The first failure of an outage is a warning; the retries that follow would only repeat it.
    if (failed_connects_ == 0) {
      spdlog::warn("db connection {}: cannot connect: {}", index_, error.what());
    } else {
      spdlog::debug("db connection {}: retry {} failed: {}", index_, failed_connects_,
                    error.what());
    }
    ++failed_connects_;
    next_connect_at_ = Clock::now() + next_backoff();
  }
}

ConnectionWorker::Clock::duration ConnectionWorker::next_backoff() {
  // Exponential with "equal jitter": half the delay is fixed, half random, so the pool's
  // connections spread their retries instead of hitting a restarting server together.
  const auto cap = std::chrono::duration_cast<Clock::duration>(options_.reconnect_max_delay);
  auto delay = std::chrono::duration_cast<Clock::duration>(options_.reconnect_initial_delay);
  for (unsigned i = 1; i < failed_connects_ && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  std::uniform_int_distribution<Clock::rep> spread(0, delay.count() / 2);
  return delay - delay / 2 + Clock::duration(spread(jitter_));
}

void ConnectionWorker::check_connection_alive() {
  // A server restart closes idle connections: the backend sends its last error, then the stream
  // ends. An idle connection has nothing to read, so one poll() per batch is the whole cost
  // normally; when there is something, reading it (the message, then the end of the stream)
  // makes libpqxx throw, and the batch goes out on a fresh connection instead of failing 503.
  const auto readable = [](int socket) {
    pollfd waiting{socket, POLLIN, 0};
    return ::poll(&waiting, 1, 0) > 0 && (waiting.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  };
  try {
    for (int reads = 0; reads < 4 && readable(connection_->sock()); ++reads) {
      connection_->get_notifs();
    }
  } catch (const std::exception& error) {
    metrics_.database_errors.add();
    drop_connection(error);
    connect();
  }
}

void ConnectionWorker::log_error(spdlog::level::level_enum level, std::string_view what,
                                 const std::string& message, std::string_view cause) {
  constexpr auto kInterval = std::chrono::seconds(10);
  constexpr std::size_t kMaxKinds = 64;  // distinct errors remembered; bounded memory
  // The same error is what went wrong (saving, loading, lost) plus the first line of its cause;
  // counts and ids in the message do not make it a different one.
  std::string key(what);
  key.append("|").append(cause.substr(0, cause.find('\n')));
  if (recent_errors_.size() >= kMaxKinds && !recent_errors_.contains(key)) recent_errors_.clear();
  auto& seen = recent_errors_[key];
  const auto now = Clock::now();
  if (seen.logged_at != Clock::time_point{} && now - seen.logged_at < kInterval) {
    ++seen.not_logged;
    return;
  }
  if (seen.not_logged > 0) {
    spdlog::log(level, "db connection {}: {} ({} similar errors not logged in the last {}s)",
                index_, message, seen.not_logged, kInterval.count());
  } else {
    spdlog::log(level, "db connection {}: {}", index_, message);
  }
  seen = {now, 0};
}

void ConnectionWorker::drop_connection(const std::exception& cause) {
  log_error(spdlog::level::warn, "lost", std::string("lost: ") + cause.what(), cause.what());
  connection_.reset();
  connected_.store(false, std::memory_order_relaxed);
  // A single broken connection (a restarted backend, say) is replaced at once; backoff starts
  // only if that fails too.
  next_connect_at_ = Clock::now();
}

void ConnectionWorker::execute(std::span<Operation> operations) {
  std::size_t i = 0;
  while (i < operations.size()) {
    if (!connection_) {
      fail_operation(operations[i++], SaveOutcome::unavailable);
      continue;
    }
    if (std::holds_alternative<SaveOperation>(operations[i])) {
      // Consecutive writes go out as one statement; a read ends the run so that it sees them.
      std::size_t end = i + 1;
      while (end < operations.size() && std::holds_alternative<SaveOperation>(operations[end])) {
        ++end;
      }
      save(operations.subspan(i, end - i));
      i = end;
    } else if (auto* load_op = std::get_if<LoadOperation>(&operations[i])) {
      load(*load_op);
      ++i;
    } else {
      ping(std::get<PingOperation>(operations[i]));
      ++i;
    }
  }
}

void ConnectionWorker::save(std::span<Operation> writes) {
  std::vector<AttemptId> request_ids;
  request_ids.reserve(writes.size());
  for (auto& write : writes) request_ids.push_back(std::get<SaveOperation>(write).id);
  const CoalescedWrites plan = coalesce_writes(request_ids);

  // Nothing is answered `saved` unless the statement that saved it returned without error.
  std::vector<SaveOutcome> outcome(plan.ids.size(), SaveOutcome::unavailable);
  try {
    pqxx::nontransaction tx(*connection_);
    pqxx::result updated;
    if (plan.ids.size() == 1) {
      updated = tx.exec_prepared(sql::kSaveOneName, plan.ids[0],
                                 std::get<SaveOperation>(writes[plan.winner[0]]).answers_json);
    } else {
      std::vector<std::string_view> answers;
      answers.reserve(plan.ids.size());
      for (const std::size_t winner : plan.winner) {
        answers.emplace_back(std::get<SaveOperation>(writes[winner]).answers_json);
      }
      updated = tx.exec_prepared(sql::kSaveBatchName, to_pg_array(plan.ids), to_pg_array(answers));
    }
    std::fill(outcome.begin(), outcome.end(), SaveOutcome::not_found);
    for (const auto& row : updated) {
      const auto id = row[0].as<AttemptId>();
      const auto at = std::lower_bound(plan.ids.begin(), plan.ids.end(), id);
      outcome[static_cast<std::size_t>(at - plan.ids.begin())] = SaveOutcome::saved;
    }
    if (updated.size() < plan.ids.size()) {
      std::vector<AttemptId> untouched;
      for (std::size_t k = 0; k < plan.ids.size(); ++k) {
        if (outcome[k] != SaveOutcome::saved) untouched.push_back(plan.ids[k]);
      }
      try {
        const auto existing = tx.exec_prepared(sql::kExistingIdsName, to_pg_array(untouched));
        for (const auto& row : existing) {
          const auto id = row[0].as<AttemptId>();
          const auto at = std::lower_bound(plan.ids.begin(), plan.ids.end(), id);
          outcome[static_cast<std::size_t>(at - plan.ids.begin())] = SaveOutcome::already_submitted;
        }
      } catch (const std::exception&) {
        // The saved rows are committed and still answered `saved`; the others cannot be told
        // apart now.
        for (auto& o : outcome) {
          if (o != SaveOutcome::saved) o = SaveOutcome::unavailable;
        }
        throw;
      }
    }
    tx.commit();
    metrics_.batch_rows.observe(static_cast<double>(plan.ids.size()));
    metrics_.batches_committed.add();
    metrics_.rows_committed.add(updated.size());
  } catch (const std::exception& error) {
    metrics_.database_errors.add();
    if (!connection_->is_open()) {
      drop_connection(error);
    } else {
      log_error(spdlog::level::err, "saving",
                "saving " + std::to_string(plan.ids.size()) + " attempts failed: " + error.what(),
                error.what());
    }
  }
  for (std::size_t r = 0; r < writes.size(); ++r) {
    std::get<SaveOperation>(writes[r]).done(outcome[plan.id_of_request[r]]);
  }
}

void ConnectionWorker::load(LoadOperation& operation) {
  LoadResult result;
  try {
    pqxx::nontransaction tx(*connection_);
    const auto rows = tx.exec_prepared(sql::kLoadAttemptName, operation.id);
    tx.commit();
    if (rows.empty()) {
      result.outcome = LoadOutcome::not_found;
    } else {
      const auto row = rows[0];
      result.outcome = LoadOutcome::found;
      result.record.id = row[0].as<AttemptId>();
      result.record.exam_id = row[1].as<std::int64_t>();
      result.record.answers_json = row[2].as<std::string>();
      if (!row[3].is_null()) result.record.updated_at = row[3].as<std::string>();
      if (!row[4].is_null()) result.record.submitted_at = row[4].as<std::string>();
    }
  } catch (const std::exception& error) {
    metrics_.database_errors.add();
    result.outcome = LoadOutcome::unavailable;
    if (!connection_->is_open()) {
      drop_connection(error);
    } else {
      log_error(spdlog::level::err, "loading",
                "loading attempt " + std::to_string(operation.id) + " failed: " + error.what(),
                error.what());
    }
  }
  operation.done(std::move(result));
}

void ConnectionWorker::ping(PingOperation& operation) {
  bool ready = false;
  try {
    pqxx::nontransaction tx(*connection_);
    tx.exec_prepared(sql::kPingName);
    tx.commit();
    ready = true;
  } catch (const std::exception& error) {
    metrics_.database_errors.add();
    if (!connection_->is_open()) drop_connection(error);
  }
  operation.done(ready);
}

}  // namespace attempts::db
