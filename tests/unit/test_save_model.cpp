// The db layer against models, driven through the real PgPool, LoopRouter and PgConnection on a
// simulated PostgreSQL (tests/unit/model/): the statements go out as the service sends them, in
// PostgreSQL's binary format, and come back as libpq results; only the server is simulated.
//
// Generated cases mix students, their own, others' and missing attempts, revisions, submits,
// reads and attempt deadlines, and run them with several event loops and connections, pipelining,
// batching, rollbacks and retries, deadlines on calls (504s whose write may still apply), lost
// connections (the server crashed, the network failed while the backend runs on, or the server
// ended the session), and Citus (batches by shard, connections at the shards' nodes, writes that
// a shard split made vanish and that are sent again). Every answer must fit what the simulated
// database did (model/history_check.hpp); where arrival order is one order, every answer must be
// exactly the one the calls applied one at a time in that order would get.
//
// ATTEMPTS_MODEL_SEED=<n> replays a run (each case's seed is printed on failure and can be
// given as ATTEMPTS_MODEL_CASE_SEED=<n> to run that case alone); ATTEMPTS_MODEL_CASES=<n>
// changes the number of cases per test (default 3000).

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "model/history_check.hpp"
#include "model/world.hpp"

namespace attempts::db::model {
namespace {

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

// Whose calls a case holds: students (authentication on), nobody's (off), or both (a mix the
// service never makes, but the batch must still keep apart).
enum class Writers { students, anyone, mixed };

struct Case {
  Table table;
  Calls calls;
  WorldOptions options;
  bool exact = false;  // arrival order is one order: compare with the sequential model too
};

PgPoolOptions pool_options(std::size_t loops, std::size_t extra_connections,
                           std::size_t pipeline_depth, std::size_t max_batch) {
  PgPoolOptions options;
  options.database_url = "postgresql://127.0.0.1:5432/attempts";
  options.pool_size = loops + extra_connections;
  options.pipeline_depth = pipeline_depth;
  options.max_batch = max_batch;
  // Ticks are milliseconds of the simulated clock.
  options.statement_timeout = std::chrono::milliseconds(12);
  options.stall_timeout = std::chrono::hours(1);
  options.durability_check_interval = std::chrono::hours(24);
  return options;
}

Case generate(std::uint64_t seed, bool exact) {
  std::mt19937_64 random(seed);
  const auto pick = [&](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random);
  };
  const auto chance = [&](double p) { return std::bernoulli_distribution(p)(random); };
  Case c;
  c.exact = exact;
  const int students = pick(1, 4);
  const int attempts = pick(1, 5);
  for (AttemptId id = 1; id <= attempts; ++id) {
    AttemptState& attempt = c.table[id];
    attempt.owner = pick(1, students);
    attempt.revision = chance(0.5) ? pick(0, 4) : 0;
    if (chance(0.1)) attempt.submitted_at = "submitted@-1";
    if (chance(0.3)) attempt.deadline_tick = pick(0, 30);
  }
  const Writers writers = chance(0.8)   ? Writers::students
                          : chance(0.5) ? Writers::anyone
                                        : Writers::mixed;

  WorldOptions& options = c.options;
  options.loops = exact ? 1 : static_cast<std::size_t>(pick(1, 3));
  options.pool = pool_options(options.loops, static_cast<std::size_t>(pick(0, 2)),
                              static_cast<std::size_t>(pick(1, 4)),
                              chance(0.5) ? 256 : static_cast<std::size_t>(pick(1, 6)));
  options.citus = chance(0.25);
  options.pool.citus_entry = chance(0.5) ? CitusEntry::nodes : CitusEntry::coordinator;
  options.faults.rollback_chance = chance(0.3) ? 0.2 : 0;
  options.pool.history = chance(0.8);
  options.tick_chance = chance(0.5) ? 0.3 : 0;
  options.arrival_weight = chance(0.5) ? 1 : 4;
  options.tick_only_when_read = exact;
  // The calls of one student's connection arrive at one loop; a student with two tabs is on two.
  std::vector<std::size_t> loop_of(static_cast<std::size_t>(students) + 1);
  for (auto& loop : loop_of)
    loop = static_cast<std::size_t>(pick(0, static_cast<int>(options.loops) - 1));
  const bool two_tabs = chance(0.5);
  int deadline_ticks = 0;
  if (!exact) {
    if (options.citus) options.faults.vanish_chance = chance(0.5) ? 0.15 : 0;
    options.loss_chance = chance(0.4) ? 0.03 : 0;
    options.unreachable_chance = options.loss_chance > 0 && chance(0.5) ? 0.3 : 0;
    options.faults.survives_terminate_chance = chance(0.3) ? 0.3 : 0;
    if (chance(0.6)) {
      deadline_ticks = pick(1, 12);
      options.tick_chance = chance(0.5) ? 0.3 : 0.8;
    }
  }

