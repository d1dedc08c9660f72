// Graceful shutdown: SIGTERM/SIGINT make the server stop accepting, finish what it has read,
// and exit 0 promptly; no acknowledged write is lost.
//
// Attempt ids used here: 4000..4999, each test its own, reset before use.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"

namespace attempts::integration {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kIdleExit{5000};     // no traffic: exit within this
constexpr milliseconds kLoadedExit{10000};  // in-flight requests: exit within this

std::string value_answers(int value) {
  return R"({"1":[)" + std::to_string(value) + "]}";
}

// The value a value_answers() document holds; 0 for the seeded '{}'.
int stored_value(const std::string& answers_text) {
  const auto answers = nlohmann::json::parse(answers_text);
  return answers.contains("1") ? answers.at("1").at(0).get<int>() : 0;
}

TEST(ShutdownTest, SigtermWithoutTrafficExits0Promptly) {
  ServerProcess server;

  const auto status = server.terminate(SIGTERM, kIdleExit);

  ASSERT_TRUE(status) << "still running " << kIdleExit.count() << " ms after SIGTERM";
  EXPECT_EQ(*status, ExitStatus::exit_code(0));
}

// SIGHUP re-reads the key file; without authentication there is nothing to re-read, and the
// signal must not end the server (its default action would, without draining anything).
TEST(ShutdownTest, SighupWithoutAuthenticationIsLoggedAndTheServerGoesOn) {
  constexpr std::int64_t kId = 4003;
  Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--auth", "none"}));
  HttpClient client(server.port());
  client.send(patch_request(attempt_target(kId), answers_body(value_answers(1))));
  server.signal(SIGHUP);
  EXPECT_EQ(client.read_response().status, 204);
  server.signal(SIGHUP);
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(server.running()) << "SIGHUP ended the server";
  EXPECT_EQ(
      client.request(patch_request(attempt_target(kId), answers_body(value_answers(2)))).status,
      204);
  EXPECT_NE(server.log().find("SIGHUP: nothing to reload"), std::string::npos) << server.log();
  EXPECT_EQ(server.terminate(SIGTERM, kIdleExit), ExitStatus::exit_code(0));
}

// A SIGHUP while the server starts (before it listens for one) used to end it with 129: its
// default action. It is remembered and acted on once the server runs. The signal is sent the
// moment the process exists, blocked until the server unblocks it, so it always lands there.
TEST(ShutdownTest, ASighupWhileStartingIsActedOnAndNotFatal) {
  ServerSettings settings = ServerSettings::with_flags({"--auth", "none"});
  settings.signals_while_starting = {SIGHUP};
  ServerProcess server(settings);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline &&
         server.log().find("SIGHUP: nothing to reload") == std::string::npos) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_TRUE(server.running()) << "SIGHUP ended the server";
  EXPECT_NE(server.log().find("SIGHUP received while starting"), std::string::npos) << server.log();
  EXPECT_NE(server.log().find("SIGHUP: nothing to reload"), std::string::npos) << server.log();
  EXPECT_EQ(HttpClient(server.port()).request(get_request("/healthz")).status, 200);
  EXPECT_EQ(server.terminate(SIGTERM, kIdleExit), ExitStatus::exit_code(0));
}

TEST(ShutdownTest, SigintWithoutTrafficExits0Promptly) {
  ServerProcess server;

  const auto status = server.terminate(SIGINT, kIdleExit);

  ASSERT_TRUE(status) << "still running " << kIdleExit.count() << " ms after SIGINT";
  EXPECT_EQ(*status, ExitStatus::exit_code(0));
}

TEST(ShutdownTest, IdleKeepAliveConnectionDoesNotDelayExit) {
  // Both limits far above kIdleExit: only closing idle connections at once exits in time.
  ServerProcess server(
      ServerSettings::with_flags({"--shutdown-timeout", "60", "--idle-timeout", "60"}));
  HttpClient idle(server.port());
  ASSERT_EQ(idle.request(get_request("/healthz")).status, 200);

  const auto status = server.terminate(SIGTERM, kIdleExit);

  ASSERT_TRUE(status) << "still running " << kIdleExit.count() << " ms after SIGTERM";
  EXPECT_EQ(*status, ExitStatus::exit_code(0));
  EXPECT_TRUE(idle.wait_for_close(milliseconds(1000)));
}

TEST(ShutdownTest, SigtermFinishesAndAnswersAWriteInFlightBeforeExiting) {
  constexpr std::int64_t kId = 4001;
  const Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server;
  AttemptLock lock(db, kId);
  HttpClient client(server.port());
  client.send(patch_request(attempt_target(kId), answers_body(value_answers(1))));
  ASSERT_TRUE(db.wait_for_lock_waiters(1, seconds(5))) << "the write never reached PostgreSQL";

  server.signal(SIGTERM);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_TRUE(server.running()) << "exited with a write in flight";
  lock.release();
  const auto response = client.read_response();
  const auto status = server.wait_for_exit(kLoadedExit);

  EXPECT_EQ(response.status, 204) << response;
  ASSERT_TRUE(status) << "still running " << kLoadedExit.count() << " ms after SIGTERM";
  EXPECT_EQ(*status, ExitStatus::exit_code(0));
  EXPECT_TRUE(StoredAnswersAre(db, kId, value_answers(1)));
}

