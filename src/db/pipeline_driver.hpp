#pragma once

#include <libpq-fe.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>

#include "attempts/db/pool_metrics.hpp"
#include "pqxx_connection.hpp"
#include "statement_codec.hpp"
#include "statement_pipeline.hpp"

namespace attempts::db {

// The libpq side of one pool connection, driven from its event loop without ever blocking:
// connecting (PQconnectStart/PQconnectPoll) with a timeout and, after failures, a backoff;
// pipeline mode; statements sent each with its sync (so each is its own transaction) and
// flushed as the socket takes them; results read as they arrive and handed to the handler in
// the order the statements were sent. It knows nothing of what the statements mean.
class PipelineDriver final : public StatementPipeline {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds reconnect_initial_delay{50};
    std::chrono::milliseconds reconnect_max_delay{1000};
  };

  PipelineDriver(boost::asio::io_context& loop, std::size_t index, std::string conninfo,
                 Options options, PoolMetrics& metrics, Handler& handler);
  ~PipelineDriver() override;

  PipelineDriver(const PipelineDriver&) = delete;
  PipelineDriver& operator=(const PipelineDriver&) = delete;

  // StatementPipeline
  void start() override;
  void set_up() override;
  bool open() const override { return phase_ == Phase::open; }
  bool down() const override { return phase_ == Phase::waiting || phase_ == Phase::closed; }
  unsigned failed_connects() const override { return failed_connects_; }
  bool send(const EncodedStatement& statement) override;
  bool send_query(const char* text) override;
  bool send_setup(std::span<const char* const> names, std::span<const char* const> texts,
                  std::span<const std::span<const unsigned>> types, const char* setup_query,
                  std::span<const char* const> setup_values) override;
  void flush() override;
  void fail(std::string_view why, bool cancel = false, bool connecting = false) override;
  void close() override;

 private:
  enum class Phase { waiting, connecting, open, closed };

  void connect();
  void continue_connecting(PostgresPollingStatusType status);
  void on_connected();
  void connect_failed(std::string_view why);
  Clock::duration next_backoff();
  void wait_readable();
  void on_readable(boost::system::error_code ec);
  void read_results();
  void give_up(std::string_view why, bool cancel, bool connecting);
  std::string watch_socket();
  void close_socket();
  bool sent(bool ok);

  boost::asio::io_context& loop_;
  const std::size_t index_;
  const std::string conninfo_;
  const Options options_;
  PoolMetrics& metrics_;
  Handler& handler_;

  Phase phase_ = Phase::waiting;
  std::unique_ptr<PqxxConnection> connection_;
  PGconn* pg_ = nullptr;  // connection_'s libpq handle, while there is one
  boost::asio::posix::basic_stream_descriptor<boost::asio::io_context::executor_type> socket_;
  // Socket waits started before the socket was last released are stale when they complete.
  std::uint64_t socket_generation_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool set_up_ = false;
  std::size_t syncs_pending_ = 0;
  // Set while results are being handled; acted on once they are.
  bool handling_ = false;
  struct Failure {
    std::string why;
    bool cancel = false;
    bool connecting = false;
  };
  std::optional<Failure> deferred_failure_;

  using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                  boost::asio::io_context::executor_type>;
  Timer connect_timer_;  // backoff before connecting, then the connect timeout
  unsigned failed_connects_ = 0;
  std::minstd_rand jitter_;
};

}  // namespace attempts::db