  const int count = pick(1, 40);
  for (int i = 0; i < count; ++i) {
    auto model = std::make_unique<ModelCall>();
    StoreCall& call = model->call;
    const int kind = pick(0, 99);
    call.kind = kind < 82   ? StoreCall::Kind::save_answers
                : kind < 91 ? StoreCall::Kind::load_attempt
                            : StoreCall::Kind::submit_attempt;
    call.attempt_id = pick(1, attempts + 1);  // attempts + 1 does not exist
    const bool anyone = writers == Writers::anyone || (writers == Writers::mixed && chance(0.3));
    if (!anyone) call.student = pick(1, students);
    if (call.kind == StoreCall::Kind::save_answers) {
      if (chance(0.5)) call.revision = pick(1, 8);
      call.answers_json = R"({"1":[)" + std::to_string(i + 1) + "]}";  // unique per call
    }
    const std::size_t home = loop_of[static_cast<std::size_t>(call.student.value_or(0))];
    model->loop = two_tabs && chance(0.5)
                      ? static_cast<std::size_t>(pick(0, static_cast<int>(options.loops) - 1))
                      : home;
    model->deadline_ticks = deadline_ticks;
    c.calls.push_back(std::move(model));
  }
  return c;
}

std::string describe_case(const Case& c) {
  const auto& o = c.options;
  std::ostringstream out;
  out << o.loops << " loops, " << o.pool.pool_size << " connections, depth "
      << o.pool.pipeline_depth << ", max batch " << o.pool.max_batch
      << (o.citus ? o.pool.citus_entry == CitusEntry::nodes ? ", Citus at the nodes" : ", Citus"
                  : "")
      << (o.pool.history ? ", history" : ", no history") << ", rollbacks "
      << o.faults.rollback_chance << ", vanishing rows " << o.faults.vanish_chance << ", losses "
      << o.loss_chance << ", unreachable " << o.unreachable_chance << ", call deadline "
      << (c.calls.empty() ? 0 : c.calls.front()->deadline_ticks) << " ticks\n";
  for (const auto& [id, attempt] : c.table) {
    out << "attempt " << id << ": owner " << attempt.owner << ", revision " << attempt.revision
        << (attempt.submitted_at ? ", submitted" : "")
        << (attempt.deadline_tick ? ", deadline tick " + std::to_string(*attempt.deadline_tick)
                                  : std::string())
        << "\n";
  }
  for (const auto& call : c.calls) {
    out << "  " << describe(call->call) << " at loop " << call->loop << " (step " << call->arrived
        << "): " << describe(call->told) << "\n";
  }
  return out.str();
}

// What the cases of a run went through, to see that they reach what they are meant to.
struct Coverage {
  std::uint64_t calls = 0;
  std::uint64_t unknown = 0;
  std::uint64_t claim_waits = 0;
  std::uint64_t lost_holds = 0;
  std::uint64_t backends_ended = 0;
  std::uint64_t retried = 0;
  std::uint64_t orphan_writes = 0;

