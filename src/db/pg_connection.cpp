#include "pg_connection.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "attempts/db/pg_binary.hpp"
#include "sql.hpp"

namespace attempts::db {

namespace net = boost::asio;

namespace {

// Calls that change data: a lost reply leaves their outcome unknown.
bool is_write(StoreCall::Kind kind) {
  return kind == StoreCall::Kind::save_answers || kind == StoreCall::Kind::submit_attempt ||
         kind == StoreCall::Kind::start_attempt;
}

std::string_view first_line(std::string_view text) {
  text = text.substr(0, text.find('\n'));
  return text;
}

std::string error_message(const PGconn* pg) {
  std::string message = pg ? PQerrorMessage(pg) : "no connection";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message.empty() ? "connection failed" : message;
}

std::string error_message(const PGresult* result) {
  std::string message = PQresultErrorMessage(result);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message.empty() ? PQresStatus(PQresultStatus(result)) : message;
}

std::int64_t integer_at(const PGresult* result, int row, int column) {
  const char* text = PQgetvalue(result, row, column);
  std::int64_t value = 0;
  std::from_chars(text, text + PQgetlength(result, row, column), value);
  return value;
}

std::optional<std::string> text_at(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return std::nullopt;
  return std::string(PQgetvalue(result, row, column),
                     static_cast<std::size_t>(PQgetlength(result, row, column)));
}

// The columns of sql.hpp's ATTEMPTS_RECORD_COLUMNS, starting at `first`.
void read_record(const PGresult* result, int row, int first, AttemptRecord& record) {
  record.id = integer_at(result, row, first);
  record.exam_id = integer_at(result, row, first + 1);
  record.student_id = integer_at(result, row, first + 2);
  record.answers_json.assign(PQgetvalue(result, row, first + 3),
                             static_cast<std::size_t>(PQgetlength(result, row, first + 3)));
  record.revision = integer_at(result, row, first + 4);
  record.started_at = text_at(result, row, first + 5).value_or("");
  record.deadline = text_at(result, row, first + 6);
  record.updated_at = text_at(result, row, first + 7);
  record.submitted_at = text_at(result, row, first + 8);
}

// PQcancel blocks (it opens a connection of its own to the server) and a stalled server is when
// it is needed, so it runs on a detached thread of its own; a few at most, so that a long stall
// cannot pile them up. Exit does not wait for them.
std::atomic<int> cancels_running{0};
constexpr int kMaxCancelsRunning = 4;

void cancel_in_background(PGconn* pg) {
  if (cancels_running.fetch_add(1) >= kMaxCancelsRunning) {
    cancels_running.fetch_sub(1);
    return;
  }
  PGcancel* cancel = PQgetCancel(pg);
  if (cancel == nullptr) {
    cancels_running.fetch_sub(1);
    return;
  }
  std::thread([cancel] {
    std::array<char, 256> error{};
    PQcancel(cancel, error.data(), static_cast<int>(error.size()));
    PQfreeCancel(cancel);
    cancels_running.fetch_sub(1);
  }).detach();
}

// Server notices (there are none in normal operation) are not worth a line each.
void ignore_notice(void*, const char*) {}

const std::string& session_setup_text() {
  static const std::string text =
      std::string(sql::kSessionSetupHead) + kDetectCitusQuery + sql::kSessionSetupTail;
  return text;
}

// Errors after which a statement, rolled back, may simply be sent again: a serialization
// failure and a deadlock (Citus's distributed deadlock detection cancels one transaction this
// way). A stale shard map makes no statement fail: the service writes through the coordinator,
// which routes by its own metadata, so a batch grouped with an old map at worst spans two shards
// (a two-phase commit) until the map is read again.
bool is_transient(const PGresult* result) {
  const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (code == nullptr) return false;
  const std::string_view sqlstate(code);
  return sqlstate == "40001" || sqlstate == "40P01";
}

constexpr std::uint8_t kMaxRetries = 3;

}  // namespace

void PgConnection::Statement::clear() {
  kind = Kind::single;
  result_seen = false;
  writes = false;
  fatal = false;
  transient = false;
  citus.reset();
  map.reset();
  map_problem.reset();
  error.reset();
  applied.clear();
  row_outcome.clear();
  row_detail.clear();
  row_stored_revision.clear();
  single_outcome = StoreOutcome::unavailable;
  ids.clear();
  row_student.clear();
  row_revision.clear();
  waiters.clear();
  waiter_row.clear();
  waiter_sent.clear();
}

PgConnection::PgConnection(net::io_context& loop, std::size_t index, std::string conninfo,
                           const PgPoolOptions& options, PoolMetrics& metrics,
                           ConnectionGauges& gauges)
    : loop_(loop),
      index_(index),
      conninfo_(std::move(conninfo)),
      options_(options),
      metrics_(metrics),
      gauges_(gauges),
      socket_(loop.get_executor()),
      connect_timer_(loop.get_executor()),
      deadline_timer_(loop.get_executor()),
      check_timer_(loop.get_executor()),
      jitter_(static_cast<std::minstd_rand::result_type>(std::random_device{}() + index)) {}

PgConnection::~PgConnection() {
  for (auto& statement : in_flight_) {
    answer_statement(*statement,
                     statement->writes ? StoreOutcome::unknown : StoreOutcome::unavailable);
  }
  for (auto& waiter : queue_) answer(waiter, StoreOutcome::unavailable);
  close_socket();
}

void PgConnection::start() {
  net::post(loop_, [this] { connect(); });
}

// ---- connecting ---------------------------------------------------------------------------

void PgConnection::connect() {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::connecting;
  metrics_.connect_attempts.add();
  try {
    connection_ = std::make_unique<PqxxConnection>(conninfo_);
  } catch (const std::exception& error) {
    return connect_failed(error.what());
  }
  pg_ = connection_->native();
  if (PQstatus(pg_) == CONNECTION_BAD) return connect_failed(error_message(pg_));
  const auto generation = socket_generation_;
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait([this, generation](boost::system::error_code ec) {
    if (ec || generation != socket_generation_) return;
    if (phase_ == Phase::connecting || phase_ == Phase::setting_up) {
      connect_failed("no answer within " + std::to_string(options_.connect_timeout.count()) +
                     " ms");
    }
  });
  // libpq: start as if PQconnectPoll had asked to wait until the socket is writable.
  continue_connecting(PGRES_POLLING_WRITING);
}

void PgConnection::continue_connecting(PostgresPollingStatusType status) {
  if (status == PGRES_POLLING_OK) return on_connected();
  if (status == PGRES_POLLING_FAILED) return connect_failed(error_message(pg_));
  // libpq may close the socket and open another (the next address of a host) between steps,
  // possibly with the same number, so the loop watches it afresh each time.
  close_socket();
  if (const auto error = watch_socket(); !error.empty()) return connect_failed(error);
  const auto generation = socket_generation_;
  socket_.async_wait(status == PGRES_POLLING_READING ? net::posix::descriptor_base::wait_read
                                                     : net::posix::descriptor_base::wait_write,
                     [this, generation](boost::system::error_code wait_ec) {
                       if (wait_ec || generation != socket_generation_) return;
                       if (phase_ != Phase::connecting) return;
                       continue_connecting(PQconnectPoll(pg_));
                     });
}

void PgConnection::on_connected() {
  PQsetNoticeProcessor(pg_, ignore_notice, nullptr);
  if (PQsetnonblocking(pg_, 1) != 0 || PQenterPipelineMode(pg_) != 1) {
    return connect_failed("cannot enter pipeline mode: " + error_message(pg_));
  }
  close_socket();
  if (const auto error = watch_socket(); !error.empty()) return connect_failed(error);
  phase_ = Phase::setting_up;
  send_setup();
  if (phase_ != Phase::setting_up) return;
  flush_output();
  wait_readable();
}

void PgConnection::send_setup() {
  struct Prepared {
    const char* name;
    const char* text;
    std::span<const unsigned> types;
  };
  const Prepared statements[] = {
      {sql::kSaveOneName, sql::kSaveOne, sql::kSaveOneTypes},
      {sql::kSaveBatchName, sql::kSaveBatch, sql::kSaveBatchTypes},
      {sql::kSaveShardName, sql::kSaveShard, sql::kSaveBatchTypes},
      {sql::kWhyNotSavedName, sql::kWhyNotSaved, sql::kWhyNotSavedTypes},
      {sql::kLoadAttemptName, sql::kLoadAttempt, sql::kLoadAttemptTypes},
      {sql::kSubmitAttemptName, sql::kSubmitAttempt, sql::kSubmitAttemptTypes},
      {sql::kStartAttemptName, sql::kStartAttempt, sql::kStartAttemptTypes},
      {sql::kPingName, sql::kPing, {}},
  };
  bool sent = true;
  for (const auto& statement : statements) {
    sent = sent && PQsendPrepare(pg_, statement.name, statement.text,
                                 static_cast<int>(statement.types.size()),
                                 statement.types.empty() ? nullptr : statement.types.data()) == 1;
  }
  const std::string statement_timeout = std::to_string(options_.statement_timeout.count());
  // async: commits return before their WAL is flushed, on these connections only. sync: on,
  // whatever the server's default. unlogged: the server's own (UNLOGGED writes no WAL).
  const char* synchronous_commit = options_.durability == Durability::async  ? "off"
                                   : options_.durability == Durability::sync ? "on"
                                                                             : nullptr;
  // Any non-NULL value asks whether attempts is a Citus distributed table.
  const char* detect_citus = options_.citus == CitusMode::off ? nullptr : "detect";
  const char* values[] = {statement_timeout.c_str(), synchronous_commit, detect_citus};
  sent = sent && PQsendQueryParams(pg_, session_setup_text().c_str(), 3, nullptr, values, nullptr,
                                   nullptr, 0) == 1;
  sent = sent && PQpipelineSync(pg_) == 1;
  if (!sent) return connect_failed("cannot send the session setup: " + error_message(pg_));
  auto statement = new_statement(Statement::Kind::setup);
  statement->sent_at = Clock::now();
  in_flight_.push_back(std::move(statement));
}

void PgConnection::connect_failed(std::string_view why) {
  metrics_.connect_failures.add();
  // The first failure of an outage is a warning; the retries that follow would only repeat it.
  if (failed_connects_ == 0) {
    spdlog::warn("db connection {}: cannot connect: {}", index_, first_line(why));
  } else {
    spdlog::debug("db connection {}: retry {} failed: {}", index_, failed_connects_,
                  first_line(why));
  }
  ++failed_connects_;
  close_socket();
  in_flight_.clear();  // only the setup can be in flight while connecting
  request_statements_in_flight_ = 0;
  shard_map_reading_ = false;
  connection_.reset();
  pg_ = nullptr;
  phase_ = Phase::waiting_to_connect;
  // Calls waited for this attempt; with the database unreachable they are answered now.
  for (auto& waiter : queue_) answer(waiter, StoreOutcome::unavailable);
  queue_.clear();
  queued_bytes_ = 0;
  publish_gauges();
  if (closing_) return maybe_finish_closing();
  connect_timer_.expires_after(next_backoff());
  connect_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) connect();
  });
}

