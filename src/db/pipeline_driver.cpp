#include "pipeline_driver.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <thread>

namespace attempts::db {

namespace net = boost::asio;

namespace {

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

}  // namespace

PipelineDriver::PipelineDriver(net::io_context& loop, std::size_t index, std::string conninfo,
                               Options options, PoolMetrics& metrics, Handler& handler)
    : loop_(loop),
      index_(index),
      conninfo_(std::move(conninfo)),
      options_(options),
      metrics_(metrics),
      handler_(handler),
      socket_(loop.get_executor()),
      connect_timer_(loop.get_executor()),
      jitter_(static_cast<std::minstd_rand::result_type>(std::random_device{}() + index)) {}

PipelineDriver::~PipelineDriver() {
  close_socket();
}

void PipelineDriver::start() {
  net::post(loop_, [this] {
    if (phase_ == Phase::waiting) connect();
  });
}

// ---- connecting ---------------------------------------------------------------------------

void PipelineDriver::connect() {
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
    if (ec || generation != socket_generation_ || phase_ == Phase::closed) return;
    connect_failed("no answer within " + std::to_string(options_.connect_timeout.count()) + " ms");
  });
  // libpq: start as if PQconnectPoll had asked to wait until the socket is writable.
  continue_connecting(PGRES_POLLING_WRITING);
}

void PipelineDriver::continue_connecting(PostgresPollingStatusType status) {
  if (status == PGRES_POLLING_OK) return on_connected();
  if (status == PGRES_POLLING_FAILED) return connect_failed(error_message(pg_));
  // libpq may close the socket and open another (the next address of a host) between steps,
  // possibly with the same number, so the loop watches it afresh each time.
  close_socket();
  if (const auto error = watch_socket(); !error.empty()) return connect_failed(error);
  const auto generation = socket_generation_;
  socket_.async_wait(status == PGRES_POLLING_READING ? net::posix::descriptor_base::wait_read
                                                     : net::posix::descriptor_base::wait_write,
                     [this, generation](boost::system::error_code ec) {
                       if (ec || generation != socket_generation_) return;
                       if (phase_ != Phase::connecting) return;
                       continue_connecting(PQconnectPoll(pg_));
                     });
}

void PipelineDriver::on_connected() {
  PQsetNoticeProcessor(pg_, ignore_notice, nullptr);
  if (PQsetnonblocking(pg_, 1) != 0 || PQenterPipelineMode(pg_) != 1) {
    return connect_failed("cannot enter pipeline mode: " + error_message(pg_));
  }
  close_socket();
  if (const auto error = watch_socket(); !error.empty()) return connect_failed(error);
  phase_ = Phase::open;
  // Until set_up(), a failure is a failed connect: the connect timer still runs.
  handler_.on_connected();
  if (phase_ != Phase::open) return;
  flush();
  wait_readable();
}

void PipelineDriver::set_up() {
  connect_timer_.cancel();
  if (failed_connects_ > 0) {
    spdlog::info("db connection {}: connected after {} failed attempts", index_, failed_connects_);
  }
  failed_connects_ = 0;
  set_up_ = true;
}

void PipelineDriver::connect_failed(std::string_view why) {
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
  connection_.reset();
  pg_ = nullptr;
  syncs_pending_ = 0;
  set_up_ = false;
  if (phase_ == Phase::closed) return;
  phase_ = Phase::waiting;
  handler_.on_connect_failed(why);
  if (phase_ == Phase::closed) return;
  connect_timer_.expires_after(next_backoff());
  connect_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && phase_ == Phase::waiting) connect();
  });
}