  void add(const World& world) {
    const PoolMetrics& m = world.metrics();
    unknown += m.outcomes_unknown.value();
    claim_waits += m.claim_waits.value();
    lost_holds += m.lost_session_holds.value();
    backends_ended += m.lost_backends_ended.value();
    retried += m.writes_retried.value();
    for (const auto& change : world.database().changes()) orphan_writes += change.by_orphan;
  }
};

// What is wrong with the case once run, one line each; empty if nothing.
std::string run_and_check(Case& c, std::uint64_t seed, Coverage& coverage) {
  World world(c.table, c.options, seed ^ 0x5bd1e995u);
  const bool ended = world.run(c.calls);
  coverage.calls += c.calls.size();
  coverage.add(world);
  if (!ended) return "the calls were not all answered within the step bound\n";
  std::string problems;
  // At rest, with every connection set up again, no attempt is claimed by anyone.
  for (AttemptId id = 1; id <= static_cast<AttemptId>(c.table.size()) + 1; ++id) {
    if (world.claims().holder(id) != 0) {
      problems += "attempt " + std::to_string(id) + " is still claimed by connection " +
                  std::to_string(world.claims().holder(id) - 1) + " at rest\n";
    }
  }
  for (const auto& line : check_history(c.table, c.calls, world.database()))
    problems += line + "\n";
  for (const auto& line : check_ledger(c.calls, world.database(), c.options.pool.history)) {
    problems += line + "\n";
  }
  if (c.exact) {
    problems += compare_with_sequential_model(c.table, c.calls, world.database().table(),
                                              c.options.faults.rollback_chance > 0);
  }
  return problems;
}

// The connections log every rollback and loss they see; thousands of cases would bury a failure.
class QuietLogs {
 public:
  QuietLogs() : level_(spdlog::get_level()) { spdlog::set_level(spdlog::level::off); }
  ~QuietLogs() { spdlog::set_level(level_); }

