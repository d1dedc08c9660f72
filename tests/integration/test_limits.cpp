// Limits that must hold against hostile clients and a stalled database: every buffer a client
// can fill has a maximum, every request has a deadline whatever the database does, shutdown is
// bounded, and a write whose commit is in doubt is never called unsaved. Each test prints what it
// measured as "[  FIGURE  ] name = value" lines.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>
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

// Memory figures are taken with ASan's quarantine off: it would otherwise keep freed memory
// resident on purpose (up to 256 MB), which is not what these tests measure.
const std::pair<std::string, std::string> kNoQuarantine = {
    "ASAN_OPTIONS", "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"};

void report_figure(const std::string& name, const std::string& value) {
  ::testing::Test::RecordProperty(name, value);
  std::cout << "[  FIGURE  ] " << name << " = " << value << std::endl;
}

void report_figure(const std::string& name, std::int64_t value) {
  report_figure(name, std::to_string(value));
}

std::string ms_text(Clock::duration duration) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(duration).count()) + " ms";
}

// A client socket for hostile byte streams: non-blocking, so a test can keep sending while the
// server answers, and read what came back without waiting.
class RawSocket {
 public:
  explicit RawSocket(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      ::close(fd_);
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  // Sends as much of `bytes` as the socket takes within `timeout`; false once the server has
  // closed or reset the connection.
  bool send_some(std::string_view bytes, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!bytes.empty() && Clock::now() < deadline) {
      const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(sent));
        sent_ += static_cast<std::size_t>(sent);
        continue;
      }
      if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      pollfd waiting{fd_, POLLOUT, 0};
      ::poll(&waiting, 1, 10);
      read_available();
      if (closed_) return false;
    }
    return true;
  }

  // Reads whatever has arrived; notes EOF or a reset.
  void read_available() {
    char buffer[4096];
    for (;;) {
      const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      if (got > 0) {
        received_.append(buffer, static_cast<std::size_t>(got));
        continue;
      }
      if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed_ = true;
      return;
    }
  }

  // Waits up to `timeout` for the server to close the connection, reading what it sends.
  bool wait_for_close(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!closed_ && Clock::now() < deadline) {
      pollfd waiting{fd_, POLLIN | POLLRDHUP, 0};
      ::poll(&waiting, 1, 20);
      read_available();
    }
    return closed_;
  }

  int status() const {
    static const std::regex kStatusLine(R"(^HTTP/1\.[01] (\d{3}) )");
    std::smatch match;
    if (!std::regex_search(received_, match, kStatusLine)) return 0;
    return std::stoi(match[1].str());
  }

  std::size_t sent() const { return sent_; }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::size_t sent_ = 0;
  std::string received_;
  bool closed_ = false;
};

// ---- buffers a client can fill ----------------------------------------------------------------

class HostileClientTest : public testing::Test {
 protected:
  // Streams `prefix`, then `filler` again and again (up to `limit` bytes or until the server
  // closes), then checks the server's RSS grew by less than `max_growth_kib`, that it answered
  // `expected_status` and closed the connection.
  void flood(const std::string& name, const std::string& prefix, const std::string& filler,
             std::size_t limit, int expected_status) {
    constexpr std::size_t kMaxGrowthKib = 16 * 1024;
    ServerSettings settings;
    settings.env = {kNoQuarantine};
    ServerProcess server(settings);
    const std::size_t rss_before = server.rss_kib();
    RawSocket socket(server.port());
    std::size_t peak = rss_before;
    const auto started = Clock::now();
    bool open = socket.send_some(prefix, seconds(5));
    while (open && socket.sent() < limit && socket.status() == 0 &&
           Clock::now() - started < seconds(60)) {
      open = socket.send_some(filler, seconds(5));
      socket.read_available();  // the answer may come while the server still drains the input
      peak = std::max(peak, server.rss_kib());
    }
    const bool closed = socket.wait_for_close(seconds(5));
    peak = std::max(peak, server.rss_kib());
    report_figure(name + "_bytes_sent", static_cast<std::int64_t>(socket.sent()));
    report_figure(name + "_rss_growth_kib", static_cast<std::int64_t>(peak - rss_before));
    report_figure(name + "_answered_after", ms_text(Clock::now() - started));

    EXPECT_LT(peak - rss_before, kMaxGrowthKib) << "RSS grew from " << rss_before << " KiB";
    EXPECT_EQ(socket.status(), expected_status) << socket.received().substr(0, 512);
    EXPECT_NE(socket.received().find("{\"error\":"), std::string::npos);
    EXPECT_TRUE(closed) << "the connection is still open";
    EXPECT_LT(socket.sent(), limit) << "the server read everything without answering";
    EXPECT_TRUE(server.running());
    // And the server still serves others.
    EXPECT_EQ(HttpClient(server.port()).request(get_request("/healthz")).status, 200);
  }
};