PgConnection::Clock::duration PgConnection::next_backoff() {
  // Exponential with "equal jitter": half the delay is fixed, half random, so the pool's
  // connections spread their retries instead of hitting a restarting server together.
  const auto cap = std::chrono::duration_cast<Clock::duration>(options_.reconnect_max_delay);
  auto delay = std::chrono::duration_cast<Clock::duration>(options_.reconnect_initial_delay);
  for (unsigned i = 1; i < failed_connects_ && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  std::uniform_int_distribution<Clock::rep> spread(0, delay.count() / 2);
  return delay - delay / 2 + Clock::duration(spread(jitter_));
}

// ---- calls ------------------------------------------------------------------------------------

void PgConnection::submit(StoreCall& call, StoreCompletion& completion) {
  Waiter waiter{&call, &completion};
  // Answered at once: a request never waits for a database that is known to be down.
  if (closing_ || phase_ == Phase::closed || phase_ == Phase::waiting_to_connect) {
    return answer(waiter, StoreOutcome::unavailable);
  }
  // A misconfigured table: nothing is done in another durability mode than the one promised,
  // nor on a cluster that is not what --citus requires. Pings go through, to notice when it is
  // fixed.
  if (const auto& why = refusal(); why && call.kind != StoreCall::Kind::ping) {
    call.problem = *why;
    return answer(waiter, StoreOutcome::unavailable);
  }
  const std::size_t bytes = call.answers_json.size();
  if (queue_.size() >= options_.queue_capacity || queued_bytes_ + bytes > options_.queue_bytes) {
    return answer(waiter, StoreOutcome::overloaded);
  }
  queue_.push_back(waiter);
  queued_bytes_ += bytes;
  watch_deadline(call.deadline);
  schedule_flush();
  gauges_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
}

void PgConnection::close_when_idle(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  maybe_finish_closing();
}

void PgConnection::maybe_finish_closing() {
  if (!closing_ || phase_ == Phase::closed) return;
  // The connection's own statements (setup, checks) hold nobody up.
  const bool busy = !queue_.empty() ||
                    std::any_of(in_flight_.begin(), in_flight_.end(), [](const auto& statement) {
                      return statement->kind != Statement::Kind::setup &&
                             statement->kind != Statement::Kind::check;
                    });
  if (busy && (phase_ == Phase::ready || phase_ == Phase::setting_up)) return;
  for (auto& waiter : queue_) answer(waiter, StoreOutcome::unavailable);
  queue_.clear();
  queued_bytes_ = 0;
  in_flight_.clear();
  phase_ = Phase::closed;
  close_socket();
  connection_.reset();
  pg_ = nullptr;
  connect_timer_.cancel();
  deadline_timer_.cancel();
  check_timer_.cancel();
  publish_gauges();
  if (auto on_closed = std::exchange(on_closed_, nullptr)) net::post(loop_, std::move(on_closed));
}

// ---- sending ----------------------------------------------------------------------------------

void PgConnection::schedule_flush() {
  // Posted, not run now: the other requests the loop reads in this round join the same batch.
  if (flush_scheduled_ || phase_ != Phase::ready) return;
  flush_scheduled_ = true;
  net::post(loop_, [this] {
    flush_scheduled_ = false;
    flush();
  });
}

void PgConnection::flush() {
  // Calls queued before the setup (or a later check) found a reason to refuse them are refused
  // now, never sent: nothing is written in a mode other than the one promised.
  if (const auto& why = refusal(); why && phase_ == Phase::ready) {
    std::deque<Waiter> pings;
    for (auto& waiter : queue_) {
      if (waiter.call->kind == StoreCall::Kind::ping) {
        pings.push_back(waiter);
        continue;
      }
      queued_bytes_ -= waiter.call->answers_json.size();
      waiter.call->problem = *why;
      answer(waiter, StoreOutcome::unavailable);
    }
    queue_ = std::move(pings);
  }
  bool sent = false;
  while (phase_ == Phase::ready && !queue_.empty() &&
         request_statements_in_flight_ < options_.pipeline_depth) {
    if (queue_.front().call->kind == StoreCall::Kind::save_answers) {
      std::size_t count = 1;
      while (count < queue_.size() && count < options_.max_batch &&
             queue_[count].call->kind == StoreCall::Kind::save_answers) {
        ++count;
      }
      send_writes(count);
    } else {
      const Waiter waiter = queue_.front();
      queue_.pop_front();
      send_single(waiter);
    }
    sent = true;
  }
  if (sent && phase_ == Phase::ready) {
    flush_output();
    if (!in_flight_.empty()) watch_deadline(in_flight_.front()->sent_at + options_.stall_timeout);
  }
  publish_gauges();
  maybe_finish_closing();
}

void PgConnection::send_writes(std::size_t count) {
  batch_.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(count));
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(count));
  write_keys_.clear();
  for (const auto& waiter : batch_) {
    queued_bytes_ -= waiter.call->answers_json.size();
    write_keys_.push_back(
        {waiter.call->attempt_id, waiter.call->revision, group_of(waiter.call->attempt_id)});
  }
  plan_writes(write_keys_, options_.max_batch, plan_);
  for (std::uint32_t s = 0; s < plan_.statements.size(); ++s) {
    send_save_statement(plan_.statements[s], s);
  }
}

