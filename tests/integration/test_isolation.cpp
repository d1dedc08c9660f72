// One student's writes never decide another's answer: writes of different students to one
// attempt that wait together are answered each by its own fate (the owner's by the attempt's
// rules, everybody else's 404 exactly like a missing attempt), and the owner's writes that wait
// together are answered as they would be one at a time, in the order they arrived.
//
// Attempt ids used here: 8100..8199, each test its own, reset before use.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

ServerSettings with_auth(const TestJwks& jwks, std::vector<std::string> more = {}) {
  std::vector<std::string> flags = {"--auth", "jwt", "--jwks", jwks.path()};
  flags.insert(flags.end(), more.begin(), more.end());
  return ServerSettings::with_flags(flags);
}

// One event loop with one database connection: whatever queues while its statement waits
// goes out together in the next one.
std::vector<std::string> one_connection() {
  return {"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1"};
}

std::string value_answers(int value) {
  return R"({"1":[)" + std::to_string(value) + "]}";
}

std::string revision_body(std::int64_t revision, int value) {
  return R"({"revision":)" + std::to_string(revision) + R"(,"answers":)" + value_answers(value) +
         "}";
}

// Writes sent on their own connections while the connection's statement is held up by a row
// lock on another attempt, so that all of them wait in one queue and go out together once the
// lock is released; the responses in the order the writes were sent.
class HeldBatch {
 public:
  HeldBatch(const Database& db, std::uint16_t port, std::int64_t decoy, const std::string& token)
      : port_(port), lock_(db, decoy), decoy_(port) {
    decoy_.send(with_token(patch_request(attempt_target(decoy), answers_body("{}")), token));
    if (!db.wait_for_lock_waiters(1, seconds(5))) throw std::runtime_error("no lock waiter");
  }

  void send(std::int64_t id, const std::string& body, const std::string& token) {
    clients_.push_back(std::make_unique<HttpClient>(port_));
    clients_.back()->send(with_token(patch_request(attempt_target(id), body), token));
  }

  std::vector<HttpResponse> release() {
    // Long enough for every write to be read and queued behind the held statement.
    std::this_thread::sleep_for(milliseconds(300));
    lock_.release();
    std::vector<HttpResponse> responses;
    if (decoy_.read_response().status != 204) throw std::runtime_error("decoy write failed");
    for (auto& client : clients_) responses.push_back(client->read_response());
    return responses;
  }

 private:
  std::uint16_t port_;
  AttemptLock lock_;
  HttpClient decoy_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
};

class IsolationTest : public testing::Test {
 protected:
  Database db_;
  TestJwks jwks_;
};

// The case that found the bug: queued together, the intruder's write was the one sent for the
// attempt and the owner was told 404; or the owner's was sent and the intruder was told 204.
TEST_F(IsolationTest, AnIntrudersWriteQueuedWithTheOwnersIs404AndTheOwnersIsSaved) {
  constexpr std::int64_t kDecoy = 8100;
  constexpr std::int64_t kId = 8101;
  db_.reset_attempts(kDecoy, kId);
  ServerProcess server(with_auth(jwks_, one_connection()));
  const std::string owner = token_for(owner_of(kId));
  const std::string intruder = token_for(owner_of(kId) + 1);

  for (const bool intruder_last : {true, false}) {
    SCOPED_TRACE(intruder_last ? "intruder's write last" : "intruder's write first");
    HeldBatch batch(db_, server.port(), kDecoy, token_for(owner_of(kDecoy)));
    const int mine = intruder_last ? 1 : 2;
    if (!intruder_last) batch.send(kId, answers_body(value_answers(99)), intruder);
    batch.send(kId, answers_body(value_answers(mine)), owner);
    if (intruder_last) batch.send(kId, answers_body(value_answers(99)), intruder);
    const auto responses = batch.release();

    const auto& owners = responses[intruder_last ? 0 : 1];
    const auto& intruders = responses[intruder_last ? 1 : 0];
    EXPECT_EQ(owners.status, 204) << owners;
    ASSERT_TRUE(IsJsonError(intruders, 404)) << intruders;
    EXPECT_EQ(json::parse(intruders.body), json({{"error", "attempt 8101 not found"}}));
    EXPECT_TRUE(StoredAnswersAre(db_, kId, value_answers(mine)));
  }
}

// An intruder's write with a revision never learns the owner's revision (no 409), whatever the
// revisions, and never changes what the owner is told.
TEST_F(IsolationTest, AnIntrudersStaleRevisionIs404NeverA409NamingTheOwnersRevision) {
  constexpr std::int64_t kDecoy = 8110;
  constexpr std::int64_t kId = 8111;
  db_.reset_attempts(kDecoy, kId);
  ServerProcess server(with_auth(jwks_, one_connection()));
  const std::string owner = token_for(owner_of(kId));
  const std::string intruder = token_for(owner_of(kId) + 7);
  HttpClient setup(server.port());
  ASSERT_EQ(
      setup.request(with_token(patch_request(attempt_target(kId), revision_body(10, 10)), owner))
          .status,
      204);

  HeldBatch batch(db_, server.port(), kDecoy, token_for(owner_of(kDecoy)));
  batch.send(kId, revision_body(3, 90), intruder);   // stale against the owner's 10
  batch.send(kId, revision_body(11, 11), owner);     // applies
  batch.send(kId, revision_body(50, 91), intruder);  // "newer", but not the intruder's
  batch.send(kId, revision_body(11, 12), owner);     // not newer than the owner's own 11
  const auto responses = batch.release();

  EXPECT_TRUE(IsJsonError(responses[0], 404)) << responses[0];
  EXPECT_EQ(responses[1].status, 204) << responses[1];
  EXPECT_TRUE(IsJsonError(responses[2], 404)) << responses[2];
  ASSERT_TRUE(IsJsonError(responses[3], 409)) << responses[3];
  EXPECT_EQ(json::parse(responses[3].body)["revision"], 11);
  for (const auto& response : {responses[0], responses[2]}) {
    EXPECT_EQ(response.body.find("revision"), std::string::npos) << response;
  }
  EXPECT_TRUE(StoredAnswersAre(db_, kId, value_answers(11)));
}

