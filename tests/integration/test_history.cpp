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
// A second run sends each client's requests over two connections in turn (so that one student's
// writes go through both event loops), with four statements in flight per connection and a short
// request timeout, while another session holds row locks of the attempts for up to a few
// seconds (so that batches wait, deadlines pass, and writes are answered 504 while their
// statement goes on). A trigger records every write the table applies, in the order it applied
// them, and the check adds:
// - no write is ever applied after a write of its attempt whose client sent it after hearing
//   back from the first (a 204 is never overwritten by an earlier write, whatever it was told).
//
// ATTEMPTS_HISTORY_SECONDS sets how long the clients run (default 6; CI runs the default, a
// local run can take minutes: the figures are printed at the end).
//
// Attempt ids used here: 9800..9807 (owned by students 9800..9807, as sql/seed.sql seeds them).

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
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
// six, a revision on half of its own writes (growing, so none is ever stale). One request at a
// time, over `connections` connections in turn.
void run_client(int client, std::uint16_t port, const std::atomic<bool>& stop, std::mutex& mutex,
                std::vector<Event>& history, int connections) {
  std::mt19937 random(static_cast<unsigned>(client) * 7919u + 17u);
  const std::string token = token_for(owner_of(kFirstAttempt + client));
  std::vector<std::optional<HttpClient>> https(static_cast<std::size_t>(connections));
  std::int64_t revision = 0;
  for (int sequence = 0; sequence < 1'000'000 && !stop; ++sequence) {
    auto& http = https[static_cast<std::size_t>(sequence % connections)];
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
// `restarts` times, spread over `length`; goes on past it until the restarts are done (a restart
// takes seconds on a loaded machine), within two minutes more; counts what it did.
struct Faults {
  int kills = 0;
  int backends_killed = 0;
  int restarts = 0;
};

void inject_faults(const Database& db, Clock::duration length, Faults& faults, int restarts) {
  const auto start = Clock::now();
  const auto give_up = start + length + seconds(120);
  while (Clock::now() < give_up && (Clock::now() - start < length || faults.restarts < restarts)) {
    std::this_thread::sleep_for(milliseconds(400));
    const auto elapsed = Clock::now() - start;
    if (faults.restarts < restarts && elapsed > length * (faults.restarts + 1) / (restarts + 1)) {
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

// Holds row locks (SELECT ... FOR UPDATE in a transaction) of one to three of the clients'
// attempts for up to `longest`, again and again until `stop`, so that the batches holding them
// wait; counts the rounds.
int hold_row_locks(const Database& db, const std::atomic<bool>& stop, milliseconds longest) {
  std::mt19937 random(4242);
  int rounds = 0;
  while (!stop) {
    try {
      pqxx::connection connection(db.url());
      pqxx::work tx(connection);
      const int count = std::uniform_int_distribution<int>(1, 3)(random);
      std::string ids;
      for (int i = 0; i < count; ++i) {
        ids += (i ? "," : "") + std::to_string(kFirstAttempt + std::uniform_int_distribution<int>(
                                                                   0, kClients - 1)(random));
      }
      tx.exec("SELECT 1 FROM attempts WHERE id IN (" + ids + ") ORDER BY id FOR UPDATE");
      const auto hold =
          milliseconds(std::uniform_int_distribution<long>(100, longest.count())(random));
      for (const auto until = Clock::now() + hold; !stop && Clock::now() < until;) {
        std::this_thread::sleep_for(milliseconds(20));
      }
      tx.commit();
      ++rounds;
    } catch (const std::exception&) {
      // PostgreSQL is restarting, or the lock wait was cancelled: next round.
    }
    std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<long>(50, 400)(random)));
  }
  return rounds;
}

// Records every write the attempts table applies to the clients' attempts, in the order it
// applied them (a row lock orders the writes of one row, so the sequence does too); removed with
// the object.
class AppliedWrites {
 public:
  explicit AppliedWrites(const Database& db) : db_(db) {
    exec(R"sql(
      DROP TABLE IF EXISTS history_test_applied;
      CREATE UNLOGGED TABLE history_test_applied (
        seq bigserial PRIMARY KEY, attempt bigint NOT NULL, answers jsonb NOT NULL);
      CREATE OR REPLACE FUNCTION history_test_record() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO history_test_applied (attempt, answers) VALUES (NEW.id, NEW.answers);
        RETURN NEW;
      END $$;
      CREATE TRIGGER history_test_record AFTER UPDATE OF answers ON attempts FOR EACH ROW
        WHEN (NEW.id BETWEEN )sql" +
         std::to_string(kFirstAttempt) + " AND " + std::to_string(kFirstAttempt + kClients - 1) +
         R"sql()
        EXECUTE FUNCTION history_test_record();)sql");
  }
  ~AppliedWrites() {
    try {
      exec(
          "DROP TRIGGER IF EXISTS history_test_record ON attempts; "
          "DROP FUNCTION IF EXISTS history_test_record(); "
          "DROP TABLE IF EXISTS history_test_applied;");
    } catch (const std::exception&) {
    }
  }
  AppliedWrites(const AppliedWrites&) = delete;
  AppliedWrites& operator=(const AppliedWrites&) = delete;

  // By attempt, the answers written, in the order they were applied.
  std::map<std::int64_t, std::vector<json>> read() const {
    std::map<std::int64_t, std::vector<json>> applied;
    pqxx::connection connection(db_.url());
    pqxx::nontransaction tx(connection);
    for (const auto& row :
         tx.exec("SELECT attempt, answers::text FROM history_test_applied ORDER BY seq")) {
      applied[row[0].as<std::int64_t>()].push_back(json::parse(row[1].as<std::string>()));
    }
    return applied;
  }

 private:
  void exec(const std::string& sql) const {
    pqxx::connection connection(db_.url());
    pqxx::nontransaction(connection).exec(sql);
  }

  const Database& db_;
};

// Of two writes of one attempt, the one its client sent after hearing back from the other must
// not be applied before it: the anomalies, and how many pairs of applied writes were compared.
std::vector<std::string> check_order(const std::vector<Event>& history,
                                     const std::map<std::int64_t, std::vector<json>>& applied,
                                     std::size_t& pairs) {
  std::vector<std::string> anomalies;
  std::map<std::pair<std::int64_t, std::string>, const Event*> write_of;
  for (const auto& event : history) {
    if (event.write) write_of[{event.attempt, event.value.dump()}] = &event;
  }
  for (const auto& [attempt, writes] : applied) {
    std::vector<const Event*> order;
    for (const auto& answers : writes) {
      const auto found = write_of.find({attempt, answers.dump()});
      if (found == write_of.end()) {
        anomalies.push_back("attempt " + std::to_string(attempt) + " was written " +
                            answers.dump() + ", which no client sent");
        continue;
      }
      if (found->second->status != 204 && found->second->status != 504) {
        anomalies.push_back("applied, but answered " + std::to_string(found->second->status) +
                            ": " + describe(*found->second));
      }
      order.push_back(found->second);
    }
    for (std::size_t later = 0; later < order.size(); ++later) {
      for (std::size_t earlier = 0; earlier < later; ++earlier) {
        ++pairs;
        // order[earlier] was applied first; it must not be a write sent after order[later] was
        // answered.
        if (order[later]->answered < order[earlier]->sent) {
          anomalies.push_back("applied after a write its client sent once it was answered: " +
                              describe(*order[later]) + ", then " + describe(*order[earlier]) +
                              " was sent and applied before it");
        }
      }
    }
  }
  return anomalies;
}

// The answer history of the clients' attempts: by attempt, its records in sequence order.
struct Record {
  std::int64_t seq = 0;
  char kind = 's';
  json answers;
};
std::map<std::int64_t, std::vector<Record>> read_records(const Database& db) {
  std::map<std::int64_t, std::vector<Record>> records;
  pqxx::connection connection(db.url());
  pqxx::nontransaction tx(connection);
  for (const auto& row :
       tx.exec_params("SELECT attempt_id, seq, kind, answers::text FROM answer_history "
                      "WHERE attempt_id BETWEEN $1 AND $2 ORDER BY attempt_id, seq",
                      kFirstAttempt, kFirstAttempt + kClients - 1)) {
    records[row[0].as<std::int64_t>()].push_back({row[1].as<std::int64_t>(),
                                                  row[2].as<std::string>().at(0),
                                                  json::parse(row[3].as<std::string>())});
  }
  return records;
}

// The answer history against the history of requests (issue 29): each attempt's records are
// exactly its applied writes in order: every write told 204 is there, no write told 404, 409 or
// 503 is, one told 504 may be; sequence numbers strictly increase; the newest record is what the
// attempt holds. Each client sends one request at a time, so no two of an owner's writes ever
// share a record here. With `applied` (the trigger's record), the order must be its order too.
std::vector<std::string> check_records(const std::vector<Event>& history,
                                       const std::map<std::int64_t, std::vector<Record>>& records,
                                       const std::map<std::int64_t, json>& stored,
                                       const std::map<std::int64_t, std::vector<json>>* applied) {
  std::vector<std::string> anomalies;
  for (std::int64_t attempt = kFirstAttempt; attempt < kFirstAttempt + kClients; ++attempt) {
    const auto found = records.find(attempt);
    const std::vector<Record> none;
    const auto& kept = found == records.end() ? none : found->second;
    const std::string name = "attempt " + std::to_string(attempt) + ": ";
    std::map<std::string, int> on_record;
    for (std::size_t i = 0; i < kept.size(); ++i) {
      if (i > 0 && kept[i].seq <= kept[i - 1].seq)
        anomalies.push_back(name + "sequence numbers do not increase");
      if (kept[i].kind != 's') anomalies.push_back(name + "a record that is not a save");
      ++on_record[kept[i].answers.dump()];
    }
    for (const auto& event : history) {
      if (!event.write || event.attempt != attempt) continue;
      const int count = on_record[event.value.dump()];
      if (count > 1) anomalies.push_back(name + "a write recorded twice: " + describe(event));
      if (event.status == 204 && count == 0)
        anomalies.push_back(name + "a 204 write not on record: " + describe(event));
      if (event.status != 204 && event.status != 504 && count > 0) {
        anomalies.push_back(name + "a write on record that was not applied: " + describe(event));
      }
    }
    const auto& holds = stored.at(attempt);
    if (kept.empty() ? holds != json::object() : kept.back().answers != holds) {
      anomalies.push_back(name + "the newest record is not what it holds, " + holds.dump());
    }
    if (applied != nullptr) {
      std::vector<json> order;
      for (const auto& record : kept) order.push_back(record.answers);
      const auto in_table = applied->find(attempt);
      if (order != (in_table == applied->end() ? std::vector<json>{} : in_table->second)) {
        anomalies.push_back(name + "the records are not the writes in the order applied");
      }
    }
  }
  return anomalies;
}

// What each attempt holds now.
std::map<std::int64_t, json> stored_answers(const Database& db) {
  std::map<std::int64_t, json> stored;
  for (std::int64_t attempt = kFirstAttempt; attempt < kFirstAttempt + kClients; ++attempt) {
    stored[attempt] = json::parse(db.answers_text(attempt));
  }
  return stored;
}

// The statuses of the history, counted, and written out as " 204: n 404: n ...".
std::map<int, int> count_statuses(const std::vector<Event>& history, std::ostream& figures) {
  std::map<int, int> statuses;
  for (const auto& event : history) ++statuses[event.status];
  for (const auto& [status, count] : statuses) figures << " " << status << ": " << count;
  return statuses;
}

TEST(HistoryTest, EveryAnswerFitsTheHistoryWhileBackendsAreKilledAndPostgresRestarts) {
  const Database db;
  db.reset_attempts(kFirstAttempt, kFirstAttempt + kClients - 1);
  const TestJwks jwks;
  ServerProcess server(
      ServerSettings::with_flags({"--auth", "jwt", "--jwks", jwks.path(), "--threads", "2",
                                  "--pool-size", "4", "--request-timeout", "5"}));
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<Event> history;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back(run_client, c, server.port(), std::cref(stop), std::ref(mutex),
                         std::ref(history), 1);
  }
  Faults faults;
  inject_faults(db, run_time(), faults, 2);
  stop = true;
  for (auto& thread : clients) thread.join();

  const auto stored = stored_answers(db);
  auto anomalies = check(history, stored);
  const auto records = read_records(db);
  for (auto& anomaly : check_records(history, records, stored, nullptr)) {
    anomalies.push_back(std::move(anomaly));
  }
  std::ostringstream figures;
  figures << "[ history ] " << kClients << " clients, " << history.size() << " requests in "
          << std::chrono::duration_cast<seconds>(run_time()).count() << " s;";
  auto statuses = count_statuses(history, figures);
  std::size_t on_record = 0;
  for (const auto& [attempt, kept] : records) on_record += kept.size();
  figures << "; " << on_record << " saves on record; " << faults.kills << " kill rounds ("
          << faults.backends_killed << " backends), " << faults.restarts << " restarts; "
          << anomalies.size() << " anomalies\n";
  std::cout << figures.str();
  EXPECT_EQ(faults.restarts, 2);
  EXPECT_GT(faults.backends_killed, 0);
  EXPECT_GT(statuses[204], kClients) << "too few writes got through to check anything";
  for (std::size_t i = 0; i < anomalies.size() && i < 20; ++i) ADD_FAILURE() << anomalies[i];
  EXPECT_TRUE(anomalies.empty()) << anomalies.size() << " anomalies";
}

// Issue 27's setting: one student's writes through both event loops, four statements in flight
// per connection, row locks held past the request timeout, and backends killed.
TEST(HistoryTest, NoWriteAnswered204IsOverwrittenByAnEarlierOneAcrossEventLoopsWithRowsLocked) {
  const Database db;
  db.reset_attempts(kFirstAttempt, kFirstAttempt + kClients - 1);
  const AppliedWrites recorder(db);
  const TestJwks jwks;
  ServerProcess server(ServerSettings::with_flags(
      {"--auth", "jwt", "--jwks", jwks.path(), "--threads", "2", "--pool-size", "2",
       "--pipeline-depth", "4", "--request-timeout", "2"}));
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<Event> history;
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back(run_client, c, server.port(), std::cref(stop), std::ref(mutex),
                         std::ref(history), 2);
  }
  int lock_rounds = 0;
  threads.emplace_back([&] { lock_rounds = hold_row_locks(db, stop, milliseconds(3000)); });
  // Backends killed, but no restart: a restart would end the row locks this run is about.
  Faults faults;
  inject_faults(db, run_time(), faults, 0);
  stop = true;
  for (auto& thread : threads) thread.join();

  const auto stored = stored_answers(db);
  auto anomalies = check(history, stored);
  std::size_t pairs = 0;
  const auto applied = recorder.read();
  for (auto& anomaly : check_order(history, applied, pairs))
    anomalies.push_back(std::move(anomaly));
  const auto records = read_records(db);
  for (auto& anomaly : check_records(history, records, stored, &applied)) {
    anomalies.push_back(std::move(anomaly));
  }
  std::size_t writes_applied = 0;
  for (const auto& [attempt, writes] : applied) writes_applied += writes.size();
  std::ostringstream figures;
  figures << "[ history ] " << kClients << " clients on two connections each, " << history.size()
          << " requests in " << std::chrono::duration_cast<seconds>(run_time()).count() << " s;";
  auto statuses = count_statuses(history, figures);
  figures << "; " << writes_applied << " writes applied, " << pairs << " pairs ordered; "
          << lock_rounds << " lock rounds; " << faults.kills << " kill rounds ("
          << faults.backends_killed << " backends), " << faults.restarts << " restarts; "
          << metric(server.port(), "attempts_db_claim_waits_total") << " claim waits; "
          << anomalies.size() << " anomalies\n";
  std::cout << figures.str();
  EXPECT_GT(lock_rounds, 0);
  EXPECT_GT(statuses[504], 0) << "no write waited past its deadline for a lock";
  EXPECT_GT(statuses[204], kClients) << "too few writes got through to check anything";
  for (std::size_t i = 0; i < anomalies.size() && i < 20; ++i) ADD_FAILURE() << anomalies[i];
  EXPECT_TRUE(anomalies.empty()) << anomalies.size() << " anomalies";
}

}  // namespace
}  // namespace attempts::integration