void PgConnection::send_save_statement(const WritePlan::Statement& rows,
                                       std::uint32_t statement_index) {
  auto statement = new_statement(Statement::Kind::save);
  statement->writes = true;
  statement->ids = rows.ids;
  for (const std::size_t sent : rows.sent) {
    statement->row_student.push_back(batch_[sent].call->student);
    statement->row_revision.push_back(batch_[sent].call->revision);
  }
  for (std::size_t w = 0; w < batch_.size(); ++w) {
    const auto& placement = plan_.placement[w];
    if (placement.statement != statement_index) continue;
    statement->waiters.push_back(batch_[w]);
    statement->waiter_row.push_back(placement.row);
    statement->waiter_sent.push_back(placement.sent);
  }
  if (phase_ != Phase::ready) return answer_statement(*statement, StoreOutcome::unavailable);

  // Binary parameters: ids, students, revisions, answers (see pg_binary.hpp).
  params_.clear();
  std::array<std::size_t, 4> offsets{};
  std::array<int, 4> lengths{};
  std::array<const char*, 4> values{};
  const std::array<int, 4> formats = {1, 1, 1, 1};
  std::array<bool, 4> null{};
  const auto mark = [&](std::size_t i, std::size_t start) {
    offsets[i] = start;
    lengths[i] = static_cast<int>(params_.size() - start);
  };
  // On Citus the rows are all in one shard, and the statement says which ids, so it is routed
  // to one worker.
  const char* name = shard_map_ ? sql::kSaveShardName : sql::kSaveBatchName;
  if (rows.ids.size() == 1) {
    name = sql::kSaveOneName;
    const StoreCall& call = *batch_[rows.sent[0]].call;
    append_int8(params_, rows.ids[0]);
    mark(0, 0);
    null[1] = !call.student.has_value();
    null[2] = !call.revision.has_value();
    std::size_t start = params_.size();
    if (call.student) append_int8(params_, *call.student);
    mark(1, start);
    start = params_.size();
    if (call.revision) append_int8(params_, *call.revision);
    mark(2, start);
    start = params_.size();
    append_jsonb(params_, call.answers_json);
    mark(3, start);
  } else {
    answers_.clear();
    for (const std::size_t sent : rows.sent) answers_.push_back(batch_[sent].call->answers_json);
    append_int8_array(params_, rows.ids);
    mark(0, 0);
    std::size_t start = params_.size();
    append_int8_array(params_, statement->row_student);
    mark(1, start);
    start = params_.size();
    append_int8_array(params_, statement->row_revision);
    mark(2, start);
    start = params_.size();
    append_jsonb_array(params_, answers_);
    mark(3, start);
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = null[i] ? nullptr : params_.data() + offsets[i];
  }
  if (PQsendQueryPrepared(pg_, name, 4, values.data(), lengths.data(), formats.data(), 0) != 1) {
    answer_statement(*statement, StoreOutcome::unavailable);  // not sent: nothing was done
    return fail_connection(error_message(pg_), false);
  }
  push_in_flight(std::move(statement));
  if (PQpipelineSync(pg_) != 1) fail_connection(error_message(pg_), false);
}

