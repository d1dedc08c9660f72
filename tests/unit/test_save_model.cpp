// The pure save path against a sequential model: for generated mixes of students, attempts
// (their own, others' and missing ones), revisions, submits, reads and deadlines, sent through
// CallQueue, SavePlanner and SaveBatch as a connection sends them (pipelined, batched, rolled
// back and retried) to a simulated table, every call's outcome must be the one it gets when the
// calls are applied one at a time in the order they arrived, and the table must end the same.
//
// ATTEMPTS_MODEL_SEED=<n> replays a run (each case's seed is printed on failure and can be
// given as ATTEMPTS_MODEL_CASE_SEED=<n> to run that case alone); ATTEMPTS_MODEL_CASES=<n>
// changes the number of cases (default 5000).

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "save_model_support.hpp"

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
  std::vector<std::unique_ptr<ModelCall>> calls;
  Conditions conditions;
};

Case generate(std::uint64_t seed) {
  std::mt19937_64 random(seed);
  const auto pick = [&](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random);
  };
  const auto chance = [&](double p) { return std::bernoulli_distribution(p)(random); };
  Case c;
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
    call.deadline = CallQueue::Clock::time_point::max();
    c.calls.push_back(std::move(model));
  }
  c.conditions.pipeline_depth = static_cast<std::size_t>(pick(1, 4));
  c.conditions.max_batch = chance(0.5) ? 256 : static_cast<std::size_t>(pick(1, 6));
  c.conditions.max_retries = static_cast<std::uint8_t>(pick(0, 3));
  c.conditions.rollback_chance = chance(0.3) ? 0.25 : 0;
  c.conditions.tick_chance = chance(0.5) ? 0.3 : 0;
  c.conditions.arrival_chance = chance(0.5) ? 0.5 : 0.9;
  return c;
}

// The differences between what the calls were told and what the model says, one per line.
std::string compare(const Case& c, std::uint64_t seed) {
  Table table = c.table;
  std::mt19937_64 random(seed ^ 0x5bd1e995u);
  SimulatedConnection connection(table, c.conditions, random);
  auto& calls = const_cast<std::vector<std::unique_ptr<ModelCall>>&>(c.calls);
  if (!connection.run(calls)) return "the simulated connection did not answer every call\n";

  std::vector<Told> expected;
  const Table after = apply_in_order(c.table, c.calls, expected);
  std::ostringstream out;
  for (std::size_t i = 0; i < c.calls.size(); ++i) {
    const Told& told = c.calls[i]->told;
    const Told& want = expected[i];
    bool same = told.answered && told.outcome == want.outcome;
    if (same && want.outcome == StoreOutcome::stale_revision) same = told.revision == want.revision;
    if (same && want.outcome == StoreOutcome::submitted)
      same = told.submitted_at == want.submitted_at;
    if (same && want.outcome == StoreOutcome::deadline_passed)
      same = told.deadline == want.deadline;
    if (same && c.calls[i]->call.kind == StoreCall::Kind::load_attempt &&
        want.outcome == StoreOutcome::done) {
      same = told.answers == want.answers;
    }
    // `unavailable` is only right when a rollback was retried too often.
    if (told.outcome == StoreOutcome::unavailable && c.conditions.rollback_chance == 0)
      same = false;
    if (!same) {
      out << "call " << i << " (" << describe(c.calls[i]->call) << "): told " << describe(told)
          << ", the model says " << describe(want) << "\n";
    }
  }
  if (after != table) out << "the table differs from the model's at the end\n";
  return out.str();
}

std::string describe_case(const Case& c) {
  std::ostringstream out;
  out << "depth " << c.conditions.pipeline_depth << ", max batch " << c.conditions.max_batch
      << ", rollbacks " << c.conditions.rollback_chance << ", max retries "
      << int(c.conditions.max_retries) << "\n";
  for (const auto& [id, attempt] : c.table) {
    out << "attempt " << id << ": owner " << attempt.owner << ", revision " << attempt.revision
        << (attempt.submitted_at ? ", submitted" : "")
        << (attempt.deadline_tick ? ", deadline tick " + std::to_string(*attempt.deadline_tick)
                                  : std::string())
        << "\n";
  }
  return out.str();
}

TEST(SaveModelTest, EveryCallIsToldWhatItWouldBeToldOneAtATimeInArrivalOrder) {
  const std::uint64_t seed = env_number("ATTEMPTS_MODEL_SEED", std::random_device{}());
  const std::uint64_t only = env_number("ATTEMPTS_MODEL_CASE_SEED", 0);
  const std::uint64_t cases = only != 0 ? 1 : env_number("ATTEMPTS_MODEL_CASES", 5000);
  RecordProperty("seed", std::to_string(seed));
  std::size_t failures = 0;
  for (std::uint64_t i = 0; i < cases && failures < 3; ++i) {
    const std::uint64_t case_seed = only != 0 ? only : seed + i;
    const Case c = generate(case_seed);
    const std::string differences = compare(c, case_seed);
    if (differences.empty()) continue;
    ++failures;
    ADD_FAILURE() << "ATTEMPTS_MODEL_CASE_SEED=" << case_seed << " (run seed " << seed << ", case "
                  << i << ")\n"
                  << describe_case(c) << differences;
  }
  std::cout << "[ model ] " << cases << " cases, seed " << seed
            << " (ATTEMPTS_MODEL_SEED replays them)\n";
}

// ---- named cases ------------------------------------------------------------------------

// Queues `calls` behind one statement in flight, so that all of them go out together, and
// returns what each was told.
std::vector<Told> run_together(Table& table, std::vector<StoreCall> calls,
                               std::size_t max_batch = 256) {
  std::vector<std::unique_ptr<ModelCall>> models;
  for (auto& call : calls) {
    models.push_back(std::make_unique<ModelCall>());
    models.back()->call = std::move(call);
    models.back()->call.deadline = CallQueue::Clock::time_point::max();
  }
  std::mt19937_64 random(1);
  Conditions conditions;
  conditions.max_batch = max_batch;
  conditions.tick_chance = 0;
  conditions.arrival_chance = 1;  // every call arrives before any statement finishes
  SimulatedConnection connection(table, conditions, random);
  EXPECT_TRUE(connection.run(models));
  std::vector<Told> told;
  for (const auto& model : models) told.push_back(model->told);
  return told;
}

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

// The issue's report: student 46 writing attempt 45 (student 45's) while student 45 saves it.
// Queued together, the intruder's writes were answered with the owner's fate and the owner's
// with the intruder's (404 for the owner's own saves, 204 for writes never applied).
TEST(SaveModelTest, AnotherStudentsWritesNeverDecideTheOwnersOutcome) {
  Table table;
  table[45].owner = 45;
  std::vector<StoreCall> calls = {save(45, 45, 0)};  // in flight while the rest queue
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

}  // namespace
}  // namespace attempts::db::model