// The owner's own writes that wait together are answered as if sent one at a time in the order
// they arrived: 3 applies, then 9, and 4 is not newer than 9; of two writes with revision 5, the
// first applies and the second is not newer.
TEST_F(IsolationTest, TheOwnersQueuedRevisionsAreAnsweredAsIfAppliedOneAtATime) {
  constexpr std::int64_t kDecoy = 8120;
  constexpr std::int64_t kId = 8121;
  constexpr std::int64_t kOther = 8122;
  db_.reset_attempts(kDecoy, kOther);
  ServerProcess server(with_auth(jwks_, one_connection()));
  const std::string owner = token_for(owner_of(kId));
  const std::string other = token_for(owner_of(kOther));

  HeldBatch batch(db_, server.port(), kDecoy, token_for(owner_of(kDecoy)));
  batch.send(kId, revision_body(3, 3), owner);
  batch.send(kId, revision_body(9, 9), owner);
  batch.send(kId, revision_body(4, 4), owner);
  batch.send(kOther, revision_body(5, 50), other);
  batch.send(kOther, revision_body(5, 51), other);
  const auto responses = batch.release();

  EXPECT_EQ(responses[0].status, 204) << responses[0];
  EXPECT_EQ(responses[1].status, 204) << responses[1];
  ASSERT_TRUE(IsJsonError(responses[2], 409)) << responses[2];
  EXPECT_EQ(json::parse(responses[2].body)["revision"], 9);
  EXPECT_EQ(responses[3].status, 204) << responses[3];
  ASSERT_TRUE(IsJsonError(responses[4], 409)) << responses[4];
  EXPECT_EQ(json::parse(responses[4].body)["revision"], 5);
  EXPECT_TRUE(StoredAnswersAre(db_, kId, value_answers(9)));
  EXPECT_TRUE(StoredAnswersAre(db_, kOther, value_answers(50)));
}

// The issue's report, under plain load: while six connections of another student write an
// attempt as fast as they can, its owner saves it 200 times one after another. Every one of the
// owner's saves is 204 and the last one is stored; every one of the intruder's is 404.
class IsolationUnderLoadTest : public IsolationTest, public testing::WithParamInterface<int> {};

TEST_P(IsolationUnderLoadTest, TheOwnerGetsEverySaveAndTheIntruderOnly404) {
  const std::int64_t kId = 8130 + GetParam();
  db_.reset_attempts(kId, kId);
  ServerProcess server(with_auth(
      jwks_, {"--threads", std::to_string(GetParam()), "--pool-size", std::to_string(GetParam())}));
  const std::string owner = token_for(owner_of(kId));
  const std::string intruder = token_for(owner_of(kId) + 1);
  constexpr int kIntruders = 6;
  constexpr int kOwnerSaves = 200;
  constexpr int kMostIntruderWrites = 20000;  // per connection: a bound, not a goal

  std::atomic<bool> owner_done{false};
  std::vector<std::vector<int>> intruder_statuses(kIntruders);
  std::vector<std::thread> intruders;
  for (int i = 0; i < kIntruders; ++i) {
    intruders.emplace_back([&, i] {
      try {
        HttpClient client(server.port());
        for (int n = 0; n < kMostIntruderWrites && !owner_done.load(); ++n) {
          const auto response = client.request(with_token(
              patch_request(attempt_target(kId), answers_body(value_answers(100000 + n))),
              intruder));
          intruder_statuses[i].push_back(response.status);
        }
      } catch (const std::exception& error) {
        ADD_FAILURE() << "intruder " << i << ": " << error.what();
      }
    });
  }
  std::vector<int> owner_statuses;
  {
    HttpClient client(server.port());
    for (int value = 1; value <= kOwnerSaves; ++value) {
      owner_statuses.push_back(
          client
              .request(with_token(
                  patch_request(attempt_target(kId), answers_body(value_answers(value))), owner))
              .status);
    }
  }
  owner_done = true;
  for (auto& thread : intruders) thread.join();

  int owner_not_204 = 0;
  for (const int status : owner_statuses) owner_not_204 += status != 204;
  int intruder_writes = 0;
  int intruder_not_404 = 0;
  for (const auto& statuses : intruder_statuses) {
    for (const int status : statuses) {
      ++intruder_writes;
      intruder_not_404 += status != 404;
    }
  }
  EXPECT_EQ(owner_not_204, 0) << "of the owner's " << kOwnerSaves << " saves";
  EXPECT_EQ(intruder_not_404, 0) << "of the intruder's " << intruder_writes << " writes";
  EXPECT_GT(intruder_writes, kOwnerSaves) << "the intruder did not write while the owner did";
  EXPECT_TRUE(StoredAnswersAre(db_, kId, value_answers(kOwnerSaves)));
}

std::string loops_name(const testing::TestParamInfo<int>& param) {
  return std::to_string(param.param) + "Loops";
}

INSTANTIATE_TEST_SUITE_P(EventLoops, IsolationUnderLoadTest, testing::Values(1, 2), loops_name);

}  // namespace
}  // namespace attempts::integration