void PgConnection::send_single(Waiter waiter) {
  StoreCall& call = *waiter.call;
  auto statement = new_statement(Statement::Kind::single);
  statement->writes = is_write(call.kind);
  statement->waiters.push_back(waiter);
  params_.clear();
  std::array<const char*, 3> values{};
  std::array<int, 3> lengths{};
  std::array<int, 3> formats = {1, 1, 1};
  int count = 0;
  const char* name = nullptr;
  // Binary int8 parameters: id or exam, then the student (NULL: any).
  const auto two_ids = [&](std::int64_t first) {
    append_int8(params_, first);
    if (call.student) append_int8(params_, *call.student);
    values[0] = params_.data();
    lengths[0] = 8;
    values[1] = call.student ? params_.data() + 8 : nullptr;
    lengths[1] = call.student ? 8 : 0;
    count = 2;
  };
  switch (call.kind) {
    case StoreCall::Kind::load_attempt:
      name = sql::kLoadAttemptName;
      two_ids(call.attempt_id);
      break;
    case StoreCall::Kind::submit_attempt:
      name = sql::kSubmitAttemptName;
      two_ids(call.attempt_id);
      break;
    case StoreCall::Kind::start_attempt:
      name = sql::kStartAttemptName;
      two_ids(call.exam_id);
      values[2] = call.idempotency_key.empty() ? nullptr : call.idempotency_key.c_str();
      lengths[2] = static_cast<int>(call.idempotency_key.size());
      formats[2] = 0;  // text
      count = 3;
      break;
    case StoreCall::Kind::ping:
      name = sql::kPingName;
      break;
    case StoreCall::Kind::save_answers:
      break;  // never single: flush() sends writes with send_writes()
  }
  if (name == nullptr ||
      PQsendQueryPrepared(pg_, name, count, values.data(), lengths.data(), formats.data(), 0) !=
          1) {
    answer_statement(*statement, StoreOutcome::unavailable);  // not sent: nothing was done
    if (name != nullptr) fail_connection(error_message(pg_), false);
    return;
  }
  push_in_flight(std::move(statement));
  if (PQpipelineSync(pg_) != 1) fail_connection(error_message(pg_), false);
}

void PgConnection::send_why_not_saved(Statement& saved, const std::vector<char>& applied) {
  auto statement = new_statement(Statement::Kind::why_not_saved);
  std::vector<std::uint32_t> new_row(saved.ids.size(), 0);
  for (std::size_t row = 0; row < saved.ids.size(); ++row) {
    if (applied[row]) continue;
    new_row[row] = static_cast<std::uint32_t>(statement->ids.size());
    statement->ids.push_back(saved.ids[row]);
    statement->row_student.push_back(saved.row_student[row]);
    statement->row_revision.push_back(saved.row_revision[row]);
  }
  for (std::size_t w = 0; w < saved.waiters.size(); ++w) {
    const auto row = saved.waiter_row[w];
    if (applied[row] || saved.waiters[w].call == nullptr) continue;
    statement->waiters.push_back(std::exchange(saved.waiters[w], Waiter{}));
    statement->waiter_row.push_back(new_row[row]);
    statement->waiter_sent.push_back(saved.waiter_sent[w]);
  }
  params_.clear();
  append_int8_array(params_, statement->ids);
  const char* values[] = {params_.data()};
  const int lengths[] = {static_cast<int>(params_.size())};
  const int formats[] = {1};
  if (PQsendQueryPrepared(pg_, sql::kWhyNotSavedName, 1, values, lengths, formats, 0) != 1 ||
      PQpipelineSync(pg_) != 1) {
    // Those rows were not updated: whatever fails now, nothing of theirs was saved.
    answer_statement(*statement, StoreOutcome::unavailable);
    if (!pending_failure_) pending_failure_ = error_message(pg_);
    return;
  }
  // Behind everything already sent; it needs no pipeline slot.
  statement->sent_at = Clock::now();
  in_flight_.push_back(std::move(statement));
}

void PgConnection::push_in_flight(std::unique_ptr<Statement> statement) {
  statement->sent_at = Clock::now();
  ++request_statements_in_flight_;
  in_flight_.push_back(std::move(statement));
}

void PgConnection::flush_output() {
  if (pg_ == nullptr || writing_) return;
  const int result = PQflush(pg_);
  if (result < 0) return fail_connection(error_message(pg_), false);
  if (result == 0) return;
  // libpq's buffer holds more than the socket took: send the rest when it is writable.
  writing_ = true;
  const auto generation = socket_generation_;
  socket_.async_wait(net::posix::descriptor_base::wait_write,
                     [this, generation](boost::system::error_code ec) {
                       if (generation != socket_generation_) return;
                       writing_ = false;
                       if (ec) return fail_connection(ec.message(), false);
                       flush_output();
                     });
}

// ---- receiving --------------------------------------------------------------------------------

void PgConnection::wait_readable() {
  // Always watched while connected: results, and also a server that closes the connection
  // while it is idle (a restart), which is then replaced before the next request needs it.
  if (reading_ || pg_ == nullptr) return;
  reading_ = true;
  const auto generation = socket_generation_;
  socket_.async_wait(net::posix::descriptor_base::wait_read,
                     [this, generation](boost::system::error_code ec) {
                       if (generation != socket_generation_) return;
                       reading_ = false;
                       on_readable(ec);
                     });
}

void PgConnection::on_readable(boost::system::error_code ec) {
  if (ec) return fail_connection(ec.message(), false);
  // libpq may leave bytes in the socket when its buffer fills; that is fine: each wait
  // re-registers the socket with epoll (EPOLL_CTL_MOD), which reports data already waiting.
  if (PQconsumeInput(pg_) != 1) return fail_connection(error_message(pg_), false);
  process_results();
  if (pending_failure_) {
    return fail_connection(*std::exchange(pending_failure_, std::nullopt), false);
  }
  if (pg_ == nullptr) return;
  flush_output();
  wait_readable();
  schedule_flush();
  maybe_finish_closing();
}