 private:
  spdlog::level::level_enum level_;
};

void run_cases(bool exact) {
  const QuietLogs quiet;
  const std::uint64_t seed = env_number("ATTEMPTS_MODEL_SEED", std::random_device{}());
  const std::uint64_t only = env_number("ATTEMPTS_MODEL_CASE_SEED", 0);
  const std::uint64_t cases = only != 0 ? 1 : env_number("ATTEMPTS_MODEL_CASES", 3000);
  std::size_t failures = 0;
  Coverage coverage;
  for (std::uint64_t i = 0; i < cases && failures < 3; ++i) {
    const std::uint64_t case_seed = only != 0 ? only : seed + i;
    Case c = generate(case_seed, exact);
    const std::string problems = run_and_check(c, case_seed, coverage);
    if (problems.empty()) continue;
    ++failures;
    ADD_FAILURE() << "ATTEMPTS_MODEL_CASE_SEED=" << case_seed << " (run seed " << seed << ", case "
                  << i << ")\n"
                  << problems << describe_case(c);
  }
  std::cout << "[ model ] " << cases << " cases, seed " << seed
            << " (ATTEMPTS_MODEL_SEED replays them): " << coverage.calls << " calls, "
            << coverage.unknown << " told unknown, " << coverage.claim_waits
            << " waits for another connection's statement, " << coverage.lost_holds
            << " writes held after a lost connection, " << coverage.backends_ended
            << " lost backends seen gone, " << coverage.orphan_writes
            << " writes applied by a backend whose client was gone, " << coverage.retried
            << " writes sent again\n";
}

TEST(SaveModelTest, EveryCallIsToldWhatItWouldBeToldOneAtATimeInArrivalOrder) {
  run_cases(true);
}

TEST(SaveModelTest, AcrossLoopsDeadlinesAndLostConnectionsEveryAnswerFitsTheDatabasesHistory) {
  run_cases(false);
}

// ---- named cases ------------------------------------------------------------------------

StoreCall save(AttemptId id, StudentId student, int value,
               std::optional<Revision> revision = std::nullopt) {
  StoreCall call;
  call.kind = StoreCall::Kind::save_answers;
  call.attempt_id = id;
  call.student = student;
  call.revision = revision;
  call.answers_json = R"({"1":[)" + std::to_string(value) + "]}";
  return call;
}

Calls make_calls(std::vector<StoreCall> calls, std::size_t loop = 0, int deadline_ticks = 0) {
  Calls models;
  for (auto& call : calls) {
    models.push_back(std::make_unique<ModelCall>());
    models.back()->call = std::move(call);
    models.back()->loop = loop;
    models.back()->deadline_ticks = deadline_ticks;
  }
  return models;
}

// Queues `calls` on one loop while the connection is still connecting, so that all of them go
// out together, and returns what each was told; the table is what the database holds after.
std::vector<Told> run_together(Table& table, std::vector<StoreCall> calls,
                               std::size_t max_batch = 256) {
  Calls models = make_calls(std::move(calls));
  WorldOptions options;
  options.pool = pool_options(1, 0, 1, max_batch);
  World world(table, options, 1);
  for (auto& model : models) world.arrive(*model);
  world.quiesce();
  std::vector<Told> told;
  for (const auto& model : models) told.push_back(model->told);
  EXPECT_EQ(check_history(table, models, world.database()), std::vector<std::string>{});
  table = world.database().table();
  return told;
}

// The issue's report: student 46 writing attempt 45 (student 45's) while student 45 saves it.
// Queued together, the intruder's writes were answered with the owner's fate and the owner's
// with the intruder's (404 for the owner's own saves, 204 for writes never applied).
TEST(SaveModelTest, AnotherStudentsWritesNeverDecideTheOwnersOutcome) {
  Table table;
  table[45].owner = 45;
  std::vector<StoreCall> calls = {save(45, 45, 0)};
  for (int i = 1; i <= 6; ++i) {
    calls.push_back(save(45, 46, 100 + i));
    calls.push_back(save(45, 45, i));
  }
  calls.push_back(save(45, 46, 999));  // the intruder's write last
  const auto told = run_together(table, calls);

  for (std::size_t i = 0; i < calls.size(); ++i) {
    const bool owners = calls[i].student == 45;
    EXPECT_EQ(told[i].outcome, owners ? StoreOutcome::done : StoreOutcome::not_found)
        << "call " << i << ": " << describe(calls[i]) << " told " << describe(told[i]);
  }
  EXPECT_EQ(table[45].answers, R"({"1":[6]})");
}

// With revisions, an intruder's stale write next to the owner's was answered 409 with the
// owner's stored revision; it must be 404 and reveal nothing.
TEST(SaveModelTest, AnIntrudersRevisionedWriteIs404WithoutTheOwnersRevision) {
  Table table;
  table[45].owner = 45;
  table[45].revision = 10;
  const auto told = run_together(
      table, {save(45, 45, 0, 11), save(45, 46, 1, 3), save(45, 45, 2, 12), save(45, 46, 3, 99)});
  EXPECT_EQ(told[0].outcome, StoreOutcome::done);
  EXPECT_EQ(told[1].outcome, StoreOutcome::not_found);
  EXPECT_EQ(told[1].revision, 0) << "the intruder was told a revision";
  EXPECT_EQ(told[2].outcome, StoreOutcome::done);
  EXPECT_EQ(told[3].outcome, StoreOutcome::not_found);
  EXPECT_EQ(told[3].revision, 0);
  EXPECT_EQ(table[45].revision, 12);
  EXPECT_EQ(table[45].answers, R"({"1":[2]})");
}

TEST(SaveModelTest, TheOwnersQueuedRevisionsAreJudgedOneAtATime) {
  Table table;
  table[7].owner = 1;
  const auto told = run_together(table, {save(7, 1, 0, 1), save(7, 1, 3, 3), save(7, 1, 9, 9),
                                         save(7, 1, 4, 4), save(7, 1, 5, 9)});
  EXPECT_EQ(told[1].outcome, StoreOutcome::done);
  EXPECT_EQ(told[2].outcome, StoreOutcome::done);
  EXPECT_EQ(told[3].outcome, StoreOutcome::stale_revision);
  EXPECT_EQ(told[3].revision, 9);
  EXPECT_EQ(told[4].outcome, StoreOutcome::stale_revision);
  EXPECT_EQ(table[7].answers, R"({"1":[9]})");
}

TEST(SaveModelTest, WithoutRevisionsAWritersQueuedSavesShareOneRowAndTheLastIsStored) {
  Table table;
  table[7].owner = 1;
  table[8].owner = 2;
  const auto told = run_together(
      table, {save(8, 2, 0), save(7, 1, 1), save(7, 1, 2), save(8, 2, 3), save(7, 1, 4)});
  for (const auto& t : told) EXPECT_EQ(t.outcome, StoreOutcome::done) << describe(t);
  EXPECT_EQ(table[7].answers, R"({"1":[4]})");
  EXPECT_EQ(table[8].answers, R"({"1":[3]})");
}

// Issue 27's reproduction, step by step: two event loops, two statements in flight per
// connection. The student's write W goes out on loop 0 and waits (a row lock elsewhere in its
// batch); its deadline passes and it is answered 504 while its statement goes on. The student's
// next write W2 arrives at loop 1. W2 must not apply before W can no longer apply: it waits for
// W's statement, and the attempt ends holding W2, which was told 204. Before the ClaimTable, W2
// went out at once, was told 204, and W's commit overwrote it.
// Attempt 1 of student 7, and the db layer with two event loops, one pool connection each
// (connection 0 on loop 0, 1 on loop 1), set up.
class TwoLoopsTest : public testing::Test {
 protected:
  TwoLoopsTest() { table[1].owner = 7; }

