// Durability modes (--durability unlogged|async|sync): the table's persistence must fit the mode
// the service was started with, and sql/durable.sql / sql/unlogged.sql switch it while the
// service runs. The crash tests of each mode are in test_faults.cpp.

#include <gtest/gtest.h>

#include <chrono>
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
using std::chrono::seconds;

// Puts the shared database back in the schema's mode, whatever the test did.
class UnloggedAtExit {
 public:
  ~UnloggedAtExit() {
    try {
      Database().make_attempts_table_unlogged();
    } catch (const std::exception& error) {
      ADD_FAILURE() << "could not make the attempts table UNLOGGED again: " << error.what();
    }
  }
};

// Connection 0's attempts_db_connection_refusing once it is `expected`, within 10 s (each
// connection checks the table at connect and every 5 s); the last value read otherwise.
double when_refusing(std::uint16_t port, double expected) {
  const auto deadline = Clock::now() + seconds(10);
  double value = -1;
  while (true) {
    value = metric(port, "attempts_db_connection_refusing{connection=\"0\"}");
    if (value == expected || Clock::now() >= deadline) return value;
    std::this_thread::sleep_for(milliseconds(100));
  }
}

class DurabilityModeTest : public testing::Test {
 protected:
  UnloggedAtExit restore_;
  Database db_;
};

TEST_F(DurabilityModeTest, AMismatchedTableIsRefusedWithTheReasonUntilItIsSwitched) {
  constexpr std::int64_t kId = 9700;
  ASSERT_FALSE(db_.attempts_table_is_logged());
  db_.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--durability", "sync"}));
  const auto ready = HttpClient(server.port()).request(get_request("/readyz"));
  EXPECT_TRUE(IsUnavailable(ready)) << ready;
  EXPECT_NE(ready.body.find("UNLOGGED"), std::string::npos) << ready;
  EXPECT_NE(ready.body.find("sql/durable.sql"), std::string::npos) << ready;
  const auto write = HttpClient(server.port())
                         .request(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})")));
  EXPECT_TRUE(IsUnavailable(write)) << write;
  EXPECT_NE(write.body.find("--durability sync"), std::string::npos) << write;
  EXPECT_EQ(db_.read_attempt(kId)->updated_at, std::nullopt) << "written in the wrong mode";
  EXPECT_NE(server.log().find("refusing calls until it is fixed"), std::string::npos);
  // The one metric that tells this apart from an overload (deploy/prometheus alerts on it).
  EXPECT_EQ(when_refusing(server.port(), 1.0), 1.0);

  // Switched while the service runs: it notices (at the next ping, or within its check
  // interval) and writes again, now durably.
  db_.run_sql_file("durable.sql");
  EXPECT_EQ(when_status(server.port(), get_request("/readyz"), 200, seconds(10)).status, 200);
  EXPECT_EQ(
      when_status(server.port(), patch_request(attempt_target(kId), answers_body(R"({"1":[2]})")),
                  204, seconds(10))
          .status,
      204);
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[2]})"));
  EXPECT_EQ(when_refusing(server.port(), 0.0), 0.0);

  // And back: the unlogged mode refuses a LOGGED table the same way.
  ServerProcess unlogged(ServerSettings::with_flags({"--durability", "unlogged"}));
  const auto refused = HttpClient(unlogged.port()).request(get_request("/readyz"));
  EXPECT_TRUE(IsUnavailable(refused)) << refused;
  EXPECT_NE(refused.body.find("sql/unlogged.sql"), std::string::npos) << refused;
}

TEST_F(DurabilityModeTest, EachModeServesItsTable) {
  constexpr std::int64_t kId = 9710;
  db_.reset_attempts(kId, kId);
  for (const char* mode : {"async", "sync"}) {
    db_.run_sql_file("durable.sql");
    ServerProcess server(ServerSettings::with_flags({"--durability", mode}));
    EXPECT_EQ(HttpClient(server.port()).request(get_request("/readyz")).status, 200) << mode;
    EXPECT_EQ(HttpClient(server.port())
                  .request(patch_request(attempt_target(kId), answers_body(R"({"1":[3]})")))
                  .status,
              204)
        << mode;
  }
  db_.make_attempts_table_unlogged();
  ServerProcess server;  // unlogged, the default
  EXPECT_EQ(HttpClient(server.port()).request(get_request("/readyz")).status, 200);
}

}  // namespace
}  // namespace attempts::integration
