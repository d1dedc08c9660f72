// Ordering and durability under concurrency: pipelined writes on one connection, many clients
// on many connections, and clients racing on the same attempts.
//
// Attempt ids used here: 2000..2999, each test its own, reset before use.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <latch>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

// Answers that say who wrote them and when: question 1 holds the client, question 2 the value.
std::string tagged_answers(int client, int value) {
  return R"({"1":[)" + std::to_string(client) + R"(],"2":[)" + std::to_string(value) + "]}";
}

class ConcurrencyTest : public testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(server_.running()) << "attempts-server died"; }

  Database db_;
  ServerProcess server_;
};

TEST_F(ConcurrencyTest, FiftyPipelinedPatchesToOneIdAreAnsweredInOrderAndTheLastIsStored) {
  constexpr std::int64_t kId = 2001;
  constexpr int kWrites = 50;
  db_.reset_attempts(kId, kId);
  std::string pipeline;
  for (int value = 1; value <= kWrites; ++value) {
    pipeline +=
        serialize(patch_request(attempt_target(kId), answers_body(tagged_answers(0, value))));
  }
  // A read at the end of the pipeline must see the last write, since requests run in order.
  pipeline += serialize(get_request(attempt_target(kId)));
  HttpClient client(server_.port());

  client.send_raw(pipeline);
  const auto responses = client.read_responses(kWrites + 1);

  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(responses[i].status, 204) << "write " << i + 1;
  ASSERT_EQ(responses[kWrites].status, 200) << responses[kWrites];
  EXPECT_EQ(nlohmann::json::parse(responses[kWrites].body).at("answers"),
            nlohmann::json::parse(tagged_answers(0, kWrites)));
  EXPECT_TRUE(StoredAnswersAre(db_, kId, tagged_answers(0, kWrites)));
}

TEST_F(ConcurrencyTest, ThirtyTwoClientsOnDistinctIdsEndWithEveryAcknowledgedValueStored) {
  constexpr int kClients = 32;
  constexpr int kIdsPerClient = 4;
  constexpr int kWritesPerClient = 20;
  constexpr std::int64_t kFirstId = 2100;  // client c owns kFirstId + c * kIdsPerClient + k
  db_.reset_attempts(kFirstId, kFirstId + kClients * kIdsPerClient - 1);

  struct ClientResult {
    std::map<std::int64_t, int> last_acknowledged;  // id -> value
    std::vector<std::string> errors;
  };
  std::vector<ClientResult> results(kClients);
  std::latch start(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto& result = results[c];
      try {
        HttpClient client(server_.port());
        start.arrive_and_wait();
        for (int value = 1; value <= kWritesPerClient; ++value) {
          const std::int64_t id = kFirstId + c * kIdsPerClient + value % kIdsPerClient;
          const auto response = client.request(
              patch_request(attempt_target(id), answers_body(tagged_answers(c, value))));
          if (response.status == 204) {
            result.last_acknowledged[id] = value;
          } else {
            result.errors.push_back("attempt " + std::to_string(id) + ": status " +
                                    std::to_string(response.status) + " " + response.body);
          }
        }
      } catch (const std::exception& error) {
        result.errors.push_back(error.what());
      }
    });
  }
  for (auto& thread : threads) thread.join();

  for (int c = 0; c < kClients; ++c) {
    EXPECT_TRUE(results[c].errors.empty()) << "client " << c << ": " << results[c].errors.front();
    EXPECT_EQ(results[c].last_acknowledged.size(), static_cast<std::size_t>(kIdsPerClient));
    for (const auto& [id, value] : results[c].last_acknowledged) {
      EXPECT_TRUE(StoredAnswersAre(db_, id, tagged_answers(c, value)));
    }
  }
}

