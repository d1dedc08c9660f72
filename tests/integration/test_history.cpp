// A history check through the real server and PostgreSQL: several students' clients write and
// read attempts (their own and each other's), every write carrying a value no other write has;
// every request and its answer is recorded, and the history is checked against the rules a
// client relies on, also while database backends are killed and PostgreSQL is restarted:
// - only an attempt's owner is ever told 204 (or 200 for a read); everybody else gets 404, or
//   503/504 while the database is away, never 409 and never the owner's data;
// - each attempt ends holding the last write its owner was told 204 for, or a write told 504
//   (outcome unknown) after it; never a write told 503 or 404;
// - a read returns a value that was written (204 or 504), never one older than a write told
//   204 before the read was sent.
//
// ATTEMPTS_HISTORY_SECONDS sets how long the clients run (default 6; CI runs the default, a
// local run can take minutes: the figures are printed at the end).
//
// Attempt ids used here: 9800..9807 (owned by students 9800..9807, as sql/seed.sql seeds them).

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kFirstAttempt = 9800;
constexpr int kClients = 8;  // client c is the owner of attempt kFirstAttempt + c

std::chrono::seconds run_time() {
  const char* text = std::getenv("ATTEMPTS_HISTORY_SECONDS");
  const long value = text != nullptr ? std::strtol(text, nullptr, 10) : 0;
  return seconds(value > 0 ? value : 6);
}

// One request and what came back.
struct Event {
  int client = 0;
  std::int64_t attempt = 0;
  bool write = false;
  json value;  // write: the answers sent; read (200): the answers returned
  Clock::time_point sent;
  Clock::time_point answered;
  int status = 0;  // 0: no response (the exception is in `error`)
  std::string error;
};

bool owns(int client, std::int64_t attempt) {
  return attempt == kFirstAttempt + client;
}

// What each client does: mostly its own attempt, sometimes another's, a write five times out of
// six, a revision on half of its own writes (growing, so none is ever stale).
void run_client(int client, std::uint16_t port, Clock::time_point until, std::mutex& mutex,
                std::vector<Event>& history) {
  std::mt19937 random(static_cast<unsigned>(client) * 7919u + 17u);
  const std::string token = token_for(owner_of(kFirstAttempt + client));
  std::optional<HttpClient> http;
  std::int64_t revision = 0;
  for (int sequence = 0; sequence < 1'000'000 && Clock::now() < until; ++sequence) {
    Event event;
    event.client = client;
    const bool own = std::uniform_int_distribution<int>(0, 99)(random) < 70;
    event.attempt =
        own ? kFirstAttempt + client
            : kFirstAttempt + std::uniform_int_distribution<int>(0, kClients - 1)(random);
    event.write = std::uniform_int_distribution<int>(0, 5)(random) != 0;
    HttpRequest request = get_request(attempt_target(event.attempt));
    if (event.write) {
      event.value = {{"1", json::array({client})}, {"2", json::array({sequence})}};
      json body = {{"answers", event.value}};
      if (std::uniform_int_distribution<int>(0, 1)(random) == 1) {
        body["revision"] = owns(client, event.attempt) ? ++revision : 1 + sequence % 3;
      }
      request = patch_request(attempt_target(event.attempt), body.dump());
    }
    request = with_token(std::move(request), token);
    event.sent = Clock::now();
    try {
      if (!http) http.emplace(port, seconds(15));
      const auto response = http->request(request);
      event.status = response.status;
      if (!event.write && response.status == 200) {
        event.value = json::parse(response.body).at("answers");
      }
      if (response.header("connection") == std::optional<std::string>("close")) http.reset();
    } catch (const std::exception& error) {
      event.error = error.what();
      http.reset();
    }
    event.answered = Clock::now();
    const std::lock_guard lock(mutex);
    history.push_back(std::move(event));
  }
}

// Kills the server's database sessions every few hundred milliseconds and restarts PostgreSQL
// twice, until `until`; counts what it did.
struct Faults {
  int kills = 0;
  int backends_killed = 0;
  int restarts = 0;
};

void inject_faults(const Database& db, Clock::time_point start, Clock::time_point until,
                   Faults& faults) {
  const auto length = until - start;
  int restarts_due = 0;
  while (Clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(400));
    const auto elapsed = Clock::now() - start;
    if (restarts_due < 2 && elapsed > length * (restarts_due + 1) / 3) {
      ++restarts_due;
      postgres_control::restart();
      ++faults.restarts;
      continue;
    }
    try {
      pqxx::connection connection(db.url());
      pqxx::nontransaction tx(connection);
      const auto rows = tx.exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE application_name = 'attempts-server' AND pid <> pg_backend_pid()");
      ++faults.kills;
      for (const auto& row : rows) faults.backends_killed += row[0].as<bool>() ? 1 : 0;
    } catch (const std::exception&) {
      // PostgreSQL is still coming back from a restart: try again next round.
    }
  }
}

std::string describe(const Event& event) {
  std::ostringstream out;
  out << "client " << event.client << (event.write ? " wrote " : " read ") << "attempt "
      << event.attempt << " " << event.value.dump() << ": "
      << (event.status != 0 ? std::to_string(event.status) : "error " + event.error);
  return out.str();
}

