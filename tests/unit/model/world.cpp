#include "model/world.hpp"

#include <algorithm>
#include <stdexcept>

namespace attempts::db::model {
namespace {

// The simulated clock: far from the real one, so that the connections' own timers (which wait
// on the real clock) never fire during a test; the world runs their deadline checks itself.
int simulated_ticks = 0;

World::Clock::time_point simulated_base() {
  static const auto base = World::Clock::now() + std::chrono::hours(24 * 365 * 10);
  return base;
}

}  // namespace

std::string describe(StoreOutcome outcome) {
  switch (outcome) {
    case StoreOutcome::done:
      return "done";
    case StoreOutcome::replayed:
      return "replayed";
    case StoreOutcome::not_found:
      return "not_found";
    case StoreOutcome::submitted:
      return "submitted";
    case StoreOutcome::deadline_passed:
      return "deadline_passed";
    case StoreOutcome::stale_revision:
      return "stale_revision";
    case StoreOutcome::key_reused:
      return "key_reused";
    case StoreOutcome::unavailable:
      return "unavailable";
    case StoreOutcome::overloaded:
      return "overloaded";
    case StoreOutcome::unknown:
      return "unknown";
  }
  return "?";
}

std::string describe(const StoreCall& call) {
  std::string text = call.kind == StoreCall::Kind::save_answers     ? "save"
                     : call.kind == StoreCall::Kind::submit_attempt ? "submit"
                     : call.kind == StoreCall::Kind::load_attempt   ? "load"
                                                                    : "other";
  text += " attempt " + std::to_string(call.attempt_id) + " by " +
          (call.student ? std::to_string(*call.student) : std::string("anyone"));
  if (call.revision) text += " revision " + std::to_string(*call.revision);
  if (call.kind == StoreCall::Kind::save_answers) text += " " + call.answers_json;
  return text;
}

std::string describe(const Told& told) {
  if (!told.answered) return "(not answered)";
  // Appended piece by piece: GCC 12 sees overlaps that are not there in "literal" + string.
  std::string text = describe(told.outcome);
  if (told.outcome == StoreOutcome::stale_revision) {
    text.append(" ").append(std::to_string(told.revision));
  }
  if (told.outcome == StoreOutcome::submitted)
    text.append(" ").append(told.submitted_at.value_or("?"));
  if (told.outcome == StoreOutcome::deadline_passed)
    text.append(" ").append(told.deadline.value_or("?"));
  if (!told.answers.empty()) text.append(" answers ").append(told.answers);
  return text.append(" @step ")
      .append(std::to_string(told.step))
      .append(" tick ")
      .append(std::to_string(told.tick));
}

void ModelCall::on_store_complete(StoreCall& completed) {
  if (told.answered) throw std::logic_error("a call was answered twice: " + describe(call));
  told.answered = true;
  told.outcome = completed.outcome;
  told.tick = *tick;
  told.step = *step;
  told.revision = completed.record.revision;
  told.submitted_at = completed.record.submitted_at;
  told.deadline = completed.record.deadline;
  if (completed.kind != StoreCall::Kind::save_answers) told.answers = completed.record.answers_json;
}

World::Clock::time_point World::now() {
  return simulated_base() + std::chrono::milliseconds(simulated_ticks);
}

World::World(Table table, WorldOptions options, std::uint64_t seed)
    : options_(std::move(options)),
      random_(seed),
      loops_(options_.loops),
      database_(std::move(table), options_.faults, random_) {
  simulated_ticks = 0;
  if (options_.citus) database_.distribute(options_.shards, {"127.0.0.1:9701", "127.0.0.1:9702"});
  const int statement_timeout_ticks = static_cast<int>(options_.pool.statement_timeout.count());
  pool_ = std::make_unique<PgPool>(
      loops_, options_.pool,
      [this, statement_timeout_ticks](boost::asio::io_context&, std::size_t, const std::string&,
                                      PipelineHandler& handler) {
        auto pipeline =
            std::make_unique<SimulatedPipeline>(database_, handler, statement_timeout_ticks);
        pipelines_.push_back(pipeline.get());
        return std::unique_ptr<StatementPipeline>(std::move(pipeline));
      },
      &World::now);
  settle();
}

World::~World() {
  pool_.reset();
}

void World::settle() {
  // Everything posted (flushes, wake-ups, deadline checks) runs before the next step.
  for (int round = 0; round < 10000; ++round) {
    std::size_t ran = 0;
    for (std::size_t loop = 0; loop < loops_.size(); ++loop) ran += loops_.context(loop).poll();
    if (ran == 0) return;
  }
  throw std::logic_error("the event loops never settled");
}

bool World::pending_replies() const {
  return std::any_of(pipelines_.begin(), pipelines_.end(),
                     [](const SimulatedPipeline* pipeline) { return pipeline->has_replies(); });
}

void World::advance_time() {
  ++tick_;
  simulated_ticks = tick_;
  database_.set_time(tick_, step_);
  // A lost backend's statement_timeout ends it before anyone looks at the time.
  database_.end_timed_out_orphans();
  pool_->check_deadlines();
}

bool World::settled_and_done(const std::vector<std::unique_ptr<ModelCall>>& calls) {
  for (const auto& call : calls) {
    if (call->arrived < 0 || !call->told.answered) return false;
  }
  const bool connected = std::none_of(pipelines_.begin(), pipelines_.end(),
                                      [](const SimulatedPipeline* p) { return p->may_connect(); });
  return connected && database_.runnable_count() == 0 && !pending_replies();
}

void World::arrive(ModelCall& model) {
  model.step = &step_;
  model.tick = &tick_;
  model.arrived = step_;
  model.arrived_tick = tick_;
  model.call.deadline = model.deadline_ticks > 0
                            ? now() + std::chrono::milliseconds(model.deadline_ticks)
                            : Clock::time_point::max();
  pool_->store(model.loop).execute(model.call, model);
  settle();
  ++step_;
}

void World::connect_all() {
  for (std::size_t i = 0; i < pipelines_.size(); ++i) {
    if (pipelines_[i]->may_connect()) pipelines_[i]->connect(true);
    settle();
  }
  ++step_;
}

Backend* World::backend_of(std::size_t pipeline) {
  return pipelines_.at(pipeline)->backend();
}

void World::run_all_on(std::size_t pipeline) {
  database_.set_time(tick_, step_);
  if (Backend* backend = backend_of(pipeline)) {
    while (backend->alive && !backend->received.empty()) database_.run_next(*backend);
  }
  ++step_;
}

void World::deliver_all_on(std::size_t pipeline) {
  while (pipelines_.at(pipeline)->has_replies()) {
    pipelines_[pipeline]->deliver(1000);
    settle();
  }
  ++step_;
}

void World::lose(std::size_t pipeline, Loss how) {
  pipelines_.at(pipeline)->lose(how);
  settle();
  ++step_;
}

void World::run_orphans() {
  database_.set_time(tick_, step_);
  for (Backend* backend : database_.runnable()) {
    if (!backend->orphan) continue;
    while (backend->alive && !backend->received.empty()) database_.run_next(*backend);
  }
  ++step_;
}

void World::tick() {
  advance_time();
  settle();
  ++step_;
}

void World::quiesce() {
  for (int round = 0; round < 1000; ++round) {
    bool any = false;
    for (std::size_t i = 0; i < pipelines_.size(); ++i) {
      const bool work = pipelines_[i]->may_connect() || pipelines_[i]->has_replies() ||
                        (backend_of(i) != nullptr && !backend_of(i)->received.empty());
      if (!work) continue;
      any = true;
      connect_all();
      run_all_on(i);
      deliver_all_on(i);
    }
    if (!any) return;
  }
  throw std::logic_error("the world never quiesced");
}

bool World::run(std::vector<std::unique_ptr<ModelCall>>& calls) {
  std::size_t next = 0;
  const long most_steps = 400 * static_cast<long>(calls.size() + 10);
  std::uniform_real_distribution<double> unit(0, 1);
  for (step_ = 0; step_ < most_steps; ++step_) {
    database_.set_time(tick_, step_);
    settle();
    if (next == calls.size() && settled_and_done(calls)) return true;

    // What may happen now, with its weight.
    struct Choice {
      enum Kind { arrive, run_statement, deliver, connect, tick, lose } kind;
      double weight;
    };
    std::vector<Choice> choices;
    if (next < calls.size()) choices.push_back({Choice::arrive, options_.arrival_weight});
    if (database_.runnable_count() > 0) choices.push_back({Choice::run_statement, 1});
    if (pending_replies()) choices.push_back({Choice::deliver, 1});
    const bool connectable = std::any_of(pipelines_.begin(), pipelines_.end(),
                                         [](auto* pipeline) { return pipeline->may_connect(); });
    if (connectable) choices.push_back({Choice::connect, 1});
    if (!options_.tick_only_when_read || !pending_replies()) {
      choices.push_back({Choice::tick, options_.tick_chance});
    }
    if (options_.loss_chance > 0) choices.push_back({Choice::lose, options_.loss_chance});
    double total = 0;
    for (const auto& choice : choices) total += choice.weight;
    double pick = unit(random_) * total;
    Choice::Kind kind = choices.back().kind;
    for (const auto& choice : choices) {
      if (pick < choice.weight) {
        kind = choice.kind;
        break;
      }
      pick -= choice.weight;
    }

    switch (kind) {
      case Choice::arrive:
        arrive(*calls[next++]);
        break;
      case Choice::run_statement: {
        auto backends = database_.runnable();
        database_.run_next(
            *backends[std::uniform_int_distribution<std::size_t>(0, backends.size() - 1)(random_)]);
        break;
      }
      case Choice::deliver: {
        std::vector<SimulatedPipeline*> ready;
        for (auto* pipeline : pipelines_) {
          if (pipeline->has_replies()) ready.push_back(pipeline);
        }
        ready[std::uniform_int_distribution<std::size_t>(0, ready.size() - 1)(random_)]->deliver(
            std::uniform_int_distribution<std::size_t>(1, 3)(random_));
        break;
      }
      case Choice::connect: {
        std::vector<SimulatedPipeline*> waiting;
        for (auto* pipeline : pipelines_) {
          if (pipeline->may_connect()) waiting.push_back(pipeline);
        }
        waiting[std::uniform_int_distribution<std::size_t>(0, waiting.size() - 1)(random_)]
            ->connect(unit(random_) >= options_.unreachable_chance);
        break;
      }
      case Choice::tick:
        advance_time();
        break;
      case Choice::lose: {
        std::vector<SimulatedPipeline*> open;
        for (auto* pipeline : pipelines_) {
          if (pipeline->may_lose()) open.push_back(pipeline);
        }
        if (open.empty()) break;
        const Loss how = static_cast<Loss>(std::uniform_int_distribution<int>(0, 2)(random_));
        open[std::uniform_int_distribution<std::size_t>(0, open.size() - 1)(random_)]->lose(how);
        break;
      }
    }
  }
  return false;
}

}  // namespace attempts::db::model