  std::unique_ptr<World> make_world(std::size_t pipeline_depth) const {
    WorldOptions options;
    options.loops = 2;
    options.pool = pool_options(2, 0, pipeline_depth, 256);
    auto world = std::make_unique<World>(table, options, 1);
    world->quiesce();
    return world;
  }

  Table table;
};

TEST_F(TwoLoopsTest, AWriteAnsweredAfterAnEarlierOnesTimeoutIsNeverOverwrittenByIt) {
  auto made = make_world(2);
  World& world = *made;
  Calls first = make_calls({save(1, 7, 111)}, 0, 5);
  world.arrive(*first[0]);
  for (int i = 0; i < 6; ++i) world.tick();  // W's backend waits: its deadline passes
  ASSERT_TRUE(first[0]->told.answered);
  EXPECT_EQ(first[0]->told.outcome, StoreOutcome::unknown);

  Calls second = make_calls({save(1, 7, 222)}, 1, 50);
  world.arrive(*second[0]);
  world.run_all_on(1);  // whatever loop 1 sent runs first...
  world.deliver_all_on(1);
  world.run_all_on(0);  // ...then W's statement commits
  world.deliver_all_on(0);
  world.quiesce();

  ASSERT_TRUE(second[0]->told.answered);
  EXPECT_EQ(second[0]->told.outcome, StoreOutcome::done) << describe(second[0]->told);
  EXPECT_EQ(world.database().table().at(1).answers, R"({"1":[222]})")
      << "the write told 204 was overwritten by the one answered 504 before it was sent";
  Calls all;
  all.push_back(std::move(first[0]));
  all.push_back(std::move(second[0]));
  EXPECT_EQ(check_history(table, all, world.database()), std::vector<std::string>{});
  EXPECT_EQ(world.metrics().claim_waits.value(), 1u);
}

// A connection lost without a word from the server (the network failed) leaves its backend
// running what it received: the write in it may still commit. The attempt's next write, on
// another loop, waits until the next session on that server has seen the old backend gone.
TEST_F(TwoLoopsTest, AfterALostConnectionTheNextWriteWaitsUntilTheOldBackendIsGone) {
  auto made = make_world(1);
  World& world = *made;
  Calls first = make_calls({save(1, 7, 111)}, 0);
  world.arrive(*first[0]);  // sent on connection 0; its backend has it, not run yet
  Backend* orphan = world.backend_of_pipeline(0);
  ASSERT_NE(orphan, nullptr);
  world.lose(0, Loss::partition);
  EXPECT_EQ(first[0]->told.outcome, StoreOutcome::unknown);

  Calls second = make_calls({save(1, 7, 222)}, 1);
  world.arrive(*second[0]);
  world.run_all_on(1);
  world.deliver_all_on(1);
  EXPECT_FALSE(second[0]->told.answered) << "sent while the lost backend could still apply 111";
  world.run_orphans();  // the old backend commits 111 now...
  world.quiesce();      // ...and only then does connection 0's new session release the attempt
  EXPECT_EQ(second[0]->told.outcome, StoreOutcome::done);
  EXPECT_EQ(world.database().table().at(1).answers, R"({"1":[222]})");
  EXPECT_EQ(world.metrics().lost_session_holds.value(), 1u);
}

}  // namespace
}  // namespace attempts::db::model
