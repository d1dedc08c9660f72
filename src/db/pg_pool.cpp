#include "attempts/db/pg_pool.hpp"

#include <atomic>
#include <boost/asio/post.hpp>
#include <stdexcept>

#include "attempts/db/shard_map.hpp"
#include "pg_connection.hpp"
#include "pqxx_connection.hpp"

namespace attempts::db {

// The store of one event loop: routes each call to one of the loop's connections.
class PgPool::LoopStore final : public AttemptStore {
 public:
  void add(PgConnection& connection) { connections_.push_back(&connection); }

  void execute(StoreCall& call, StoreCompletion& completion) override {
    connection_for(call).submit(call, completion);
  }

 private:
  PgConnection& connection_for(const StoreCall& call) {
    const std::size_t count = connections_.size();
    switch (call.kind) {
      case StoreCall::Kind::ping:
        // Round robin, so over a few probes every connection is exercised.
        return *connections_[next_ping_++ % count];
      case StoreCall::Kind::start_attempt:
        return *connections_[static_cast<std::size_t>(call.student.value_or(0)) % count];
      default:
        return *connections_[slice_of(call.attempt_id, count)];
    }
  }

  // One attempt, one connection, always: its calls take effect in the order they were made.
  // The connection is the slice of the hash range that the attempt's hash falls in (PostgreSQL's
  // hashint8, as Citus hashes the distribution column). Citus gives each shard a contiguous hash
  // range, so on a distributed table each connection serves whole shards (or part of one) and
  // its batches split into few single-shard statements; the choice needs no shard map, so it
  // never changes while shards move. On one PostgreSQL it spreads ids evenly, like id % count.
  static std::size_t slice_of(AttemptId id, std::size_t count) {
    // Signed hash order to unsigned order: INT32_MIN..INT32_MAX to 0..UINT32_MAX.
    const std::uint32_t position = static_cast<std::uint32_t>(citus_hash_int8(id)) ^ 0x80000000u;
    return static_cast<std::size_t>((std::uint64_t{position} * count) >> 32);
  }

  std::vector<PgConnection*> connections_;
  std::size_t next_ping_ = 0;
};

PgPool::PgPool(runtime::EventLoops& loops, PgPoolOptions options)
    : loops_(loops), options_(std::move(options)) {
  if (options_.pool_size < loops.size()) {
    throw std::invalid_argument("the pool needs at least one connection per event loop");
  }
  const std::string conninfo = pool_conninfo(options_.database_url);
  for (std::size_t loop = 0; loop < loops.size(); ++loop) {
    stores_.push_back(std::make_unique<LoopStore>());
  }
  for (std::size_t i = 0; i < options_.pool_size; ++i) {
    const std::size_t loop = i % loops.size();
    gauges_.push_back(std::make_unique<ConnectionGauges>());
    connections_.push_back(std::make_unique<PgConnection>(loops.context(loop), i, conninfo,
                                                          options_, metrics_, *gauges_.back()));
    stores_[loop]->add(*connections_.back());
    connections_.back()->start();
  }
}

PgPool::~PgPool() = default;

AttemptStore& PgPool::store(std::size_t loop) {
  return *stores_.at(loop);
}

std::vector<ConnectionState> PgPool::connection_states() const {
  std::vector<ConnectionState> states;
  states.reserve(gauges_.size());
  for (const auto& gauges : gauges_) states.push_back(gauges->read());
  return states;
}

std::size_t PgPool::pending_calls() const {
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
  auto countdown = std::make_shared<Countdown>();
  countdown->left = connections_.size();
  countdown->on_closed = std::move(on_closed);
  for (std::size_t i = 0; i < connections_.size(); ++i) {
    PgConnection* connection = connections_[i].get();
    boost::asio::post(loops_.context(i % loops_.size()), [connection, countdown] {
      connection->close_when_idle([countdown] {
        if (countdown->left.fetch_sub(1) == 1) countdown->on_closed();
      });
    });
  }
}

}  // namespace attempts::db
