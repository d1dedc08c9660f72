#include "attempts/db/history_maintenance.hpp"

#include <spdlog/spdlog.h>

#include <pqxx/pqxx>

#include "pqxx_connection.hpp"

namespace attempts::db {
namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

HistoryMaintenance::HistoryMaintenance(Options options) : options_(std::move(options)) {}

HistoryMaintenance::~HistoryMaintenance() {
  stop();
}

void HistoryMaintenance::start() {
  thread_ = std::thread([this] { run(); });
}

void HistoryMaintenance::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

HistoryMaintenance::Status HistoryMaintenance::status() const {
  const std::lock_guard lock(mutex_);
  return status_;
}

void HistoryMaintenance::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    const bool ok = maintain();
    lock.lock();
    wake_.wait_for(lock, ok ? options_.interval : options_.retry, [this] { return stopping_; });
  }
}

bool HistoryMaintenance::maintain() {
  std::int64_t ahead = -1;
  std::string error;
  try {
    pqxx::connection connection(pool_conninfo(options_.database_url));
    pqxx::nontransaction tx(connection);
    tx.exec("SET statement_timeout = '60s'");
    ahead = tx.exec_params1("SELECT answer_history_maintain($1, $2)",
                            static_cast<int>(options_.retention_days),
                            static_cast<int>(options_.weeks_ahead))[0]
                .as<std::int64_t>();
  } catch (const std::exception& failure) {
    error = failure.what();
    while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
  }
  const std::lock_guard lock(mutex_);
  ++status_.runs;
  if (!error.empty()) {
    ++status_.failures;
    // The first failure of a run of them is a warning; the next ones would only repeat it.
    if (status_.last_error.empty()) {
      spdlog::warn("answer history: creating or dropping weekly partitions failed: {}", error);
    }
    status_.last_error = error;
    return false;
  }
  if (!status_.last_error.empty()) spdlog::info("answer history: partitions maintained again");
  status_.last_error.clear();
  status_.weeks_ahead = ahead;
  status_.last_success_unix = unix_now();
  return true;
}

}  // namespace attempts::db