// A write stuck behind a lock that is never released (or a database that has stopped
// answering): the shutdown timeout abandons it, logs what it abandoned, and the process exits
// non-zero, without waiting for the database.
TEST(ShutdownTest, WriteStuckPastTheShutdownTimeoutIsAbandonedWithANonZeroExit) {
  constexpr std::int64_t kId = 4002;
  constexpr seconds kShutdownTimeout{1};
  constexpr milliseconds kExitMargin{2000};
  const Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server(
      ServerSettings::with_flags({"--shutdown-timeout", std::to_string(kShutdownTimeout.count())}));
  AttemptLock lock(db, kId);
  HttpClient client(server.port());
  client.send(patch_request(attempt_target(kId), answers_body(value_answers(1))));
  ASSERT_TRUE(db.wait_for_lock_waiters(1, seconds(5))) << "the write never reached PostgreSQL";

  const auto signalled = Clock::now();
  server.signal(SIGTERM);
  const auto status = server.wait_for_exit(kShutdownTimeout + kExitMargin);
  const auto took = Clock::now() - signalled;
  lock.release();

  ASSERT_TRUE(status) << "still running " << milliseconds(kShutdownTimeout + kExitMargin).count()
                      << " ms after SIGTERM, with the lock still held";
  EXPECT_GE(took, kShutdownTimeout);
  EXPECT_EQ(*status, ExitStatus::exit_code(1));
  EXPECT_NE(server.log().find("shutdown timeout: abandoning 1 open connections"), std::string::npos)
      << server.log();
}

// One writer of the loaded shutdown test: writes 1, 2, 3... to its own attempt, one request at
// a time, reconnecting when the server closes the connection, until it cannot connect any more.
struct Writer {
  std::int64_t id = 0;
  int last_acknowledged = 0;  // got 204
  int last_sent = 0;          // sent, whatever happened next
  std::vector<std::string> unexpected;

  void run(std::uint16_t port, std::atomic<int>& acknowledged, Clock::time_point deadline) {
    std::optional<HttpClient> client;
    while (Clock::now() < deadline) {
      try {
        if (!client) client.emplace(port, seconds(5));
      } catch (const HttpError&) {
        return;  // the listener is closed: the server is shutting down
      }
      try {
        const int value = last_sent + 1;
        last_sent = value;
        const auto response =
            client->request(patch_request(attempt_target(id), answers_body(value_answers(value))));
        if (response.status == 204) {
          last_acknowledged = value;
          acknowledged.fetch_add(1);
        } else {
          unexpected.push_back("status " + std::to_string(response.status) + ": " + response.body);
        }
        if (response.header("connection").value_or("") == "close") client.reset();
      } catch (const HttpError&) {
        client.reset();  // closed while we were sending or waiting: try a new connection
      }
    }
  }
};

TEST(ShutdownTest, SigtermDuringTrafficExits0AndKeepsEveryAcknowledgedWrite) {
  constexpr int kWriters = 8;
  constexpr std::int64_t kFirstId = 4100;
  constexpr int kAcksBeforeSignal = 200;
  const Database db;
  db.reset_attempts(kFirstId, kFirstId + kWriters - 1);
  ServerProcess server;

  std::vector<Writer> writers(kWriters);
  std::atomic<int> acknowledged{0};
  const auto deadline = Clock::now() + seconds(30);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    writers[w].id = kFirstId + w;
    threads.emplace_back([&, w] { writers[w].run(server.port(), acknowledged, deadline); });
  }
  const auto warm_up_deadline = Clock::now() + seconds(10);
  while (acknowledged.load() < kAcksBeforeSignal && Clock::now() < warm_up_deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }

  const auto signalled = Clock::now();
  const auto status = server.terminate(SIGTERM, kLoadedExit);
  const auto exit_time = Clock::now() - signalled;
  for (auto& thread : threads) thread.join();

  ASSERT_TRUE(status) << "still running " << kLoadedExit.count() << " ms after SIGTERM";
  EXPECT_EQ(*status, ExitStatus::exit_code(0));
  EXPECT_LT(exit_time, kLoadedExit);
  EXPECT_GE(acknowledged.load(), kAcksBeforeSignal) << "too little traffic to test anything";
  testing::Test::RecordProperty("acknowledged_writes", acknowledged.load());
  for (const auto& writer : writers) {
    EXPECT_TRUE(writer.unexpected.empty())
        << "attempt " << writer.id << ": " << writer.unexpected.front();
    const int stored = stored_value(db.answers_text(writer.id));
    // Acknowledged means committed: the last acknowledged value, or a later one that was
    // committed without its answer reaching the client, is stored; never an older one.
    EXPECT_GE(stored, writer.last_acknowledged) << "attempt " << writer.id << " lost a write";
    EXPECT_LE(stored, writer.last_sent) << "attempt " << writer.id;
  }
}

}  // namespace
}  // namespace attempts::integration
