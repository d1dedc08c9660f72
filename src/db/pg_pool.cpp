#include "attempts/db/pg_pool.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <stdexcept>

#include "loop_router.hpp"
#include "pg_connection.hpp"
#include "pipeline_driver.hpp"
#include "pqxx_connection.hpp"

namespace attempts::db {

namespace net = boost::asio;

PgPool::PgPool(runtime::EventLoops& loops, PgPoolOptions options, MakePipeline make_pipeline,
               Clock::time_point (*now)())
    : loops_(loops),
      options_(std::move(options)),
      make_pipeline_(std::move(make_pipeline)),
      claims_(ClaimTable::kDefaultStripes, &metrics_.claim_waits),
      wake_pending_(std::make_unique<std::atomic<bool>[]>(loops.size())),
      context_(std::make_unique<PoolContext>(
          PoolContext{options_, metrics_, claims_, [this] { claims_released(); }, now})) {
  if (!make_pipeline_) {
    make_pipeline_ = [this](net::io_context& loop, std::size_t index, const std::string& conninfo,
                            PipelineHandler& handler) -> std::unique_ptr<StatementPipeline> {
      const PipelineDriver::Options driver_options{
          options_.connect_timeout, options_.reconnect_initial_delay, options_.reconnect_max_delay};
      return std::make_unique<PipelineDriver>(loop, index, conninfo, driver_options, metrics_,
                                              handler);
    };
  }
  if (options_.pool_size < loops.size()) {
    throw std::invalid_argument("the pool needs at least one connection per event loop");
  }
  const std::string conninfo = pool_conninfo(options_.database_url);
  // Node connections only where batches go by shard: Citus, not turned off.
  const bool to_nodes =
      options_.citus_entry == CitusEntry::nodes && options_.citus != CitusMode::off;
  for (std::size_t loop = 0; loop < loops.size(); ++loop) {
    stores_.push_back(std::make_unique<LoopRouter>(
        to_nodes, [this, loop](const std::string& node) { return open_node(loop, node); }));
  }
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < options_.pool_size; ++i) {
    const std::size_t loop = i % loops.size();
    stores_[loop]->add(add_connection(loop, conninfo));
  }
}

PgConnection& PgPool::add_connection(std::size_t loop, const std::string& conninfo) {
  const std::size_t index = connections_.size();
  gauges_.push_back(std::make_unique<ConnectionGauges>());
  net::io_context& context = loops_.context(loop);
  connections_.push_back(std::make_unique<PgConnection>(
      context, index, *context_, *gauges_.back(),
      [&](PipelineHandler& handler) { return make_pipeline_(context, index, conninfo, handler); }));
  loop_of_.push_back(loop);
  PgConnection& connection = *connections_.back();
  connection.start();
  return connection;
}

PgConnection* PgPool::open_node(std::size_t loop, const std::string& node) {
  std::string conninfo;
  try {
    conninfo = pool_conninfo(options_.database_url, node);
  } catch (const std::invalid_argument& error) {
    spdlog::error("Citus node {}: cannot connect to it: {}", node, error.what());
    return nullptr;
  }
  // One lock from the check to the push: close_when_idle() closes every connection it sees, and
  // a connection opened once it has started would never be closed.
  std::lock_guard lock(mutex_);
  if (closing_) return nullptr;
  spdlog::info("event loop {}: opening a connection to Citus node {}, for its shards' writes", loop,
               node);
  return &add_connection(loop, conninfo);
}

void PgPool::check_deadlines() {
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < connections_.size(); ++i) {
    PgConnection* connection = connections_[i].get();
    net::post(loops_.context(loop_of_[i]), [connection] { connection->check_deadlines(); });
  }
}

void PgPool::claims_released() {
  if (destroying_.load(std::memory_order_acquire)) return;
  for (std::size_t loop = 0; loop < loops_.size(); ++loop) {
    if (wake_pending_[loop].exchange(true, std::memory_order_acq_rel)) continue;
    net::post(loops_.context(loop), [this, loop] {
      wake_pending_[loop].store(false, std::memory_order_release);
      stores_[loop]->wake();
    });
  }
}

PgPool::~PgPool() {
  destroying_.store(true, std::memory_order_release);
  // Connections before the context and claims they use.
  connections_.clear();
}

AttemptStore& PgPool::store(std::size_t loop) {
  return *stores_.at(loop);
}

std::vector<ConnectionState> PgPool::connection_states() const {
  std::lock_guard lock(mutex_);
  std::vector<ConnectionState> states;
  states.reserve(gauges_.size());
  for (const auto& gauges : gauges_) states.push_back(gauges->read());
  return states;
}

std::size_t PgPool::pending_calls() const {
  std::lock_guard lock(mutex_);
  std::size_t pending = 0;
  for (const auto& gauges : gauges_) {
    const auto state = gauges->read();
    pending += state.queue_depth + state.in_flight;
  }
  return pending;
}

void PgPool::close_when_idle(std::function<void()> on_closed) {
  struct Countdown {
    std::atomic<std::size_t> left;
    std::function<void()> on_closed;
  };
  std::lock_guard lock(mutex_);
  closing_ = true;
  auto countdown = std::make_shared<Countdown>();
  countdown->left = connections_.size();
  countdown->on_closed = std::move(on_closed);
  for (std::size_t i = 0; i < connections_.size(); ++i) {
    PgConnection* connection = connections_[i].get();
    boost::asio::post(loops_.context(loop_of_[i]), [connection, countdown] {
      connection->close_when_idle([countdown] {
        if (countdown->left.fetch_sub(1) == 1) countdown->on_closed();
      });
    });
  }
}

}  // namespace attempts::db