TEST_F(ConcurrencyTest, ClientsRacingOnTheSameIdsLeaveTheLastValueOfSomeClient) {
  constexpr int kClients = 6;
  constexpr int kWritesPerClient = 30;
  constexpr std::int64_t kFirstId = 2300;
  constexpr int kIds = 5;  // every client writes every one of kFirstId .. kFirstId + kIds - 1
  db_.reset_attempts(kFirstId, kFirstId + kIds - 1);

  struct ClientResult {
    std::map<std::int64_t, std::string> last_sent;  // id -> answers; every write acknowledged
    std::vector<std::string> errors;
  };
  std::vector<ClientResult> results(kClients);
  std::latch start(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto& result = results[c];
      try {
        HttpClient client(server_.port());
        start.arrive_and_wait();
        for (int value = 1; value <= kWritesPerClient; ++value) {
          // Each client walks the ids in its own order, so that the last writer varies.
          const std::int64_t id = kFirstId + (value + c) % kIds;
          const std::string answers = tagged_answers(c, value);
          const auto response =
              client.request(patch_request(attempt_target(id), answers_body(answers)));
          if (response.status != 204) {
            result.errors.push_back("status " + std::to_string(response.status));
          }
          result.last_sent[id] = answers;
        }
      } catch (const std::exception& error) {
        result.errors.push_back(error.what());
      }
    });
  }
  for (auto& thread : threads) thread.join();

  for (int c = 0; c < kClients; ++c) {
    ASSERT_TRUE(results[c].errors.empty()) << "client " << c << ": " << results[c].errors.front();
  }
  for (std::int64_t id = kFirstId; id < kFirstId + kIds; ++id) {
    std::set<nlohmann::json> candidates;
    for (const auto& result : results) {
      candidates.insert(nlohmann::json::parse(result.last_sent.at(id)));
    }
    const auto stored = nlohmann::json::parse(db_.answers_text(id));
    EXPECT_TRUE(candidates.count(stored)) << "attempt " << id << " holds " << stored.dump()
                                          << ", which is not the last value any client wrote to it";
  }
}

TEST_F(ConcurrencyTest, ConcurrentWritesWithMissingAndSubmittedAttemptsGetTheirOwnStatus) {
  // Concurrent writes share a statement (batching); each must still get its own outcome.
  constexpr std::int64_t kSubmitted = 2401;
  constexpr std::int64_t kMissing = 6'000'001;
  constexpr std::int64_t kFirstOpen = 2402;
  constexpr int kOpen = 10;
  constexpr int kWritesPerClient = 25;
  db_.reset_attempts(kSubmitted, kFirstOpen + kOpen - 1);
  db_.mark_submitted(kSubmitted);
  const auto submitted_before = db_.read_attempt(kSubmitted);

  struct Target {
    std::int64_t id;
    int expected_status;
  };
  std::vector<Target> targets = {{kSubmitted, 409}, {kMissing, 404}};
  for (int i = 0; i < kOpen; ++i) targets.push_back({kFirstOpen + i, 204});
  std::vector<std::vector<std::string>> errors(targets.size());
  std::latch start(static_cast<std::ptrdiff_t>(targets.size()));
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < targets.size(); ++t) {
    threads.emplace_back([&, t] {
      const auto [id, expected_status] = targets[t];
      try {
        HttpClient client(server_.port());
        start.arrive_and_wait();
        for (int value = 1; value <= kWritesPerClient; ++value) {
          const auto response = client.request(patch_request(
              attempt_target(id), answers_body(tagged_answers(static_cast<int>(t), value))));
          if (response.status != expected_status) {
            errors[t].push_back("write " + std::to_string(value) + ": status " +
                                std::to_string(response.status) + " " + response.body);
          }
        }
      } catch (const std::exception& error) {
        errors[t].push_back(error.what());
      }
    });
  }
  for (auto& thread : threads) thread.join();

  for (std::size_t t = 0; t < targets.size(); ++t) {
    EXPECT_TRUE(errors[t].empty()) << "attempt " << targets[t].id << " (expected "
                                   << targets[t].expected_status << "): " << errors[t].front();
    if (targets[t].expected_status == 204) {
      EXPECT_TRUE(StoredAnswersAre(db_, targets[t].id,
                                   tagged_answers(static_cast<int>(t), kWritesPerClient)));
    }
  }
  EXPECT_EQ(db_.read_attempt(kSubmitted), submitted_before);
  EXPECT_FALSE(db_.attempt_exists(kMissing));
}