constexpr std::size_t kFloodBytes = 64u << 20;

TEST_F(HostileClientTest, EndlessChunkExtensionIsRefusedWithBoundedMemory) {
  flood("chunk_extension",
        "PATCH /attempts/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5;ext=",
        std::string(64 * 1024, 'a'), kFloodBytes, 400);
}

TEST_F(HostileClientTest, EndlessChunkSizeLineIsRefusedWithBoundedMemory) {
  // Leading zeros are a valid chunk size, just never-ending.
  flood("chunk_size_line",
        "PATCH /attempts/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        std::string(64 * 1024, '0'), kFloodBytes, 400);
}

TEST_F(HostileClientTest, EndlessTrailerLineIsRefusedWithBoundedMemory) {
  flood("trailer_line",
        "PATCH /attempts/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: ",
        std::string(64 * 1024, 'a'), kFloodBytes, 400);
}

TEST_F(HostileClientTest, EndlessTrailerFieldsAreRefusedWithBoundedMemory) {
  std::string fields;
  for (int i = 0; fields.size() < 64 * 1024; ++i) fields += "X-T" + std::to_string(i) + ": v\r\n";
  flood("trailer_fields",
        "PATCH /attempts/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n",
        fields, kFloodBytes, 400);
}

TEST_F(HostileClientTest, EndlessHeaderIsRefusedWithBoundedMemory) {
  flood("header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ", std::string(64 * 1024, 'a'),
        kFloodBytes, 431);
}

TEST_F(HostileClientTest, EndlessRequestLineIsRefusedWithBoundedMemory) {
  flood("request_line", "GET /", std::string(64 * 1024, 'a'), kFloodBytes, 431);
}

TEST_F(HostileClientTest, ManySmallChunksBeyondTheBodyLimitAre413) {
  std::string chunks;
  while (chunks.size() < 64 * 1024) chunks += "1\r\na\r\n";
  flood("small_chunks",
        "PATCH /attempts/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        chunks, kFloodBytes, 413);
}

// Finding 4: idle keep-alive connections kept their last response (and request) buffers.
TEST_F(HostileClientTest, IdleConnectionsAfterLargeReadsHoldNoResponseBuffers) {
  constexpr int kConnections = 5000;
  constexpr std::int64_t kId = 9100;
  constexpr std::size_t kMaxGrowthKib = 64 * 1024;
  ASSERT_GE(raise_open_file_limit(), static_cast<rlim_t>(kConnections + 200));
  Database db;
  db.reset_attempts(kId, kId);
  // About 60 KB of answers: 3,200 questions of one option each.
  std::string answers = "{";
  for (int q = 1; q <= 3200; ++q) {
    if (q > 1) answers += ',';
    // Appended, not "\"" + a new string: GCC 12 warns of an overlapping copy there
    // (-Wrestrict, a false positive).
    answers.append("\"").append(std::to_string(q)).append("\":[");
    answers.append(std::to_string(1000000 + q)).append("]");
  }
  answers += "}";
  // A long idle timeout: on a busy machine opening 5,000 connections may take longer than the
  // default, and the first must still be open at the end.
  auto settings = ServerSettings::with_flags(
      {"--max-connections", "10000", "--body-limit", "131072", "--idle-timeout", "300"});
  settings.env = {kNoQuarantine};
  ServerProcess server(settings);
  ASSERT_EQ(HttpClient(server.port())
                .request(patch_request(attempt_target(kId), answers_body(answers)))
                .status,
            204);
  const std::size_t rss_before = server.rss_kib();
  std::vector<HttpClient> idle;
  idle.reserve(kConnections);
  std::size_t body_bytes = 0;
  for (int i = 0; i < kConnections; ++i) {
    idle.emplace_back(server.port(), seconds(30));
    const auto response = idle.back().request(get_request(attempt_target(kId)));
    ASSERT_EQ(response.status, 200) << "connection " << i;
    body_bytes = response.body.size();
  }
  std::this_thread::sleep_for(milliseconds(200));
  const std::size_t rss_after = server.rss_kib();
  report_figure("idle_connections", kConnections);
  report_figure("idle_response_bytes_each", static_cast<std::int64_t>(body_bytes));
  report_figure("idle_rss_growth_kib", static_cast<std::int64_t>(rss_after - rss_before));
  EXPECT_GT(body_bytes, 55000u);
  EXPECT_LT(rss_after - rss_before, kMaxGrowthKib)
      << "5,000 idle connections hold " << (rss_after - rss_before) / 1024 << " MiB";
  EXPECT_EQ(idle.front().request(get_request("/healthz")).status, 200);
}

// Finding 6: RFC 9110 10.1.1, an HTTP/1.0 client's expectation is ignored.
TEST_F(HostileClientTest, ExpectContinueFromAnHttp10ClientGetsNoInterimResponse) {
  ServerProcess server;
  HttpClient client(server.port());
  client.send_raw(
      "PATCH /attempts/9200 HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  std::this_thread::sleep_for(milliseconds(300));
  client.send_raw("{}");
  const auto response = client.read_response();
  EXPECT_NE(response.status, 100);
  EXPECT_EQ(response.version, "HTTP/1.0");
  EXPECT_EQ(response.status, 400) << response;  // {} has no "answers": a final answer
}

TEST_F(HostileClientTest, ExpectContinueFromAnHttp11ClientStillGetsOne) {
  ServerProcess server;
  HttpClient client(server.port());
  client.send_raw(
      "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(client.read_response().status, 100);
  client.send_raw("{}");
  EXPECT_EQ(client.read_response().status, 200);
}

// Finding 7: out of descriptors, the accept loop spun and logged a warning per attempt, and
// extra clients hung in the backlog.
TEST_F(HostileClientTest, OutOfDescriptorsExtraClientsAreRefusedAndTheWarningIsRateLimited) {
  constexpr unsigned kFileLimit = 128;
  constexpr int kClients = 200;
  ServerSettings settings;
  settings.open_file_limit = kFileLimit;
  ServerProcess server(settings);
  const std::string log_at_start = server.log();
  static const std::regex kFitted(R"(serving at most (\d+) connections)");
  std::smatch fitted;
  ASSERT_TRUE(std::regex_search(log_at_start, fitted, kFitted)) << log_at_start;
  const int limit = std::stoi(fitted[1].str());
  report_figure("descriptors_limit", kFileLimit);
  report_figure("descriptors_max_connections_fitted", limit);
  EXPECT_LT(limit, static_cast<int>(kFileLimit));

  std::vector<std::unique_ptr<RawSocket>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<RawSocket>(server.port()));
  std::this_thread::sleep_for(milliseconds(500));
  int refused = 0;
  for (auto& client : clients) refused += client->wait_for_close(milliseconds(10)) ? 1 : 0;
  // Whoever is still open is served.
  int served = 0;
  for (auto& client : clients) {
    if (client->wait_for_close(milliseconds(0))) continue;
    client->send_some("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", seconds(2));
  }
  for (auto& client : clients) {
    client->wait_for_close(milliseconds(0));
    const auto deadline = Clock::now() + seconds(5);
    while (client->status() == 0 && !client->wait_for_close(milliseconds(20)) &&
           Clock::now() < deadline) {
    }
    served += client->status() == 200 ? 1 : 0;
  }
  const std::string log = server.log();
  int warnings = 0;
  for (std::size_t at = log.find("accept failed"); at != std::string::npos;
       at = log.find("accept failed", at + 1)) {
    ++warnings;
  }
  report_figure("descriptors_clients", kClients);
  report_figure("descriptors_clients_refused", refused);
  report_figure("descriptors_clients_served", served);
  report_figure("descriptors_accept_warnings", warnings);
  EXPECT_EQ(refused + served, kClients) << "clients neither served nor refused: left hanging";
  EXPECT_GE(served, limit - 2);
  EXPECT_LE(warnings, 2);
  clients.clear();
  EXPECT_EQ(HttpClient(server.port()).request(get_request("/healthz")).status, 200);
}

// ---- a stalled database ------------------------------------------------------------------------

// Every process of the test cluster (the postmaster and its children), as a hung host would be:
// stopped with SIGSTOP for the guard's lifetime, always continued (SIGCONT) at the end.
class StoppedPostgres {
 public:
  // `backends_of` limits it to the backends with this application_name (the postmaster and the
  // rest keep running).
  explicit StoppedPostgres(std::optional<std::string> backends_of = std::nullopt) {
    if (backends_of) {
      pqxx::connection connection(TestEnvironment::get().database_url);
      pqxx::nontransaction tx(connection);
      for (const auto& row : tx.exec_params(
               "SELECT pid FROM pg_stat_activity WHERE application_name = $1", *backends_of)) {
        pids_.push_back(row[0].as<pid_t>());
      }
    } else {
      std::ifstream pidfile(TestEnvironment::get().pg_data + "/postmaster.pid");
      pid_t postmaster = 0;
      pidfile >> postmaster;
      pids_.push_back(postmaster);
      std::ifstream children("/proc/" + std::to_string(postmaster) + "/task/" +
                             std::to_string(postmaster) + "/children");
      for (pid_t child; children >> child;) pids_.push_back(child);
    }
    for (const pid_t pid : pids_) ::kill(pid, SIGSTOP);
  }
  ~StoppedPostgres() { resume(); }
  StoppedPostgres(const StoppedPostgres&) = delete;
  StoppedPostgres& operator=(const StoppedPostgres&) = delete;

  void resume() {
    for (const pid_t pid : pids_) ::kill(pid, SIGCONT);
    pids_.clear();
  }
  std::size_t size() const { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
};

class StalledDatabaseFaultTest : public testing::Test {
 protected:
  static constexpr seconds kRequestTimeout{2};
  static constexpr milliseconds kMargin{1500};  // ASan/TSan builds, 2 shared cores
  Database db_;
};

TEST_F(StalledDatabaseFaultTest, EveryRequestIsAnsweredWithinItsDeadlineAndShutdownIsBounded) {
  constexpr std::int64_t kId = 9300;
  constexpr seconds kShutdownTimeout{2};
  db_.reset_attempts(kId, kId + 3);
  ServerProcess server(
      ServerSettings::with_flags({"--request-timeout", std::to_string(kRequestTimeout.count()),
                                  "--shutdown-timeout", std::to_string(kShutdownTimeout.count())}));
  const auto port = server.port();
  ASSERT_EQ(HttpClient(port).request(patch_request(attempt_target(kId), answers_body("{}"))).status,
            204);
  // The PATCH's connection is closed; the server counts it out when it reads the close, so wait
  // for only the scrape's own connection to be open.
  double open_before = metric(port, "attempts_http_open_connections");
  for (int i = 0; i < 40 && open_before > 1; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    open_before = metric(port, "attempts_http_open_connections");
  }

  std::optional<StoppedPostgres> stopped(std::in_place);
  ASSERT_GT(stopped->size(), 1u);
  struct Timed {
    HttpResponse response;
    Clock::duration took;
  };
  const auto timed = [&](const HttpRequest& request) {
    const auto sent = Clock::now();
    HttpClient client(port, seconds(30));
    auto response = client.request(request);
    return Timed{std::move(response), Clock::now() - sent};
  };
  // Concurrently, as a real stall would meet them.
  std::vector<std::thread> threads;
  std::optional<Timed> patch, get, ready;
  threads.emplace_back(
      [&] { patch = timed(patch_request(attempt_target(kId + 1), answers_body(R"({"1":[1]})"))); });
  threads.emplace_back([&] { get = timed(get_request(attempt_target(kId + 2))); });
  threads.emplace_back([&] { ready = timed(get_request("/readyz")); });
  std::this_thread::sleep_for(milliseconds(200));
  const auto health = timed(get_request("/healthz"));
  const auto metrics_page = timed(get_request("/metrics"));
  for (auto& thread : threads) thread.join();

  report_figure("stall_patch_answered_after", ms_text(patch->took));
  report_figure("stall_get_answered_after", ms_text(get->took));
  report_figure("stall_readyz_answered_after", ms_text(ready->took));
  report_figure("stall_healthz_answered_after", ms_text(health.took));
  report_figure("stall_patch_status", patch->response.status);
  EXPECT_TRUE(patch->response.status == 503 || IsUnknownOutcome(patch->response))
      << patch->response;
  EXPECT_LE(patch->took, kRequestTimeout + kMargin);
  EXPECT_TRUE(IsUnavailable(get->response)) << get->response;
  EXPECT_LE(get->took, kRequestTimeout + kMargin);
  EXPECT_TRUE(IsUnavailable(ready->response)) << ready->response;
  EXPECT_LE(ready->took, seconds(2) + kMargin);
  EXPECT_EQ(health.response.status, 200);
  EXPECT_LT(health.took, milliseconds(500));
  EXPECT_EQ(metrics_page.response.status, 200);
  EXPECT_LT(metrics_page.took, milliseconds(500));
  // Connections are counted out as they close: back to where they were (the scrape's own
  // connection is the one counted then and now).
  double open_after = metric(port, "attempts_http_open_connections");
  for (int i = 0; i < 40 && open_after > open_before; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    open_after = metric(port, "attempts_http_open_connections");
  }
  EXPECT_EQ(open_after, open_before);

  // SIGTERM with a write stuck on the stalled database: the process exits within the shutdown
  // timeout, non-zero, saying what it abandoned.
  HttpClient stuck(port, seconds(30));
  stuck.send(patch_request(attempt_target(kId + 3), answers_body(R"({"1":[2]})")));
  std::this_thread::sleep_for(milliseconds(200));
  const auto signalled = Clock::now();
  server.signal(SIGTERM);
  const auto status = server.wait_for_exit(kShutdownTimeout + kMargin);
  const auto exit_took = Clock::now() - signalled;
  stopped.reset();  // SIGCONT, whatever happened
  report_figure("stall_sigterm_exit_after", ms_text(exit_took));
  ASSERT_TRUE(status) << "still running " << ms_text(exit_took) << " after SIGTERM";
  EXPECT_NE(*status, ExitStatus::exit_code(0));
  EXPECT_NE(server.log().find("abandoning"), std::string::npos) << server.log();
}

TEST_F(StalledDatabaseFaultTest, AConnectionThatOverranIsDroppedAndTheServiceRecovers) {
  constexpr std::int64_t kId = 9310;
  db_.reset_attempts(kId, kId + 1);
  ServerProcess server(
      ServerSettings::with_flags({"--request-timeout", std::to_string(kRequestTimeout.count()),
                                  "--threads", "1", "--pool-size", "1"}));
  const auto port = server.port();
  ASSERT_EQ(HttpClient(port).request(patch_request(attempt_target(kId), answers_body("{}"))).status,
            204);
  // Only the server's backend stops: the postmaster still takes new connections.
  StoppedPostgres stopped(std::string("attempts-server"));
  ASSERT_EQ(stopped.size(), 1u);

  const auto sent = Clock::now();
  const auto lost = HttpClient(port, seconds(30))
                        .request(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})")));
  const auto took = Clock::now() - sent;
  report_figure("overrun_answered_after", ms_text(took));
  EXPECT_TRUE(IsUnknownOutcome(lost)) << lost;
  EXPECT_LE(took, kRequestTimeout + kMargin);

  // The stalled connection is never reused: a fresh one serves the next writes while the old
  // backend is still stopped.
  const auto deadline = Clock::now() + seconds(10);
  int status = 0;
  while (status != 204 && Clock::now() < deadline) {
    status = HttpClient(port, seconds(30))
                 .request(patch_request(attempt_target(kId + 1), answers_body(R"({"1":[3]})")))
                 .status;
    if (status != 204) std::this_thread::sleep_for(milliseconds(100));
  }
  report_figure("overrun_recovered_after", ms_text(Clock::now() - sent));
  EXPECT_EQ(status, 204);
  EXPECT_TRUE(StoredAnswersAre(db_, kId + 1, R"({"1":[3]})"));
  EXPECT_GE(metric(port, "attempts_db_stalled_connections_total"), 1.0);
  stopped.resume();
}

// ---- a commit whose reply is lost --------------------------------------------------------------

// A TCP proxy between the server and PostgreSQL. Once `swallow_replies()` is called, it stops
// passing PostgreSQL's bytes to the server, and closes the connection a little later: the
// server's statement commits, but its reply never arrives.
class ReplySwallowingProxy {
 public:
  explicit ReplySwallowingProxy(std::uint16_t target_port) : target_port_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("proxy: cannot listen");
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ReplySwallowingProxy() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

  std::uint16_t port() const { return port_; }
  void swallow_replies() { swallowing_ = true; }
  std::size_t swallowed() const { return swallowed_; }

 private:
  struct Pair {
    int client;
    int server;
  };

  void run() {
    std::vector<Pair> pairs;
    // max() while nothing is to be closed (not an optional: GCC 12 warns that its value may be
    // read uninitialized, -Wmaybe-uninitialized, a false positive).
    constexpr auto kNever = Clock::time_point::max();
    Clock::time_point close_at = kNever;
    while (!stop_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (const auto& pair : pairs) {
        fds.push_back({pair.client, POLLIN, 0});
        fds.push_back({pair.server, POLLIN, 0});
      }
      ::poll(fds.data(), fds.size(), 20);
      const std::size_t polled = pairs.size();  // a pair accepted now is polled next time
      if (fds[0].revents & POLLIN) {
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(target_port_);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (client >= 0 &&
            ::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
          pairs.push_back({client, server});
        }
      }
      for (std::size_t i = 0; i < polled; ++i) {
        char buffer[65536];
        if (fds[1 + 2 * i].revents & (POLLIN | POLLHUP)) {
          const ssize_t got = ::recv(pairs[i].client, buffer, sizeof buffer, 0);
          if (got > 0) ::send(pairs[i].server, buffer, static_cast<std::size_t>(got), MSG_NOSIGNAL);
        }
        if (fds[2 + 2 * i].revents & (POLLIN | POLLHUP)) {
          const ssize_t got = ::recv(pairs[i].server, buffer, sizeof buffer, 0);
          if (got > 0 && swallowing_) {
            swallowed_ += static_cast<std::size_t>(got);
            if (close_at == kNever) close_at = Clock::now() + milliseconds(200);
          } else if (got > 0) {
            ::send(pairs[i].client, buffer, static_cast<std::size_t>(got), MSG_NOSIGNAL);
          }
        }
      }
      if (Clock::now() >= close_at) {
        for (const auto& pair : pairs) {
          ::close(pair.client);
          ::close(pair.server);
        }
        pairs.clear();
        close_at = kNever;
        swallowing_ = false;
      }
    }
    for (const auto& pair : pairs) {
      ::close(pair.client);
      ::close(pair.server);
    }
  }

  std::uint16_t target_port_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> swallowing_{false};
  std::atomic<std::size_t> swallowed_{0};
};

std::uint16_t postgres_port() {
  static const std::regex kPort(R"(:(\d+)/)");
  std::smatch match;
  const std::string& url = TestEnvironment::get().database_url;
  if (!std::regex_search(url, match, kPort)) throw std::runtime_error("no port in " + url);
  return static_cast<std::uint16_t>(std::stoi(match[1].str()));
}

std::string url_through(std::uint16_t port) {
  std::string url = TestEnvironment::get().database_url;
  static const std::regex kPort(R"(:(\d+)/)");
  // Appended, not ":" + a new string: GCC 12 warns of an overlapping copy there (-Wrestrict, a
  // false positive).
  std::string replacement = ":";
  replacement.append(std::to_string(port)).append("/");
  return std::regex_replace(url, kPort, replacement, std::regex_constants::format_first_only);
}

TEST_F(StalledDatabaseFaultTest, ACommitWhoseReplyIsLostIsAnsweredOutcomeUnknownNotUnsaved) {
  constexpr std::int64_t kId = 9320;
  db_.reset_attempts(kId, kId);
  ReplySwallowingProxy proxy(postgres_port());
  ServerSettings settings = ServerSettings::with_flags({"--threads", "1", "--pool-size", "1"});
  settings.database_url = url_through(proxy.port());
  ServerProcess server(settings);
  ASSERT_EQ(HttpClient(server.port())
                .request(patch_request(attempt_target(kId), answers_body(R"({"1":[1]})")))
                .status,
            204);

  proxy.swallow_replies();
  const auto response =
      HttpClient(server.port(), seconds(30))
          .request(patch_request(attempt_target(kId), answers_body(R"({"1":[2]})")));
  report_figure("lost_reply_status", response.status);
  report_figure("lost_reply_bytes_swallowed", static_cast<std::int64_t>(proxy.swallowed()));
  EXPECT_GT(proxy.swallowed(), 0u);
  EXPECT_TRUE(IsUnknownOutcome(response)) << response;
  // It was committed: saying "nothing was saved" would have been false.
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[2]})"));
}

// ---- revisions: safe retries -------------------------------------------------------------------

HttpRequest revised_patch(std::int64_t id, std::int64_t revision, const std::string& answers) {
  return patch_request(attempt_target(id), R"({"revision":)" + std::to_string(revision) +
                                               R"(,"answers":)" + answers + "}");
}

class RevisionTest : public testing::Test {
 protected:
  Database db_;
};

TEST_F(RevisionTest, AnOlderOrEqualRevisionChangesNothingAndSaysWhatIsStored) {
  constexpr std::int64_t kId = 9400;
  db_.reset_attempts(kId, kId);
  ServerProcess server;
  HttpClient client(server.port());
  ASSERT_EQ(client.request(revised_patch(kId, 5, R"({"1":[5]})")).status, 204);

  for (const std::int64_t stale : {4, 5}) {
    const auto response = client.request(revised_patch(kId, stale, R"({"1":[0]})"));
    EXPECT_EQ(response.status, 409) << response;
    EXPECT_NE(response.body.find("\"revision\":5"), std::string::npos) << response;
    EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[5]})"));
  }
  ASSERT_EQ(client.request(revised_patch(kId, 6, R"({"1":[6]})")).status, 204);
  // Without a revision: last received wins, as before revisions existed; the stored revision
  // stays, so a late retry of revision 6 is still refused.
  ASSERT_EQ(client.request(patch_request(attempt_target(kId), answers_body(R"({"1":[7]})"))).status,
            204);
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[7]})"));
  EXPECT_EQ(client.request(revised_patch(kId, 6, R"({"1":[6]})")).status, 409);
  const auto read = client.request(get_request(attempt_target(kId)));
  EXPECT_NE(read.body.find("\"revision\":6"), std::string::npos) << read;
}

