// PostgreSQL outages: the server stays up, refuses writes promptly with 503 + Retry-After while
// the database is down, and recovers by itself when it comes back. Every test restarts
// PostgreSQL at its end (PostgresOutage), even when it fails, since other tests share it.
//
// Attempt ids used here: 3000..3099, each test its own, reset before use.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A database that is down must not make a request wait for long.
constexpr milliseconds kPromptAnswer{2000};
// How long the server may take to notice that the database is back.
constexpr milliseconds kRecoveryTime{10000};
constexpr milliseconds kRetryPause{200};

class OutageTest : public testing::Test {
 protected:
  // In case an earlier run was killed in the middle of an outage.
  void SetUp() override {
    if (!postgres_control::is_running()) postgres_control::start();
  }

  void TearDown() override {
    if (server_) {
      EXPECT_TRUE(server_->running()) << "attempts-server died";
    }
  }

  void start_server() { server_ = std::make_unique<ServerProcess>(); }

  HttpResponse send(const HttpRequest& request) const {
    return HttpClient(server_->port()).request(request);
  }
  HttpResponse patch(std::int64_t id, const std::string& answers) const {
    return send(patch_request(attempt_target(id), answers_body(answers)));
  }

  // Sends the request again every kRetryPause until it gets `status` or kRecoveryTime has
  // passed; the last response.
  HttpResponse retry_until(const HttpRequest& request, int status) const {
    const auto deadline = Clock::now() + kRecoveryTime;
    HttpResponse response = send(request);
    while (response.status != status && Clock::now() < deadline) {
      std::this_thread::sleep_for(kRetryPause);
      response = send(request);
    }
    return response;
  }

  Database db_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(OutageTest, PatchIs503WithRetryAfterPromptlyWhileTheDatabaseIsDown) {
  constexpr std::int64_t kId = 3001;
  db_.reset_attempts(kId, kId);
  start_server();
  ASSERT_EQ(patch(kId, R"({"1":[1]})").status, 204);  // the pool is connected
  PostgresOutage outage;

  // The first write finds its connection broken, the next ones find the database refusing.
  for (int value = 2; value <= 4; ++value) {
    const auto started = Clock::now();
    const auto response = patch(kId, R"({"1":[)" + std::to_string(value) + "]}");
    const auto elapsed = Clock::now() - started;

    EXPECT_TRUE(IsUnavailable(response)) << "write " << value;
    EXPECT_LT(elapsed, kPromptAnswer) << "write " << value;
  }

  outage.end();
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[1]})")) << "a refused write was stored";
}

TEST_F(OutageTest, ReadyzIs503AndHealthzStays200WhileTheDatabaseIsDown) {
  start_server();
  ASSERT_EQ(send(get_request("/readyz")).status, 200);
  PostgresOutage outage;

  // Several probes, so that every connection of the pool is asked.
  for (int probe = 0; probe < 6; ++probe) {
    const auto started = Clock::now();
    EXPECT_TRUE(IsUnavailable(send(get_request("/readyz")))) << "probe " << probe;
    EXPECT_LT(Clock::now() - started, kPromptAnswer) << "probe " << probe;
    EXPECT_EQ(send(get_request("/healthz")).status, 200) << "probe " << probe;
  }
}

TEST_F(OutageTest, GetAttemptIs503WhileTheDatabaseIsDown) {
  constexpr std::int64_t kId = 3002;
  start_server();
  ASSERT_EQ(send(get_request(attempt_target(kId))).status, 200);
  PostgresOutage outage;

  const auto started = Clock::now();
  const auto response = send(get_request(attempt_target(kId)));

  EXPECT_TRUE(IsUnavailable(response));
  EXPECT_LT(Clock::now() - started, kPromptAnswer);
}

TEST_F(OutageTest, PatchSucceedsAgainAfterTheDatabaseRestartsWithoutRestartingTheServer) {
  constexpr std::int64_t kId = 3003;
  db_.reset_attempts(kId, kId);
  start_server();
  ASSERT_EQ(patch(kId, R"({"1":[1]})").status, 204);
  const pid_t pid = server_->pid();
  PostgresOutage outage;
  ASSERT_TRUE(IsUnavailable(patch(kId, R"({"1":[2]})")));

  outage.end();
  const auto response =
      retry_until(patch_request(attempt_target(kId), answers_body(R"({"1":[3]})")), 204);

  EXPECT_EQ(response.status, 204) << "no success within " << kRecoveryTime.count()
                                  << " ms after PostgreSQL restarted: " << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[3]})"));
  EXPECT_EQ(retry_until(get_request("/readyz"), 200).status, 200);
  EXPECT_EQ(server_->pid(), pid);
  EXPECT_TRUE(server_->running());
}

TEST_F(OutageTest, ServerStartedWhileTheDatabaseIsDownServesProbesAndRefusesWrites) {
  constexpr std::int64_t kId = 3004;
  PostgresOutage outage;

  start_server();  // waits for GET /healthz 200

  EXPECT_EQ(send(get_request("/healthz")).status, 200);
  EXPECT_TRUE(IsUnavailable(send(get_request("/readyz"))));
  const auto started = Clock::now();
  EXPECT_TRUE(IsUnavailable(patch(kId, R"({"1":[1]})")));
  EXPECT_LT(Clock::now() - started, kPromptAnswer);
}

TEST_F(OutageTest, ServerStartedWhileTheDatabaseIsDownRecoversWhenItStarts) {
  constexpr std::int64_t kId = 3005;
  {
    PostgresOutage outage;
    start_server();
    ASSERT_TRUE(IsUnavailable(patch(kId, R"({"1":[1]})")));
  }
  db_.reset_attempts(kId, kId);

  const auto response =
      retry_until(patch_request(attempt_target(kId), answers_body(R"({"1":[2]})")), 204);

  EXPECT_EQ(response.status, 204) << "no success within " << kRecoveryTime.count()
                                  << " ms after PostgreSQL started: " << response;
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[2]})"));
  EXPECT_EQ(retry_until(get_request("/readyz"), 200).status, 200);
}

}  // namespace
}  // namespace attempts::integration