void PgConnection::process_results() {
  int consecutive_nulls = 0;
  while (!in_flight_.empty() && !pending_failure_ && PQisBusy(pg_) == 0) {
    PGresult* result = PQgetResult(pg_);
    if (result == nullptr) {
      // The end of one statement's results; two in a row would mean nothing more is ready.
      if (++consecutive_nulls > 1) break;
      continue;
    }
    consecutive_nulls = 0;
    Statement& statement = *in_flight_.front();
    if (PQresultStatus(result) != PGRES_PIPELINE_SYNC) {
      on_result(statement, result);
      PQclear(result);
      continue;
    }
    PQclear(result);
    // The sync: the statement's implicit transaction has committed (or rolled back if it
    // reported an error). Only now is a write acknowledged: PostgreSQL sends a statement's rows
    // before it commits, at the sync.
    auto finished = std::move(in_flight_.front());
    in_flight_.pop_front();
    if (finished->kind == Statement::Kind::setup) {
      if (finished->error) {
        pending_failure_.reset();
        return connect_failed("setting up the session failed: " + *finished->error);
      }
      after_setup(finished->citus);
    } else if (finished->kind == Statement::Kind::shard_map) {
      shard_map_reading_ = false;
      if (finished->error && phase_ == Phase::setting_up) {
        pending_failure_.reset();
        return connect_failed("reading the shard map failed: " + *finished->error);
      }
      install_shard_map(*finished);
      if (phase_ == Phase::setting_up) on_ready();
    } else if (finished->kind == Statement::Kind::check) {
      if (finished->error) pending_failure_ = "checking the table failed: " + *finished->error;
    } else {
      if (finished->kind != Statement::Kind::why_not_saved) --request_statements_in_flight_;
      on_committed(*finished);
    }
    finished->clear();
    spare_statements_.push_back(std::move(finished));
  }
  publish_gauges();
}

void PgConnection::on_ready() {
  connect_timer_.cancel();
  if (failed_connects_ > 0) {
    spdlog::info("db connection {}: connected after {} failed attempts", index_, failed_connects_);
  }
  failed_connects_ = 0;
  phase_ = Phase::ready;
  publish_gauges();
  schedule_flush();
  schedule_durability_check();
}

// ---- Citus ------------------------------------------------------------------------------------

void PgConnection::after_setup(std::optional<bool> citus) {
  if (citus.value_or(false)) return send_shard_map_read();  // ready once the map is read
  shard_map_.reset();
  metrics_.citus_shards.store(0, std::memory_order_relaxed);
  std::optional<std::string> problem;
  if (options_.citus == CitusMode::required) {
    problem =
        "--citus on, but attempts is not a Citus distributed table in this database "
        "(sql/citus.sql)";
  }
  if (problem != citus_problem_ && problem) {
    spdlog::error("db connection {}: {}; refusing calls until it is fixed", index_, *problem);
  }
  citus_problem_ = std::move(problem);
  on_ready();
}

void PgConnection::send_shard_map_read() {
  if (shard_map_reading_ || pg_ == nullptr) return;
  if (PQsendQueryParams(pg_, kShardMapQuery, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1 ||
      PQpipelineSync(pg_) != 1) {
    if (!pending_failure_) pending_failure_ = error_message(pg_);
    return;
  }
  shard_map_reading_ = true;
  auto statement = new_statement(Statement::Kind::shard_map);
  statement->sent_at = Clock::now();
  in_flight_.push_back(std::move(statement));
}

void PgConnection::read_shard_map_result(Statement& statement, PGresult* result) {
  const int rows = PQntuples(result);
  if (PQnfields(result) != static_cast<int>(kShardMapColumns)) {
    statement.map_problem = "the shard map query returned " + std::to_string(PQnfields(result)) +
                            " columns";
    return;
  }
  std::vector<ShardMapRow> values(static_cast<std::size_t>(rows));
  for (int row = 0; row < rows; ++row) {
    for (int column = 0; column < static_cast<int>(kShardMapColumns); ++column) {
      if (PQgetisnull(result, row, column)) continue;
      values[static_cast<std::size_t>(row)][static_cast<std::size_t>(column)] = std::string_view(
          PQgetvalue(result, row, column),
          static_cast<std::size_t>(PQgetlength(result, row, column)));
    }
  }
  try {
    statement.map = parse_shard_map(values);
  } catch (const std::invalid_argument& error) {
    statement.map_problem = error.what();
  }
}

void PgConnection::install_shard_map(Statement& statement) {
  if (statement.error) {
    // A re-read that failed (the coordinator restarting, say): the map in hand stays.
    log_error(spdlog::level::warn, "shard map",
              "reading the shard map failed: " + *statement.error, *statement.error);
    return;
  }
  std::optional<std::string> problem;
  if (statement.map_problem) {
    problem = "the shard map of attempts cannot be used: " + *statement.map_problem;
  } else if (!statement.map) {
    problem = "the shard map of attempts was not read";
  }
  if (problem) {
    if (problem != citus_problem_) {
      spdlog::error("db connection {}: {}; refusing calls until it is fixed", index_, *problem);
    }
    citus_problem_ = std::move(problem);
    return;
  }
  if (citus_problem_) {
    spdlog::info("db connection {}: the shard map of attempts is usable again", index_);
    citus_problem_.reset();
  }
  if (shard_map_ && *shard_map_ == *statement.map) return;
  if (shard_map_) {
    metrics_.shard_map_changes.add();
    spdlog::info("db connection {}: the shard map of attempts changed ({} shards, was {})",
                 index_, statement.map->size(), shard_map_->size());
  } else {
    spdlog::info("db connection {}: attempts is a Citus distributed table with {} shards; "
                 "batches go by shard",
                 index_, statement.map->size());
  }
  shard_map_ = std::move(statement.map);
  metrics_.citus_shards.store(shard_map_->size(), std::memory_order_relaxed);
}

std::uint32_t PgConnection::group_of(AttemptId id) const {
  return shard_map_ ? static_cast<std::uint32_t>(shard_map_->index_of(id)) : 0;
}

const std::optional<std::string>& PgConnection::refusal() const {
  return misconfigured_ ? misconfigured_ : citus_problem_;
}

// ---- durability -------------------------------------------------------------------------------

void PgConnection::check_persistence(const char* relpersistence) {
  const char expected = options_.durability == Durability::unlogged ? 'u' : 'p';
  const char found = relpersistence != nullptr ? relpersistence[0] : '\0';
  const char* mode = options_.durability == Durability::unlogged ? "unlogged"
                     : options_.durability == Durability::async  ? "async"
                                                                 : "sync";
  std::optional<std::string> problem;
  if (found != expected) {
    const char* table = found == 'u' ? "UNLOGGED" : found == 'p' ? "LOGGED" : "not a plain table";
    problem = std::string("the attempts table is ") + table + ", but --durability " + mode +
              (expected == 'u' ? " needs it UNLOGGED (sql/unlogged.sql)"
                               : " needs it LOGGED (sql/durable.sql)");
  }
  if (problem == misconfigured_) return;
  if (problem) {
    spdlog::error("db connection {}: {}; refusing calls until it is fixed", index_, *problem);
  } else {
    spdlog::info("db connection {}: the attempts table fits --durability {} again", index_, mode);
  }
  misconfigured_ = std::move(problem);
}

void PgConnection::schedule_durability_check() {
  check_timer_.expires_after(options_.durability_check_interval);
  check_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || phase_ != Phase::ready || closing_) return;
    send_durability_check();
    // Shards move and split while we run (the rebalancer): the map is read again each time.
    if (shard_map_ || citus_problem_) send_shard_map_read();
    flush_output();
    schedule_durability_check();
  });
}