TEST_F(RevisionTest, RevisionsQueuedTogetherAreJudgedOneAtATimeInArrivalOrder) {
  constexpr std::int64_t kDecoy = 9410;
  constexpr std::int64_t kId = 9411;
  db_.reset_attempts(kDecoy, kId);
  ServerProcess server(
      ServerSettings::with_flags({"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1"}));
  AttemptLock lock(db_, kDecoy);
  HttpClient decoy(server.port());
  decoy.send(patch_request(attempt_target(kDecoy), answers_body("{}")));
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, seconds(5)));

  // Queued behind the stuck statement together: 7, 9, 8 on three connections. Each is judged
  // against the revision the ones before it left: 7 and 9 apply, 8 is not newer than 9.
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (const std::int64_t revision : {7, 9, 8}) {
    clients.push_back(std::make_unique<HttpClient>(server.port()));
    clients.back()->send(
        revised_patch(kId, revision, "{\"1\":[" + std::to_string(revision) + "]}"));
    std::this_thread::sleep_for(milliseconds(100));
  }
  lock.release();
  ASSERT_EQ(decoy.read_response().status, 204);
  std::vector<int> statuses;
  for (auto& client : clients) {
    const auto response = client->read_response();
    statuses.push_back(response.status);
    if (response.status == 409) {
      EXPECT_NE(response.body.find("\"revision\":9"), std::string::npos) << response;
    }
  }
  EXPECT_EQ(statuses, (std::vector<int>{204, 204, 409}));
  EXPECT_TRUE(StoredAnswersAre(db_, kId, R"({"1":[9]})"));
  const auto read = HttpClient(server.port()).request(get_request(attempt_target(kId)));
  EXPECT_NE(read.body.find("\"revision\":9"), std::string::npos) << read;
}