// The anomalies in `history`, given what each attempt holds at the end.
std::vector<std::string> check(const std::vector<Event>& history,
                               const std::map<std::int64_t, json>& stored) {
  std::vector<std::string> anomalies;
  const auto anomaly = [&](const Event& event, const std::string& what) {
    anomalies.push_back(what + ": " + describe(event));
  };
  for (const auto& event : history) {
    if (event.status == 0) {
      anomaly(event, "no response");
      continue;
    }
    const bool owner = owns(event.client, event.attempt);
    if (!owner && event.status != 404 && event.status != 503 && event.status != 504) {
      anomaly(event, "someone else's attempt answered other than 404 (or 503/504)");
    }
    if (owner && event.status != (event.write ? 204 : 200) && event.status != 503 &&
        event.status != 504) {
      anomaly(event, "the owner was refused");
    }
  }
  for (std::int64_t attempt = kFirstAttempt; attempt < kFirstAttempt + kClients; ++attempt) {
    // The owner's writes, in the order they were sent (one client: one after another).
    std::vector<const Event*> writes;
    for (const auto& event : history) {
      if (event.write && event.attempt == attempt && owns(event.client, attempt)) {
        writes.push_back(&event);
      }
    }
    // What may be stored: the last write told 204, or a write told 504 after it.
    std::size_t from = 0;
    for (std::size_t i = 0; i < writes.size(); ++i) {
      if (writes[i]->status == 204) from = i;
    }
    const bool any_204 = !writes.empty() && writes[from]->status == 204;
    std::vector<json> allowed;
    if (!any_204) allowed.push_back(json::object());
    for (std::size_t i = from; i < writes.size(); ++i) {
      if (writes[i]->status == 204 || writes[i]->status == 504) allowed.push_back(writes[i]->value);
    }
    const json& final_value = stored.at(attempt);
    if (std::find(allowed.begin(), allowed.end(), final_value) == allowed.end()) {
      anomalies.push_back("attempt " + std::to_string(attempt) + " holds " + final_value.dump() +
                          ", which is not its last acknowledged write or an unknown one after it");
    }
    // Reads: a value written (204 or 504, sent before the read was answered), and not older
    // than the last write told 204 before the read was sent.
    for (const auto& event : history) {
      if (event.write || event.attempt != attempt || event.status != 200) continue;
      std::optional<std::size_t> newest_acknowledged;
      std::optional<std::size_t> match;
      for (std::size_t i = 0; i < writes.size(); ++i) {
        if (writes[i]->status == 204 && writes[i]->answered < event.sent) newest_acknowledged = i;
        if ((writes[i]->status == 204 || writes[i]->status == 504) &&
            writes[i]->sent < event.answered && writes[i]->value == event.value) {
          match = i;
        }
      }
      const bool initial = event.value == json::object();
      if (!match && !(initial && !newest_acknowledged)) {
        anomaly(event, "a read returned a value never written");
      } else if (newest_acknowledged && (!match || *match < *newest_acknowledged)) {
        anomaly(event, "a read returned a value older than an acknowledged write");
      }
    }
  }
  return anomalies;
}

TEST(HistoryTest, EveryAnswerFitsTheHistoryWhileBackendsAreKilledAndPostgresRestarts) {
  const Database db;
  db.reset_attempts(kFirstAttempt, kFirstAttempt + kClients - 1);
  const TestJwks jwks;
  ServerProcess server(
      ServerSettings::with_flags({"--auth", "jwt", "--jwks", jwks.path(), "--threads", "2",
                                  "--pool-size", "4", "--request-timeout", "5"}));
  const auto start = Clock::now();
  const auto until = start + run_time();
  std::mutex mutex;
  std::vector<Event> history;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back(run_client, c, server.port(), until, std::ref(mutex), std::ref(history));
  }
  Faults faults;
  inject_faults(db, start, until, faults);
  for (auto& thread : clients) thread.join();

  std::map<std::int64_t, json> stored;
  for (std::int64_t attempt = kFirstAttempt; attempt < kFirstAttempt + kClients; ++attempt) {
    stored[attempt] = json::parse(db.answers_text(attempt));
  }
  const auto anomalies = check(history, stored);
  std::map<int, int> statuses;
  for (const auto& event : history) ++statuses[event.status];
  std::ostringstream figures;
  figures << "[ history ] " << kClients << " clients, " << history.size() << " requests in "
          << std::chrono::duration_cast<seconds>(run_time()).count() << " s;";
  for (const auto& [status, count] : statuses) figures << " " << status << ": " << count;
  figures << "; " << faults.kills << " kill rounds (" << faults.backends_killed << " backends), "
          << faults.restarts << " restarts; " << anomalies.size() << " anomalies\n";
  std::cout << figures.str();
  EXPECT_EQ(faults.restarts, 2);
  EXPECT_GT(faults.backends_killed, 0);
  EXPECT_GT(statuses[204], kClients) << "too few writes got through to check anything";
  for (std::size_t i = 0; i < anomalies.size() && i < 20; ++i) ADD_FAILURE() << anomalies[i];
  EXPECT_TRUE(anomalies.empty()) << anomalies.size() << " anomalies";
}

}  // namespace
}  // namespace attempts::integration