void PgConnection::send_durability_check() {
  if (PQsendQueryPrepared(pg_, sql::kPingName, 0, nullptr, nullptr, nullptr, 0) != 1 ||
      PQpipelineSync(pg_) != 1) {
    return fail_connection(error_message(pg_), false);
  }
  auto statement = new_statement(Statement::Kind::check);
  statement->sent_at = Clock::now();
  in_flight_.push_back(std::move(statement));
  flush_output();
}

void PgConnection::on_result(Statement& statement, PGresult* result) {
  const auto status = PQresultStatus(result);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    // The statement, or its commit, failed: its transaction rolls back.
    if (!statement.error) statement.error = error_message(result);
    statement.transient = is_transient(result);
    // FATAL: the backend ends here, so nothing sent after this statement ever ran.
    const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity != nullptr && (std::string_view(severity) == "FATAL" ||
                                std::string_view(severity) == "PANIC")) {
      statement.fatal = true;
    }
    return;
  }
  if (statement.kind == Statement::Kind::setup || statement.kind == Statement::Kind::check) {
    // The session setup's row and the check's: the table's persistence, last column.
    if (status == PGRES_TUPLES_OK && PQntuples(result) == 1) {
      check_persistence(PQgetvalue(result, 0, PQnfields(result) - 1));
      if (statement.kind == Statement::Kind::setup &&
          !PQgetisnull(result, 0, sql::kSessionSetupCitusColumn)) {
        statement.citus = *PQgetvalue(result, 0, sql::kSessionSetupCitusColumn) == 't';
      }
    }
    return;
  }
  if (statement.kind == Statement::Kind::shard_map) {
    if (status == PGRES_TUPLES_OK) read_shard_map_result(statement, result);
    return;
  }
  if (statement.result_seen) return;
  statement.result_seen = true;
  switch (statement.kind) {
    case Statement::Kind::save:
      read_save_result(statement, result);
      break;
    case Statement::Kind::why_not_saved:
      read_why_not_saved_result(statement, result);
      break;
    case Statement::Kind::single:
      read_single_result(statement, result);
      break;
    case Statement::Kind::setup:
    case Statement::Kind::check:
    case Statement::Kind::shard_map:
      break;
  }
}

void PgConnection::read_save_result(Statement& statement, PGresult* result) {
  statement.applied.assign(statement.ids.size(), 0);
  const int updated = PQntuples(result);
  for (int tuple = 0; tuple < updated; ++tuple) {
    const AttemptId id = integer_at(result, tuple, 0);
    const auto at = std::lower_bound(statement.ids.begin(), statement.ids.end(), id);
    if (at != statement.ids.end() && *at == id) statement.applied[at - statement.ids.begin()] = 1;
  }
}

void PgConnection::read_why_not_saved_result(Statement& statement, PGresult* result) {
  // Per row: what stood in the way, and the stored value the client is told about.
  statement.row_outcome.assign(statement.ids.size(), StoreOutcome::not_found);
  statement.row_detail.assign(statement.ids.size(), std::string());
  statement.row_stored_revision.assign(statement.ids.size(), 0);
  for (int tuple = 0; tuple < PQntuples(result); ++tuple) {
    const AttemptId id = integer_at(result, tuple, 0);
    const auto at = std::lower_bound(statement.ids.begin(), statement.ids.end(), id);
    if (at == statement.ids.end() || *at != id) continue;
    const auto row = static_cast<std::size_t>(at - statement.ids.begin());
    const auto& student = statement.row_student[row];
    const auto& revision = statement.row_revision[row];
    StoreOutcome outcome;
    if (student && integer_at(result, tuple, 1) != *student) {
      outcome = StoreOutcome::not_found;  // someone else's: exactly like a missing one
    } else if (!PQgetisnull(result, tuple, 3)) {
      outcome = StoreOutcome::submitted;
      statement.row_detail[row] = PQgetvalue(result, tuple, 3);
    } else if (*PQgetvalue(result, tuple, 5) == 't') {
      outcome = StoreOutcome::deadline_passed;
      statement.row_detail[row] = PQgetvalue(result, tuple, 4);
    } else if (revision && *revision <= integer_at(result, tuple, 2)) {
      outcome = StoreOutcome::stale_revision;
      statement.row_stored_revision[row] = integer_at(result, tuple, 2);
    } else {
      // Nothing explains it; the write may race a change that this check cannot see.
      log_error(spdlog::level::warn, "saving",
                "attempt " + std::to_string(id) + " was not updated for no visible reason",
                "not updated for no visible reason");
      outcome = StoreOutcome::unavailable;
    }
    statement.row_outcome[row] = outcome;
  }
}