TEST_F(RevisionTest, ARevisionMustBeAPositive64BitInteger) {
  constexpr std::int64_t kId = 9420;
  db_.reset_attempts(kId, kId);
  ServerProcess server;
  HttpClient client(server.port());
  for (const std::string revision :
       {"0", "-1", "1.5", "\"3\"", "null", "9223372036854775808", "[1]", "{}"}) {
    const auto response = client.request(patch_request(
        attempt_target(kId), R"({"revision":)" + revision + R"(,"answers":{"1":[1]}})"));
    EXPECT_TRUE(IsJsonError(response, 400)) << revision << ": " << response;
  }
  EXPECT_EQ(db_.read_attempt(kId)->updated_at, std::nullopt);
}

// ---- queues bounded in bytes -------------------------------------------------------------------

TEST_F(StalledDatabaseFaultTest, QueuedBytesAreBoundedAndLargeWritesBeyondAreRefusedAtOnce) {
  constexpr std::int64_t kDecoy = 9500;
  constexpr int kWrites = 40;
  constexpr std::size_t kQueueBytes = 256 * 1024;
  db_.reset_attempts(kDecoy, kDecoy + kWrites);
  ServerProcess server(ServerSettings::with_flags(
      {"--threads", "1", "--pool-size", "1", "--pipeline-depth", "1", "--queue-bytes",
       std::to_string(kQueueBytes), "--body-limit", "131072"}));
  AttemptLock lock(db_, kDecoy);
  HttpClient decoy(server.port());
  decoy.send(patch_request(attempt_target(kDecoy), answers_body("{}")));
  ASSERT_TRUE(db_.wait_for_lock_waiters(1, seconds(5)));

  // About 50 KB each: only five fit in 256 KiB.
  std::string answers = "{";
  for (int q = 1; q <= 5000; ++q) {
    if (q > 1) answers += ',';
    // Appended: see HostileClientTest.IdleConnectionsAfterLargeReadsHoldNoResponseBuffers.
    answers.append("\"").append(std::to_string(q)).append("\":[");
    answers.append(std::to_string(q)).append("]");
  }
  answers += "}";
  std::vector<std::unique_ptr<HttpClient>> clients;
  int refused_at_once = 0;
  for (int i = 1; i <= kWrites; ++i) {
    clients.push_back(std::make_unique<HttpClient>(server.port(), seconds(30)));
    clients.back()->send(patch_request(attempt_target(kDecoy + i), answers_body(answers)));
  }
  // Every write has been read and either queued or refused before the decoy is let go.
  const auto deadline = Clock::now() + seconds(30);
  while (
      Clock::now() < deadline &&
      metric(server.port(), "attempts_db_queue_depth{connection=\"0\"}") +
              metric(server.port(),
                     "attempts_http_requests_total{route=\"PATCH /attempts/{id}\",code=\"503\"}") <
          kWrites) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  lock.release();
  ASSERT_EQ(decoy.read_response().status, 204);
  int saved = 0;
  for (auto& client : clients) {
    const auto response = client->read_response();
    if (response.status == 204) ++saved;
    if (response.status == 503) {
      ++refused_at_once;
      EXPECT_TRUE(IsUnavailable(response)) << response;
    }
  }
  report_figure("queue_bytes_limit", static_cast<std::int64_t>(kQueueBytes));
  report_figure("queue_bytes_writes_saved", saved);
  report_figure("queue_bytes_writes_refused", refused_at_once);
  EXPECT_EQ(saved + refused_at_once, kWrites);
  EXPECT_LE(static_cast<std::size_t>(saved) * answers.size(), kQueueBytes);
  EXPECT_GE(saved, 1);
  EXPECT_GE(refused_at_once, kWrites - 6);
}

}  // namespace
}  // namespace attempts::integration
