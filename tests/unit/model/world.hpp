#pragma once

// The whole db layer as the service runs it (PgPool: its event loops' routers, the
// connections, their planners, the claims shared by every loop) on top of SimulatedPipelines to a
// SimulatedDatabase, driven one step at a time on one thread by a seeded random choice of what
// happens next: a call arrives at its loop, a backend runs a statement, a connection reads what
// was run, time passes (deadlines), a connection is made or lost. Every call records when it
// arrived and when and what it was told, in steps and ticks, for the checks
// (model/history_check.hpp).

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attempts/db/pg_pool.hpp"
#include "attempts/runtime/event_loops.hpp"
#include "model/simulated_database.hpp"
#include "model/simulated_pipeline.hpp"

namespace attempts::db::model {

// What a call was told.
struct Told {
  bool answered = false;
  StoreOutcome outcome = StoreOutcome::unavailable;
  int tick = 0;  // when
  long step = 0;
  Revision revision = 0;                    // stale_revision: the stored revision
  std::optional<std::string> submitted_at;  // submitted, and a submit's or a load's record
  std::optional<std::string> deadline;      // deadline_passed
  std::string answers;                      // load and submit: the stored answers
};

std::string describe(StoreOutcome outcome);
std::string describe(const StoreCall& call);
std::string describe(const Told& told);

// A call of the generated history: what it asks, where and when it arrives, what it was told.
struct ModelCall final : StoreCompletion {
  StoreCall call;
  std::size_t loop = 0;  // the event loop its client's connection is on
  // The call is deadline_ticks after its arrival; 0: none.
  int deadline_ticks = 0;
  long arrived = -1;  // step
  int arrived_tick = 0;
  Told told;
  const long* step = nullptr;
  const int* tick = nullptr;

  void on_store_complete(StoreCall& completed) override;
};

struct WorldOptions {
  std::size_t loops = 1;
  PgPoolOptions pool;
  // Citus: the table is distributed over `shards` shards on two nodes.
  bool citus = false;
  int shards = 4;
  DatabaseFaults faults;
  // Per step, when possible: a connection is lost (crash, partition or FATAL alike), or a
  // connection attempt fails.
  double loss_chance = 0;
  double unreachable_chance = 0;
  double tick_chance = 0.2;
  double arrival_weight = 1;
  // Time moves only while nothing run waits to be read, so a statement is judged at the tick
  // its caller is told (the sequential model's clock).
  bool tick_only_when_read = false;
};

class World {
 public:
  using Clock = std::chrono::steady_clock;

  World(Table table, WorldOptions options, std::uint64_t seed);
  ~World();

  // Runs `calls` (each arriving at its loop, in order) until every call is answered, nothing is
  // left to run or read and every connection is set up again. False if that takes more than a
  // bound of steps.
  bool run(std::vector<std::unique_ptr<ModelCall>>& calls);

  // Steps a scripted case takes itself (run() takes them at random). Each settles the loops.
  void arrive(ModelCall& model);
  void connect_all();
  // Connection `pipeline` (in the order they were opened: the pool's, then Citus nodes'):
  // its backend runs everything it received; it reads everything its backend ran.
  void run_all_on(std::size_t pipeline);
  void deliver_all_on(std::size_t pipeline);
  void tick();
  void lose(std::size_t pipeline, Loss how);
  // Backends whose client is gone run everything they received.
  void run_orphans();
  Backend* backend_of_pipeline(std::size_t pipeline) { return backend_of(pipeline); }
  // Connects, runs and reads everything until nothing is left, without moving time.
  void quiesce();
  std::size_t pipelines() const { return pipelines_.size(); }

  const SimulatedDatabase& database() const { return database_; }
  const PoolMetrics& metrics() const { return pool_->metrics(); }
  const ClaimTable& claims() const { return pool_->claims(); }
  int tick() const { return tick_; }

  // The simulated clock every connection reads (PoolContext::now).
  static Clock::time_point now();

 private:
  bool settled_and_done(const std::vector<std::unique_ptr<ModelCall>>& calls);
  Backend* backend_of(std::size_t pipeline);
  void settle();
  void advance_time();
  bool pending_replies() const;

  WorldOptions options_;
  std::mt19937_64 random_;
  runtime::EventLoops loops_;
  SimulatedDatabase database_;
  std::vector<SimulatedPipeline*> pipelines_;  // owned by the pool's connections
  std::unique_ptr<PgPool> pool_;
  long step_ = 0;
  int tick_ = 0;
};

}  // namespace attempts::db::model