PipelineDriver::Clock::duration PipelineDriver::next_backoff() {
  // Exponential with "equal jitter": half the delay is fixed, half random, so the pool's
  // connections spread their retries instead of hitting a restarting server together.
  const auto cap = std::chrono::duration_cast<Clock::duration>(options_.reconnect_max_delay);
  auto delay = std::chrono::duration_cast<Clock::duration>(options_.reconnect_initial_delay);
  for (unsigned i = 1; i < failed_connects_ && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  std::uniform_int_distribution<Clock::rep> spread(0, delay.count() / 2);
  return delay - delay / 2 + Clock::duration(spread(jitter_));
}

// ---- sending ------------------------------------------------------------------------------

bool PipelineDriver::sent(bool ok) {
  // A statement counts as sent once its sync is queued too: without the sync it never commits,
  // so a failure before that leaves nothing done (the caller answers its calls unavailable).
  if (ok && PQpipelineSync(pg_) == 1) {
    ++syncs_pending_;
    return true;
  }
  fail(error_message(pg_));
  return false;
}

bool PipelineDriver::send(const EncodedStatement& statement) {
  if (phase_ != Phase::open) return false;
  return sent(PQsendQueryPrepared(pg_, statement.name, statement.count, statement.values.data(),
                                  statement.lengths.data(), statement.formats.data(),
                                  statement.result_format) == 1);
}

bool PipelineDriver::send_query(const char* text) {
  if (phase_ != Phase::open) return false;
  return sent(PQsendQueryParams(pg_, text, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
}

bool PipelineDriver::send_setup(std::span<const char* const> names,
                                std::span<const char* const> texts,
                                std::span<const std::span<const unsigned>> types,
                                const char* setup_query,
                                std::span<const char* const> setup_values) {
  if (phase_ != Phase::open) return false;
  bool ok = true;
  for (std::size_t i = 0; ok && i < names.size(); ++i) {
    ok = PQsendPrepare(pg_, names[i], texts[i], static_cast<int>(types[i].size()),
                       types[i].empty() ? nullptr : types[i].data()) == 1;
  }
  ok = ok && PQsendQueryParams(pg_, setup_query, static_cast<int>(setup_values.size()), nullptr,
                               setup_values.data(), nullptr, nullptr, 0) == 1;
  return sent(ok);
}

void PipelineDriver::flush() {
  if (pg_ == nullptr || writing_ || phase_ != Phase::open) return;
  const int result = PQflush(pg_);
  if (result < 0) return fail(error_message(pg_));
  if (result == 0) return;
  // libpq's buffer holds more than the socket took: send the rest when it is writable.
  writing_ = true;
  const auto generation = socket_generation_;
  socket_.async_wait(net::posix::descriptor_base::wait_write,
                     [this, generation](boost::system::error_code ec) {
                       if (generation != socket_generation_) return;
                       writing_ = false;
                       if (ec) return fail(ec.message());
                       flush();
                     });
}

// ---- receiving ----------------------------------------------------------------------------

void PipelineDriver::wait_readable() {
  // Always watched while open: results, and also a server that closes the connection while it
  // is idle (a restart), which is then replaced before the next request needs it.
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

void PipelineDriver::on_readable(boost::system::error_code ec) {
  if (ec) return fail(ec.message());
  // libpq may leave bytes in the socket when its buffer fills; that is fine: each wait
  // re-registers the socket with epoll (EPOLL_CTL_MOD), which reports data already waiting.
  if (PQconsumeInput(pg_) != 1) return fail(error_message(pg_));
  read_results();
  if (deferred_failure_) {
    const Failure failure = std::move(*deferred_failure_);
    deferred_failure_.reset();
    return give_up(failure.why, failure.cancel, failure.connecting);
  }
  if (phase_ != Phase::open) return;
  flush();
  wait_readable();
  handler_.on_results_handled();
}

void PipelineDriver::read_results() {
  handling_ = true;
  int consecutive_nulls = 0;
  while (syncs_pending_ > 0 && !deferred_failure_ && PQisBusy(pg_) == 0) {
    PGresult* result = PQgetResult(pg_);
    if (result == nullptr) {
      // The end of one statement's results; two in a row would mean nothing more is ready.
      if (++consecutive_nulls > 1) break;
      continue;
    }
    consecutive_nulls = 0;
    if (PQresultStatus(result) == PGRES_PIPELINE_SYNC) {
      PQclear(result);
      // The sync: the statement's implicit transaction has committed (or rolled back if it
      // reported an error). Only now is a write acknowledged: PostgreSQL sends a statement's
      // rows before it commits, at the sync.
      --syncs_pending_;
      handler_.on_statement_finished();
      continue;
    }
    if (const auto status = PQresultStatus(result);
        status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      handler_.on_result(*result);
    } else {
      handler_.on_error(StatementCodec::read_error(*result));
    }
    PQclear(result);
  }
  handling_ = false;
}

// ---- failure ------------------------------------------------------------------------------

void PipelineDriver::fail(std::string_view why, bool cancel, bool connecting) {
  if (handling_) {
    if (!deferred_failure_) deferred_failure_ = Failure{std::string(why), cancel, connecting};
    return;
  }
  give_up(why, cancel, connecting);
}

void PipelineDriver::give_up(std::string_view why, bool cancel, bool connecting) {
  if (phase_ == Phase::closed || phase_ == Phase::waiting) return;
  if (phase_ == Phase::connecting || connecting || !set_up_) return connect_failed(why);
  if (cancel && syncs_pending_ > 0) cancel_in_background(pg_);
  close_socket();
  connection_.reset();
  pg_ = nullptr;
  syncs_pending_ = 0;
  set_up_ = false;
  phase_ = Phase::waiting;
  handler_.on_lost(why);
  if (phase_ == Phase::closed) return;
  // A single broken connection (a restarted backend, say) is replaced at once; backoff starts
  // only if that fails too.
  net::post(loop_, [this] {
    if (phase_ == Phase::waiting) connect();
  });
}

void PipelineDriver::close() {
  phase_ = Phase::closed;
  connect_timer_.cancel();
  close_socket();
  connection_.reset();
  pg_ = nullptr;
  syncs_pending_ = 0;
}

std::string PipelineDriver::watch_socket() {
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

void PipelineDriver::close_socket() {
  ++socket_generation_;
  reading_ = false;
  writing_ = false;
  boost::system::error_code ignored;
  if (socket_.is_open()) socket_.close(ignored);
}

}  // namespace attempts::db