void PgConnection::read_single_result(Statement& statement, PGresult* result) {
  auto& waiter = statement.waiters.front();
  if (waiter.call == nullptr) return;  // answered at its deadline already
  StoreCall& call = *waiter.call;
  StoreOutcome outcome = StoreOutcome::done;
  switch (call.kind) {
    case StoreCall::Kind::load_attempt:
    case StoreCall::Kind::submit_attempt:
      if (PQntuples(result) == 0) {
        outcome = StoreOutcome::not_found;
      } else {
        read_record(result, 0, 0, call.record);
      }
      break;
    case StoreCall::Kind::start_attempt: {
      const std::string_view what = PQntuples(result) == 0 ? "" : PQgetvalue(result, 0, 0);
      if (what == "created" || what == "replayed") {
        outcome = what == "created" ? StoreOutcome::done : StoreOutcome::replayed;
        read_record(result, 0, 1, call.record);
      } else if (what == "key_reused") {
        outcome = StoreOutcome::key_reused;
      } else {
        outcome = StoreOutcome::not_found;
      }
      break;
    }
    case StoreCall::Kind::ping:
      if (PQntuples(result) == 1) check_persistence(PQgetvalue(result, 0, 0));
      if (const auto& why = refusal()) {
        outcome = StoreOutcome::unavailable;
        call.problem = *why;
      }
      break;
    case StoreCall::Kind::save_answers:
      break;
  }
  statement.single_outcome = outcome;
}

void PgConnection::on_committed(Statement& statement) {
  if (statement.kind == Statement::Kind::save && statement.error && statement.transient &&
      !statement.fatal) {
    return retry_writes(statement);
  }
  if (statement.error || !statement.result_seen) {
    const std::string message = statement.error.value_or("no result");
    metrics_.database_errors.add();
    if (statement.kind == Statement::Kind::save) {
      log_error(spdlog::level::err, "saving",
                "saving " + std::to_string(statement.ids.size()) + " attempts failed: " + message,
                message);
    } else if (statement.kind == Statement::Kind::why_not_saved) {
      log_error(spdlog::level::err, "saving", "checking unsaved attempts failed: " + message,
                message);
    } else if (statement.waiters.front().call == nullptr ||
               statement.waiters.front().call->kind != StoreCall::Kind::ping) {
      log_error(spdlog::level::err, "running", "a statement failed: " + message, message);
    }
    // Rolled back: nothing of it was saved. (why_not_saved rows were not updated either.)
    return answer_statement(statement, StoreOutcome::unavailable);
  }
  switch (statement.kind) {
    case Statement::Kind::save:
      return finish_save(statement);
    case Statement::Kind::why_not_saved:
      return finish_why_not_saved(statement);
    case Statement::Kind::single:
      return answer(statement.waiters.front(), statement.single_outcome);
    case Statement::Kind::setup:
    case Statement::Kind::check:
    case Statement::Kind::shard_map:
      return;
  }
}

void PgConnection::retry_writes(Statement& statement) {
  // The statement rolled back: none of its writes was applied. Each is sent again, ahead of
  // everything queued, unless a later statement already sent writes the same attempt: sent
  // again, it would land after that one and undo it. Those, and writes retried too often, are
  // answered unavailable: not saved, which is true.
  metrics_.database_errors.add();
  log_error(spdlog::level::warn, "retrying",
            "saving " + std::to_string(statement.ids.size()) +
                " attempts failed with a transient error, sending them again: " +
                *statement.error,
            *statement.error);
  if (shard_map_) send_shard_map_read();  // ahead of the retry, should the map have changed
  std::size_t retried = 0;
  // Backwards, each to the front: they end up first in the order they were received.
  for (std::size_t w = statement.waiters.size(); w-- > 0;) {
    Waiter& waiter = statement.waiters[w];
    if (waiter.call == nullptr) continue;
    const AttemptId id = statement.ids[statement.waiter_row[w]];
    if (waiter.retries >= kMaxRetries || written_later(id)) {
      answer(waiter, StoreOutcome::unavailable);
      continue;
    }
    ++waiter.retries;
    ++retried;
    queued_bytes_ += waiter.call->answers_json.size();
    watch_deadline(waiter.call->deadline);
    queue_.push_front(std::exchange(waiter, Waiter{}));
  }
  metrics_.writes_retried.add(retried);
  schedule_flush();
}

bool PgConnection::written_later(AttemptId id) const {
  return std::any_of(in_flight_.begin(), in_flight_.end(), [id](const auto& later) {
    return later->kind == Statement::Kind::save &&
           std::binary_search(later->ids.begin(), later->ids.end(), id);
  });
}

void PgConnection::finish_save(Statement& statement) {
  const auto updated = static_cast<std::size_t>(
      std::count(statement.applied.begin(), statement.applied.end(), 1));
  metrics_.batch_rows.observe(static_cast<double>(statement.ids.size()));
  metrics_.batches_committed.add();
  metrics_.rows_committed.add(updated);
  for (std::size_t w = 0; w < statement.waiters.size(); ++w) {
    const auto row = statement.waiter_row[w];
    auto& waiter = statement.waiters[w];
    if (!statement.applied[row] || waiter.call == nullptr) continue;
    // Coalesced writes whose answers were not sent: those without a revision were applied and
    // overwritten; those with one were superseded by a higher revision, changing nothing.
    if (!statement.waiter_sent[w] && waiter.call->revision) {
      waiter.call->record.revision = *statement.row_revision[row];
      answer(waiter, StoreOutcome::stale_revision);
    } else {
      answer(waiter, StoreOutcome::done);
    }
  }
  if (updated < statement.ids.size()) send_why_not_saved(statement, statement.applied);
}

void PgConnection::finish_why_not_saved(Statement& statement) {
  for (std::size_t w = 0; w < statement.waiters.size(); ++w) {
    auto& waiter = statement.waiters[w];
    if (waiter.call == nullptr) continue;
    const auto row = statement.waiter_row[w];
    auto& record = waiter.call->record;
    switch (statement.row_outcome[row]) {
      case StoreOutcome::submitted:
        record.submitted_at = statement.row_detail[row];
        break;
      case StoreOutcome::deadline_passed:
        record.deadline = statement.row_detail[row];
        break;
      case StoreOutcome::stale_revision:
        record.revision = statement.row_stored_revision[row];
        break;
      default:
        break;
    }
    answer(waiter, statement.row_outcome[row]);
  }
}

// ---- deadlines and failure --------------------------------------------------------------------

void PgConnection::watch_deadline(Clock::time_point at) {
  if (at >= deadline_armed_) return;
  deadline_armed_ = at;
  deadline_timer_.expires_at(at);
  deadline_timer_.async_wait([this](boost::system::error_code ec) { on_deadline_timer(ec); });
}