// Issue 27's reproduction, made exact. The client's write W goes out in a batch that waits for a
// row lock (a statement of another attempt is in it), behind two statements that wait too (two in
// flight per connection); each waits at most its statement timeout (half the request timeout),
// so W's deadline passes while its statement runs: it is answered 504. The client's next write W2
// goes through its other connection, which is on the other event loop. W2 must not be applied
// before W can no longer be: it waits for W's statement (the locks are let go meanwhile), is told
// 204, and the attempt holds W2. Before the ClaimTable, W2 went out at once on the other loop, was
// told 204, and W's commit overwrote it when the locks were let go.
TEST(OrderAcrossLoopsTest, AWriteAnswered504IsNeverAppliedAfterItsClientsNextWrite) {
  constexpr std::int64_t kLocked = 2960;  // 2960..2962, below kId: a batch locks them first
  constexpr std::int64_t kId = 2963;
  Database db;
  db.reset_attempts(kLocked, kId);
  ServerProcess server(ServerSettings::with_flags(
      {"--threads", "2", "--pool-size", "2", "--pipeline-depth", "2", "--request-timeout", "4"}));
  // Connections are dealt to the two loops in turn: 0, 2, 4 and 6 share one loop, 1 is on the
  // other.
  std::vector<std::unique_ptr<HttpClient>> connections;
  for (int i = 0; i < 7; ++i) {
    connections.push_back(std::make_unique<HttpClient>(server.port(), std::chrono::seconds(30)));
    // Served before the next one connects, so they are accepted in this order.
    ASSERT_EQ(connections.back()->request(get_request("/healthz")).status, 200);
  }
  HttpClient& other_loop = *connections[1];
  HttpClient& same_loop = *connections[6];

  std::vector<std::unique_ptr<AttemptLock>> locks;
  for (std::int64_t id = kLocked; id < kId; ++id) {
    locks.push_back(std::make_unique<AttemptLock>(db, id));
  }
  // Calls sent and not answered, and calls queued, on the server's two pool connections.
  const auto gauge = [&](const char* name) {
    return metric(server.port(), std::string(name) + "{connection=\"0\"}") +
           metric(server.port(), std::string(name) + "{connection=\"1\"}");
  };
  const auto wait_for = [&](double in_flight, double queued) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until &&
           (gauge("attempts_db_in_flight") != in_flight ||
            gauge("attempts_db_queue_depth") != queued)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return gauge("attempts_db_in_flight") == in_flight &&
           gauge("attempts_db_queue_depth") == queued;
  };
  // Two statements that wait, one behind the other; then a third decoy and W, queued together,
  // which go out as one batch once the first statement gives up.
  connections[0]->send(patch_request(attempt_target(kLocked), answers_body(tagged_answers(9, 0))));
  ASSERT_TRUE(wait_for(1, 0));
  connections[2]->send(
      patch_request(attempt_target(kLocked + 1), answers_body(tagged_answers(9, 1))));
  ASSERT_TRUE(wait_for(2, 0));
  connections[4]->send(
      patch_request(attempt_target(kLocked + 2), answers_body(tagged_answers(9, 2))));
  ASSERT_TRUE(wait_for(2, 1));
  const auto first =
      same_loop.request(patch_request(attempt_target(kId), answers_body(R"({"1":[111]})")));
  ASSERT_EQ(first.status, 504) << first;  // its statement waits for a lock still

  other_loop.send(patch_request(attempt_target(kId), answers_body(R"({"1":[222]})")));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  locks.clear();  // W's statement commits now; then W2 may go
  const auto second = other_loop.read_response();
  EXPECT_EQ(second.status, 204) << second;
  EXPECT_TRUE(StoredAnswersAre(db, kId, R"({"1":[222]})"))
      << "the write told 204 was overwritten by the one told 504 before it was sent";
  EXPECT_GE(metric(server.port(), "attempts_db_claim_waits_total"), 1);
}

TEST(BackpressureTest, WriteBeyondTheQueueCapacityIs503WithRetryAfterPromptly) {
  // One connection, one queued operation at most: with the connection stuck on a locked row
  // and one write queued behind it, the next write has no room.
  constexpr std::int64_t kStuck = 2501;
  constexpr std::int64_t kQueued = 2502;
  constexpr std::int64_t kRefused = 2503;
  const Database db;
  db.reset_attempts(kStuck, kRefused);
  ServerProcess server(ServerSettings::with_flags(
      {"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1", "--queue-capacity", "1"}));
  AttemptLock lock(db, kStuck);
  HttpClient stuck(server.port());
  stuck.send(patch_request(attempt_target(kStuck), answers_body(tagged_answers(0, 1))));
  ASSERT_TRUE(db.wait_for_lock_waiters(1, std::chrono::seconds(5)));
  HttpClient queued(server.port());
  queued.send(patch_request(attempt_target(kQueued), answers_body(tagged_answers(0, 2))));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let it reach the queue

  const auto started = std::chrono::steady_clock::now();
  const auto refused =
      HttpClient(server.port())
          .request(patch_request(attempt_target(kRefused), answers_body(tagged_answers(0, 3))));
  const auto elapsed = std::chrono::steady_clock::now() - started;
  lock.release();

  EXPECT_TRUE(IsUnavailable(refused));
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  EXPECT_EQ(stuck.read_response().status, 204);
  EXPECT_EQ(queued.read_response().status, 204);
  EXPECT_TRUE(StoredAnswersAre(db, kStuck, tagged_answers(0, 1)));
  EXPECT_TRUE(StoredAnswersAre(db, kQueued, tagged_answers(0, 2)));
  EXPECT_EQ(db.read_attempt(kRefused), pristine_row());
  EXPECT_TRUE(server.running());
}

}  // namespace
}  // namespace attempts::integration