void PgConnection::on_deadline_timer(boost::system::error_code ec) {
  if (ec) return;  // re-armed for an earlier time, or closing
  deadline_armed_ = Clock::time_point::max();
  const auto now = Clock::now();
  auto next = Clock::time_point::max();

  // Queued calls past their deadline were never sent: nothing was done.
  if (std::any_of(queue_.begin(), queue_.end(),
                  [&](const Waiter& waiter) { return waiter.call->deadline <= now; })) {
    std::deque<Waiter> waiting;
    for (auto& waiter : queue_) {
      if (waiter.call->deadline > now) {
        waiting.push_back(waiter);
        continue;
      }
      queued_bytes_ -= waiter.call->answers_json.size();
      metrics_.deadline_expirations.add();
      answer(waiter, StoreOutcome::unavailable);
    }
    queue_ = std::move(waiting);
  }
  for (const auto& waiter : queue_) next = std::min(next, waiter.call->deadline);

  // Sent calls past their deadline are answered now; their statement goes on. A write may
  // still commit, so its outcome is unknown.
  for (auto& statement : in_flight_) {
    const bool writes = statement->writes;
    for (auto& waiter : statement->waiters) {
      if (waiter.call == nullptr) continue;
      if (waiter.call->deadline > now) {
        next = std::min(next, waiter.call->deadline);
        continue;
      }
      metrics_.deadline_expirations.add();
      answer(waiter, writes ? StoreOutcome::unknown : StoreOutcome::unavailable);
    }
  }

  // No reply at all for the stall timeout: the server or the network has stalled, where
  // statement_timeout cannot help. The connection is never used again.
  if (phase_ == Phase::ready && !in_flight_.empty()) {
    const auto stalled_at = in_flight_.front()->sent_at + options_.stall_timeout;
    if (stalled_at <= now) {
      metrics_.stalled_connections.add();
      fail_connection("no reply from the server for " +
                          std::to_string(options_.stall_timeout.count()) + " ms",
                      true);
      return;
    }
    next = std::min(next, stalled_at);
  }
  publish_gauges();
  if (next != Clock::time_point::max()) watch_deadline(next);
  maybe_finish_closing();
}

void PgConnection::fail_connection(std::string_view why, bool cancel_statements) {
  if (phase_ == Phase::connecting || phase_ == Phase::setting_up) return connect_failed(why);
  if (pg_ == nullptr) return;
  metrics_.database_errors.add();
  log_error(spdlog::level::warn, "lost", "lost: " + std::string(first_line(why)),
            first_line(why));
  if (cancel_statements && !in_flight_.empty()) cancel_in_background(pg_);
  // What was sent may or may not have been committed; what was queued was never sent. A
  // statement that got a FATAL error did not commit, and nothing after it ever ran.
  bool not_run = false;
  for (auto& statement : in_flight_) {
    not_run = not_run || statement->fatal;
    answer_statement(*statement, statement->writes && !not_run ? StoreOutcome::unknown
                                                               : StoreOutcome::unavailable);
  }
  in_flight_.clear();
  request_statements_in_flight_ = 0;
  for (auto& waiter : queue_) answer(waiter, StoreOutcome::unavailable);
  queue_.clear();
  queued_bytes_ = 0;
  close_socket();
  connection_.reset();
  pg_ = nullptr;
  phase_ = Phase::waiting_to_connect;
  publish_gauges();
  if (closing_) return maybe_finish_closing();
  // A single broken connection (a restarted backend, say) is replaced at once; backoff starts
  // only if that fails too.
  net::post(loop_, [this] {
    if (phase_ == Phase::waiting_to_connect) connect();
  });
}

std::string PgConnection::watch_socket() {
  // The loop watches a duplicate of libpq's socket, never libpq's own number: libpq closes its
  // socket by itself when it sees the connection drop, and another thread may get the same
  // number for a new socket before this loop stops watching; the duplicate keeps the number ours.
  const int watched = ::fcntl(PQsocket(pg_), F_DUPFD_CLOEXEC, 0);
  if (watched < 0) return std::string("cannot watch the socket: ") + std::strerror(errno);
  boost::system::error_code ec;
  socket_.assign(watched, ec);
  if (ec) {
    ::close(watched);
    return "cannot watch the socket: " + ec.message();
  }
  return {};
}

void PgConnection::close_socket() {
  ++socket_generation_;
  reading_ = false;
  writing_ = false;
  boost::system::error_code ignored;
  if (socket_.is_open()) socket_.close(ignored);
}

void PgConnection::answer(Waiter& waiter, StoreOutcome outcome) {
  StoreCall* call = std::exchange(waiter.call, nullptr);
  if (call == nullptr) return;
  if (outcome == StoreOutcome::unknown) metrics_.outcomes_unknown.add();
  call->outcome = outcome;
  // The completion may end the request (and reuse or free the call): nothing of it is touched
  // after this.
  waiter.completion->on_store_complete(*call);
}

void PgConnection::answer_statement(Statement& statement, StoreOutcome outcome) {
  for (auto& waiter : statement.waiters) answer(waiter, outcome);
}

void PgConnection::publish_gauges() {
  std::size_t in_flight = 0;
  for (const auto& statement : in_flight_) {
    for (const auto& waiter : statement->waiters) in_flight += waiter.call != nullptr;
  }
  gauges_.connected.store(phase_ == Phase::ready, std::memory_order_relaxed);
  gauges_.refusing.store(phase_ == Phase::ready && refusal().has_value(),
                         std::memory_order_relaxed);
  gauges_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
  gauges_.in_flight.store(in_flight, std::memory_order_relaxed);
}

std::unique_ptr<PgConnection::Statement> PgConnection::new_statement(Statement::Kind kind) {
  std::unique_ptr<Statement> statement;
  if (spare_statements_.empty()) {
    statement = std::make_unique<Statement>();
  } else {
    statement = std::move(spare_statements_.back());
    spare_statements_.pop_back();
  }
  statement->kind = kind;
  return statement;
}

void PgConnection::log_error(spdlog::level::level_enum level, std::string_view what,
                             const std::string& message, std::string_view cause) {
  constexpr auto kInterval = std::chrono::seconds(10);
  constexpr std::size_t kMaxKinds = 64;  // distinct errors remembered; bounded memory
  // The same error is what went wrong (saving, loading, lost) plus the first line of its cause;
  // counts and ids in the message do not make it a different one.
  std::string key(what);
  key.append("|").append(first_line(cause));
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

}  // namespace attempts::db
