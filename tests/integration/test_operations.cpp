// Operating the service: GET /metrics (the whole page parsed as the Prometheus text format 0.0.4,
// counters checked to move as requests are served, pool metrics through a PostgreSQL outage),
// logs (JSON lines, the access log, rate-limited database errors, no password), configuration
// (TOML file, environment, flags, --print-config) and two instances sharing one port with
// SO_REUSEPORT.
//
// Attempt ids used here: 7000..7999, each test its own, reset before use.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "support/assertions.hpp"
#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/subprocess.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kMissingId = 5'000'000;  // the seed has ids 1..100000 only

// Every setting's environment variable, so that a test's child sees only what it sets.
constexpr const char* kSettingVariables[] = {
    "LISTEN",          "DATABASE_URL", "THREADS",    "POOL_SIZE",        "BODY_LIMIT",
    "LOG_LEVEL",       "LOG_FORMAT",   "ACCESS_LOG", "MAX_BATCH",        "QUEUE_CAPACITY",
    "MAX_CONNECTIONS", "IDLE_TIMEOUT", "REUSE_PORT", "SHUTDOWN_TIMEOUT", "CONFIG",
};

// ---- The Prometheus text format, version 0.0.4 ----------------------------------------------

using Labels = std::map<std::string, std::string>;

std::string describe(const std::string& name, const Labels& labels) {
  std::string out = name + "{";
  bool first = true;
  for (const auto& [key, value] : labels) {
    out += (first ? "" : ",") + key + "=\"" + value + "\"";
    first = false;
  }
  return out + "}";
}

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
  std::size_t line = 0;
};

// A parsed /metrics page. `errors` lists everything that breaks the format, each with its line.
struct Exposition {
  std::string text;
  std::map<std::string, std::string> types;  // family -> counter, gauge, histogram, ...
  std::map<std::string, std::string> help;   // family -> its HELP text
  std::vector<Sample> samples;
  std::vector<std::string> errors;

  // The sample with exactly this name and these labels, if there is one.
  std::optional<double> value(const std::string& name, const Labels& labels = {}) const {
    for (const auto& sample : samples) {
      if (sample.name == name && sample.labels == labels) return sample.value;
    }
    return std::nullopt;
  }
  // Counters whose series only appear with their first event count as 0 until then.
  double counter(const std::string& name, const Labels& labels = {}) const {
    return value(name, labels).value_or(0.0);
  }
  std::vector<Sample> all(const std::string& name) const {
    std::vector<Sample> found;
    for (const auto& sample : samples) {
      if (sample.name == name) found.push_back(sample);
    }
    return found;
  }
};

bool is_name(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

std::optional<double> parse_sample_value(std::string_view text) {
  if (text == "+Inf" || text == "Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// The family a sample belongs to: its own name, or for `x_bucket`, `x_sum` and `x_count` the
// histogram (or summary) `x` when one was declared.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (!ends_with(name, suffix)) continue;
    const std::string base = name.substr(0, name.size() - suffix.size());
    const auto type = types.find(base);
    if (type == types.end()) continue;
    if (type->second == "histogram" || (type->second == "summary" && suffix != "_bucket")) {
      return base;
    }
  }
  return name;
}

// `{key="value",...}` starting at text[pos] == '{'; moves pos past the '}'. Label values may use
// the escapes \\, \" and \n only.
std::optional<std::string> parse_labels(std::string_view text, std::size_t& pos, Labels& labels) {
  ++pos;  // '{'
  while (true) {
    if (pos >= text.size()) return "unterminated label set";
    if (text[pos] == '}') {
      ++pos;
      return std::nullopt;
    }
    const std::size_t equals = text.find('=', pos);
    if (equals == std::string_view::npos) return "label without '='";
    const std::string key(text.substr(pos, equals - pos));
    if (!is_name(key, false)) return "bad label name '" + key + "'";
    pos = equals + 1;
    if (pos >= text.size() || text[pos] != '"') return "label value of " + key + " not quoted";
    ++pos;
    std::string value;
    while (true) {
      if (pos >= text.size()) return "unterminated label value of " + key;
      const char c = text[pos++];
      if (c == '"') break;
      if (c != '\\') {
        value.push_back(c);
        continue;
      }
      if (pos >= text.size()) return "dangling backslash in label " + key;
      const char escaped = text[pos++];
      if (escaped == '\\' || escaped == '"') {
        value.push_back(escaped);
      } else if (escaped == 'n') {
        value.push_back('\n');
      } else {
        return std::string("bad escape \\") + escaped + " in label " + key;
      }
    }
    if (!labels.emplace(key, value).second) return "label " + key + " given twice";
    if (pos < text.size() && text[pos] == ',') ++pos;
  }
}

// Parses the whole page: every line is `# HELP name text`, `# TYPE name type`, another comment,
// or `name{labels} value [timestamp]`; a family's TYPE line comes before its first sample and
// only once; no series appears twice; counters are finite and not negative; every histogram
// series has buckets with increasing `le` ending at +Inf, cumulative counts, +Inf equal to
// _count, and a _sum.
Exposition parse_exposition(const std::string& text) {
  Exposition out;
  out.text = text;
  if (text.empty() || text.back() != '\n') out.errors.push_back("the page does not end in \\n");
  std::set<std::string> families_with_samples;
  std::set<std::string> series_seen;
  std::istringstream lines(text);
  std::string line;
  std::size_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    const auto error = [&](const std::string& what) {
      out.errors.push_back("line " + std::to_string(number) + ": " + what + ": " + line);
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (hash != "#" || (keyword != "HELP" && keyword != "TYPE")) continue;  // a comment
      if (!is_name(name, true)) {
        error("bad metric name in " + keyword);
        continue;
      }
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (keyword == "HELP") {
        if (!out.help.emplace(name, rest).second) error("second HELP for " + name);
        continue;
      }
      static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                   "untyped"};
      if (!kTypes.count(rest)) error("unknown type '" + rest + "'");
      if (families_with_samples.count(name)) error("TYPE after samples of " + name);
      if (!out.types.emplace(name, rest).second) error("second TYPE for " + name);
      continue;
    }

    Sample sample;
    sample.line = number;
    std::size_t pos = line.find_first_of("{ ");
    if (pos == std::string::npos) {
      error("sample without a value");
      continue;
    }
    sample.name = line.substr(0, pos);
    if (!is_name(sample.name, true)) {
      error("bad metric name");
      continue;
    }
    if (line[pos] == '{') {
      if (const auto problem = parse_labels(line, pos, sample.labels)) {
        error(*problem);
        continue;
      }
    }
    if (pos >= line.size() || line[pos] != ' ') {
      error("no space before the value");
      continue;
    }
    std::istringstream rest(line.substr(pos + 1));
    std::string value_text, timestamp, extra;
    rest >> value_text >> timestamp >> extra;
    const auto value = parse_sample_value(value_text);
    if (!value) {
      error("value '" + value_text + "' is not a number");
      continue;
    }
    std::int64_t ignored = 0;
    if (!timestamp.empty() &&
        std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ignored).ptr !=
            timestamp.data() + timestamp.size()) {
      error("bad timestamp");
    }
    if (!extra.empty()) error("trailing text");
    sample.value = *value;

    const std::string family = family_of(sample.name, out.types);
    const auto type = out.types.find(family);
    if (type == out.types.end()) {
      error("sample of " + family + " without a TYPE line before it");
    } else if (type->second == "counter" && (!std::isfinite(sample.value) || sample.value < 0)) {
      error("counter is not a finite, non-negative number");
    }
    families_with_samples.insert(family);
    if (!series_seen.insert(describe(sample.name, sample.labels)).second) {
      error("series appears twice");
    }
    out.samples.push_back(std::move(sample));
  }

  // Histograms: per series (labels without `le`), in the order of the page.
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // le, cumulative count
    std::optional<double> sum;
    std::optional<double> count;
  };
  std::map<std::string, Series> histograms;
  for (const auto& sample : out.samples) {
    const std::string family = family_of(sample.name, out.types);
    const auto type = out.types.find(family);
    if (type == out.types.end() || type->second != "histogram") continue;
    Labels labels = sample.labels;
    if (sample.name == family + "_bucket") {
      const auto le = labels.find("le");
      if (le == labels.end()) {
        out.errors.push_back("bucket without le: " + describe(sample.name, sample.labels));
        continue;
      }
      const auto bound = parse_sample_value(le->second);
      if (!bound) {
        out.errors.push_back("le is not a number: " + describe(sample.name, sample.labels));
        continue;
      }
      labels.erase(le);
      histograms[describe(family, labels)].buckets.emplace_back(*bound, sample.value);
    } else if (sample.name == family + "_sum") {
      histograms[describe(family, labels)].sum = sample.value;
    } else if (sample.name == family + "_count") {
      histograms[describe(family, labels)].count = sample.value;
    } else {
      out.errors.push_back("histogram sample that is no bucket, sum or count: " + sample.name);
    }
  }
  for (const auto& [series, data] : histograms) {
    const auto error = [&, &series = series](const std::string& what) {
      out.errors.push_back("histogram " + series + ": " + what);
    };
    if (data.buckets.empty()) error("no buckets");
    if (!data.sum) error("no _sum");
    if (!data.count) error("no _count");
    for (std::size_t i = 1; i < data.buckets.size(); ++i) {
      if (!(data.buckets[i].first > data.buckets[i - 1].first)) error("le not increasing");
      if (data.buckets[i].second < data.buckets[i - 1].second) error("buckets not cumulative");
    }
    if (data.buckets.empty() || !std::isinf(data.buckets.back().first)) {
      error("last bucket is not le=\"+Inf\"");
    } else if (data.count && data.buckets.back().second != *data.count) {
      error("le=\"+Inf\" bucket " + std::to_string(data.buckets.back().second) + " != _count " +
            std::to_string(*data.count));
    }
  }
  return out;
}

// GET /metrics on a new connection; a failed request or a format error fails the test.
Exposition scrape(std::uint16_t port) {
  const auto response = HttpClient(port).request(get_request("/metrics"));
  EXPECT_EQ(response.status, 200) << response;
  auto metrics = parse_exposition(response.body);
  for (const auto& error : metrics.errors) ADD_FAILURE() << "/metrics: " << error;
  if (!metrics.errors.empty()) ADD_FAILURE() << "the page:\n" << metrics.text;
  return metrics;
}

// Scrapes every `pause` until `done(metrics)` holds or `timeout` has passed; the last page.
template <typename Predicate>
Exposition scrape_until(std::uint16_t port, Predicate done, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Exposition metrics = scrape(port);
  while (!done(metrics) && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(100));
    metrics = scrape(port);
  }
  return metrics;
}

HttpResponse send(std::uint16_t port, const HttpRequest& request) {
  return HttpClient(port).request(request);
}
HttpResponse patch(std::uint16_t port, std::int64_t id, const std::string& answers) {
  return send(port, patch_request(attempt_target(id), answers_body(answers)));
}

const Labels kPatchRoute = {{"route", "PATCH /attempts/{id}"}};
Labels with_code(Labels labels, const std::string& code) {
  labels.emplace("code", code);
  return labels;
}
Labels connection_label(std::size_t index) {
  return {{"connection", std::to_string(index)}};
}

// ---- the parser itself, on pages written here -------------------------------------------------

TEST(ExpositionParserTest, AcceptsAWellFormedPage) {
  const auto page = parse_exposition(
      "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 3\n"
      "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\n"
      "h_count 2\n");

  EXPECT_TRUE(page.errors.empty()) << testing::PrintToString(page.errors);
  EXPECT_EQ(page.value("a_total", {{"x", "q\"\\\n"}}), 3.0);
  EXPECT_EQ(page.value("h_count"), 2.0);
}

TEST(ExpositionParserTest, RejectsWhatBreaksTheFormat) {
  const char* broken[] = {
      "a 1\n",                                                           // no TYPE
      "# TYPE a gauge\na{x=y} 1\n",                                      // unquoted label value
      "# TYPE a gauge\na one\n",                                         // value not a number
      "# TYPE a gauge\na 1",                                             // no final newline
      "a 1\n# TYPE a gauge\n",                                           // TYPE after the sample
      "# TYPE a gauge\na 1\na 2\n",                                      // series twice
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",  // no +Inf
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",  // +Inf != count
  };
  for (const char* page : broken) {
    EXPECT_FALSE(parse_exposition(page).errors.empty()) << "accepted:\n" << page;
  }
}

// ---- GET /metrics ---------------------------------------------------------------------------

TEST(MetricsEndpointTest, TheWholePageIsValidPrometheusTextWithEveryDocumentedFamily) {
  constexpr std::int64_t kId = 7001;
  Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--pool-size", "2"}));
  const auto port = server.port();
  // One request of each kind, so that every route's series exist.
  ASSERT_EQ(patch(port, kId, R"({"1":[1]})").status, 204);
  ASSERT_EQ(send(port, get_request(attempt_target(kId))).status, 200);
  ASSERT_EQ(patch(port, kMissingId, R"({"1":[1]})").status, 404);
  ASSERT_EQ(send(port, patch_request("/attempts/abc", answers_body("{}"))).status, 400);
  ASSERT_EQ(send(port, patch_request(attempt_target(kId), "{")).status, 400);
  ASSERT_EQ(send(port, HttpRequest{"DELETE", attempt_target(kId), {}, ""}).status, 405);
  ASSERT_EQ(send(port, get_request("/nowhere")).status, 404);
  ASSERT_EQ(send(port, get_request("/readyz")).status, 200);

  const auto response = HttpClient(port).request(get_request("/metrics"));

  ASSERT_EQ(response.status, 200) << response;
  const auto content_type = response.header("content-type").value_or("");
  EXPECT_EQ(content_type.rfind("text/plain", 0), 0u) << content_type;
  EXPECT_NE(content_type.find("version=0.0.4"), std::string::npos) << content_type;
  const auto page = parse_exposition(response.body);
  EXPECT_TRUE(page.errors.empty()) << testing::PrintToString(page.errors) << "\n" << page.text;
  const std::pair<const char*, const char*> kFamilies[] = {
      {"attempts_http_requests_total", "counter"},
      {"attempts_http_request_duration_seconds", "histogram"},
      {"attempts_http_open_connections", "gauge"},
      {"attempts_http_connections_accepted_total", "counter"},
      {"attempts_http_connections_refused_total", "counter"},
      {"attempts_db_batch_rows", "histogram"},
      {"attempts_db_batches_committed_total", "counter"},
      {"attempts_db_rows_committed_total", "counter"},
      {"attempts_db_connect_attempts_total", "counter"},
      {"attempts_db_connect_failures_total", "counter"},
      {"attempts_db_errors_total", "counter"},
      {"attempts_db_connection_up", "gauge"},
      {"attempts_db_connection_refusing", "gauge"},
      {"attempts_db_queue_depth", "gauge"},
      {"attempts_db_connections", "gauge"},
  };
  for (const auto& [family, type] : kFamilies) {
    const auto declared = page.types.find(family);
    if (declared == page.types.end()) {
      ADD_FAILURE() << "no TYPE line for " << family;
      continue;
    }
    EXPECT_EQ(declared->second, type) << family;
    const auto help = page.help.find(family);
    EXPECT_TRUE(help != page.help.end() && !help->second.empty()) << "no HELP text for " << family;
  }
  // Every request above shows up under its route and status.
  const std::pair<Labels, double> kExpected[] = {
      {with_code(kPatchRoute, "204"), 1},
      {with_code(kPatchRoute, "404"), 1},
      {with_code(kPatchRoute, "400"), 1},
      {{{"route", "GET /attempts/{id}"}, {"code", "200"}}, 1},
      {{{"route", "/attempts/{invalid}"}, {"code", "400"}}, 1},
      {{{"route", "method not allowed"}, {"code", "405"}}, 1},
  };
  for (const auto& [labels, count] : kExpected) {
    EXPECT_EQ(page.value("attempts_http_requests_total", labels), count) << describe("", labels);
  }
  for (const auto& sample : page.all("attempts_http_requests_total")) {
    EXPECT_EQ(sample.labels.size(), 2u) << describe(sample.name, sample.labels);
    EXPECT_TRUE(sample.labels.count("route") && sample.labels.count("code"))
        << describe(sample.name, sample.labels);
  }
}

TEST(MetricsEndpointTest, CountersMoveByExactlyTheRequestsServed) {
  constexpr std::int64_t kFirst = 7010;
  constexpr int kSaved = 5;
  Database db;
  db.reset_attempts(kFirst, kFirst + kSaved - 1);
  ServerProcess server(ServerSettings::with_flags({"--pool-size", "2"}));
  const auto port = server.port();
  const auto before = scrape(port);

  for (int i = 0; i < kSaved; ++i) ASSERT_EQ(patch(port, kFirst + i, R"({"1":[7]})").status, 204);
  ASSERT_EQ(patch(port, kMissingId, R"({"1":[7]})").status, 404);
  ASSERT_EQ(send(port, patch_request("/attempts/7x", answers_body("{}"))).status, 400);
  ASSERT_EQ(send(port, patch_request(attempt_target(kFirst), R"({"answers":[]})")).status, 400);
  const auto after = scrape(port);

  const auto grew = [&](const std::string& name, const Labels& labels = {}) {
    return after.counter(name, labels) - before.counter(name, labels);
  };
  const std::string requests = "attempts_http_requests_total";
  EXPECT_EQ(grew(requests, with_code(kPatchRoute, "204")), kSaved);
  EXPECT_EQ(grew(requests, with_code(kPatchRoute, "404")), 1);
  EXPECT_EQ(grew(requests, with_code(kPatchRoute, "400")), 1);
  EXPECT_EQ(grew(requests, {{"route", "/attempts/{invalid}"}, {"code", "400"}}), 1);
  EXPECT_EQ(grew("attempts_http_request_duration_seconds_count", kPatchRoute), kSaved + 2);
  EXPECT_EQ(grew("attempts_http_request_duration_seconds_count", {{"route", "/metrics"}}), 1)
      << "the first scrape is counted once it is answered";
  // Sequential writes: each is its own statement; the 404's UPDATE commits with no row.
  EXPECT_EQ(grew("attempts_db_rows_committed_total"), kSaved);
  const double batches = grew("attempts_db_batches_committed_total");
  EXPECT_GE(batches, 1);
  EXPECT_LE(batches, kSaved + 1);
  EXPECT_EQ(grew("attempts_db_batch_rows_count"), batches);
  EXPECT_GE(grew("attempts_http_connections_accepted_total"), kSaved + 4);
  EXPECT_EQ(grew("attempts_db_errors_total"), 0);
}

TEST(MetricsEndpointTest, ConnectionUpIsOneForEachPoolConnection) {
  constexpr std::size_t kPoolSize = 3;
  ServerProcess server(ServerSettings::with_flags({"--pool-size", std::to_string(kPoolSize)}));

  // The pool connects in the background; /healthz does not wait for it.
  const auto metrics = scrape_until(
      server.port(),
      [](const Exposition& m) {
        return m.value("attempts_db_connections", {{"state", "up"}}) == double{kPoolSize};
      },
      seconds(10));

  EXPECT_EQ(metrics.all("attempts_db_connection_up").size(), kPoolSize);
  EXPECT_EQ(metrics.all("attempts_db_queue_depth").size(), kPoolSize);
  for (std::size_t i = 0; i < kPoolSize; ++i) {
    EXPECT_EQ(metrics.value("attempts_db_connection_up", connection_label(i)), 1.0) << i;
    EXPECT_EQ(metrics.value("attempts_db_queue_depth", connection_label(i)), 0.0) << i;
  }
  EXPECT_EQ(metrics.value("attempts_db_connections", {{"state", "down"}}), 0.0);
  EXPECT_EQ(metrics.value("attempts_db_connect_failures_total"), 0.0);
  EXPECT_GE(metrics.counter("attempts_db_connect_attempts_total"), kPoolSize);
}

TEST(MetricsEndpointTest, OpenConnectionsCountsTheConnectionsHeldOpen) {
  ServerProcess server;
  std::vector<HttpClient> held;
  for (int i = 0; i < 3; ++i) {
    held.emplace_back(server.port());
    ASSERT_EQ(held.back().request(get_request("/healthz")).status, 200);  // accepted and served
  }

  // Held ones plus the scraping one.
  EXPECT_GE(scrape(server.port()).value("attempts_http_open_connections"), 4.0);

  held.clear();
  const auto after = scrape_until(
      server.port(),
      [](const Exposition& m) { return m.value("attempts_http_open_connections") == 1.0; },
      seconds(5));
  EXPECT_EQ(after.value("attempts_http_open_connections"), 1.0)
      << "closed connections are still counted as open";
}

// Starts PostgreSQL again at the end of a scope if it is not running (a failed restart), since
// the other tests share it.
struct PostgresRunningAtExit {
  PostgresRunningAtExit() = default;
  PostgresRunningAtExit(const PostgresRunningAtExit&) = delete;
  PostgresRunningAtExit& operator=(const PostgresRunningAtExit&) = delete;
  ~PostgresRunningAtExit() {
    try {
      if (!postgres_control::is_running()) postgres_control::start();
    } catch (const std::exception& error) {
      ADD_FAILURE() << "cannot start PostgreSQL again: " << error.what();
    }
  }
};

// Tests that stop PostgreSQL: each restarts it at its end (PostgresOutage), even when it fails.
class OperationsOutageTest : public testing::Test {
 protected:
  // In case an earlier run was killed in the middle of an outage.
  void SetUp() override {
    if (!postgres_control::is_running()) postgres_control::start();
  }
  Database db_;
};

TEST_F(OperationsOutageTest, PoolMetricsShowTheOutageAndTheRecovery) {
  constexpr std::int64_t kId = 7020;  // 7020 and 7021: one per pool connection (id % 2)
  db_.reset_attempts(kId, kId + 1);
  ServerProcess server(ServerSettings::with_flags({"--pool-size", "2"}));
  const auto port = server.port();
  ASSERT_EQ(patch(port, kId, R"({"1":[1]})").status, 204);
  ASSERT_EQ(patch(port, kId + 1, R"({"1":[1]})").status, 204);
  const auto before = scrape(port);
  ASSERT_EQ(before.value("attempts_db_connection_up", connection_label(0)), 1.0);
  ASSERT_EQ(before.value("attempts_db_connection_up", connection_label(1)), 1.0);

  {
    PostgresOutage outage;
    // A write finds its connection broken; the reconnect that follows fails.
    EXPECT_TRUE(IsUnavailable(patch(port, kId, R"({"1":[2]})")));
    EXPECT_TRUE(IsUnavailable(patch(port, kId + 1, R"({"1":[2]})")));

    const auto down = scrape_until(
        port,
        [&](const Exposition& m) {
          return m.value("attempts_db_connections", {{"state", "down"}}) == 2.0 &&
                 m.counter("attempts_db_connect_failures_total") >
                     before.counter("attempts_db_connect_failures_total");
        },
        seconds(5));
    EXPECT_EQ(down.value("attempts_db_connection_up", connection_label(0)), 0.0);
    EXPECT_EQ(down.value("attempts_db_connection_up", connection_label(1)), 0.0);
    EXPECT_EQ(down.value("attempts_db_connections", {{"state", "up"}}), 0.0);
    EXPECT_GE(down.counter("attempts_db_errors_total") - before.counter("attempts_db_errors_total"),
              1.0);
    EXPECT_GT(down.counter("attempts_db_connect_failures_total"),
              before.counter("attempts_db_connect_failures_total"));
    EXPECT_GT(down.counter("attempts_db_connect_attempts_total"),
              before.counter("attempts_db_connect_attempts_total"));
    EXPECT_GE(down.counter("attempts_http_requests_total", with_code(kPatchRoute, "503")), 2.0);
  }

  // Back: the workers reconnect by themselves (backoff at most 1 s), without a request.
  const auto up = scrape_until(
      port,
      [](const Exposition& m) {
        return m.value("attempts_db_connections", {{"state", "up"}}) == 2.0;
      },
      seconds(15));
  EXPECT_EQ(up.value("attempts_db_connection_up", connection_label(0)), 1.0);
  EXPECT_EQ(up.value("attempts_db_connection_up", connection_label(1)), 1.0);
  const double rows_before = up.counter("attempts_db_rows_committed_total");
  EXPECT_EQ(patch(port, kId, R"({"1":[3]})").status, 204);
  EXPECT_EQ(patch(port, kId + 1, R"({"1":[3]})").status, 204);
  EXPECT_EQ(scrape(port).counter("attempts_db_rows_committed_total") - rows_before, 2.0);
  EXPECT_TRUE(server.running());
}

// ---- logs -----------------------------------------------------------------------------------

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Log events in the text format: lines that start with the timestamp (a message from libpq can
// span several lines).
std::size_t count_events(const std::string& text) {
  static const std::regex kEventStart(R"(^\d{4}-\d\d-\d\dT.*)");
  const auto lines = split_lines(text);
  return static_cast<std::size_t>(std::count_if(
      lines.begin(), lines.end(), [](const auto& l) { return std::regex_match(l, kEventStart); }));
}

std::size_t count_lines_containing(const std::string& text, const std::string& needle) {
  const auto lines = split_lines(text);
  return static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& l) {
    return l.find(needle) != std::string::npos;
  }));
}

// The test database's URL with a password in it: trust authentication ignores the password, so
// the server still connects, and the password must not show up anywhere in its log.
constexpr const char* kPassword = "s3cr3t-Ops7000";
std::string url_with_password() {
  std::string url = TestEnvironment::get().database_url;
  const std::size_t authority = url.find("://");
  if (authority == std::string::npos) {
    ADD_FAILURE() << "test database URL is not a URI: " << url;
    return url;
  }
  const std::size_t at = url.find('@', authority + 3);
  if (at == std::string::npos)
    return url.insert(authority + 3, "postgres:" + std::string(kPassword) + "@");
  const std::size_t colon = url.find(':', authority + 3);
  if (colon < at) return url.replace(colon + 1, at - colon - 1, kPassword);
  return url.insert(at, ":" + std::string(kPassword));
}

TEST(LoggingTest, JsonFormatMakesEveryLineAJsonObjectWithTimeLevelAndMessage) {
  constexpr std::int64_t kId = 7101;
  Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--log-format", "json", "--access-log"}));
  const auto port = server.port();
  ASSERT_EQ(patch(port, kId, R"({"1":[1]})").status, 204);
  ASSERT_EQ(send(port, patch_request(attempt_target(kId), R"({"answers":)")).status, 400);
  // Characters a JSON string must escape, in a target that ends up in the access log.
  // And bytes that are not ASCII: well-formed UTF-8 (é) and bytes that are not UTF-8 at all.
  for (const std::string target :
       {"/nowhere/\"quoted\"\\back\\slash", "/nowhere/caf\xC3\xA9/\xFF\xC3(\x80"}) {
    try {
      send(port, get_request(target));
    } catch (const HttpError&) {
      // Refused or not, what the server logs about it is checked below.
    }
  }
  ASSERT_EQ(server.terminate(SIGTERM, seconds(10)), ExitStatus::exit_code(0));

  const auto lines = split_lines(server.log());
  ASSERT_GE(lines.size(), 3u) << server.log();
  static const std::regex kTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:?\d\d)");
  static const std::set<std::string> kLevels = {"trace", "debug",    "info", "warning",
                                                "error", "critical", "off"};
  bool saw_start = false;
  bool saw_access = false;
  bool saw_escaped_target = false;
  bool saw_non_ascii_target = false;
  for (const auto& line : lines) {
    const auto event = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!event.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    for (const char* field : {"time", "level", "message"}) {
      EXPECT_TRUE(event.contains(field) && event[field].is_string()) << field << ": " << line;
    }
    if (!event.contains("time") || !event["time"].is_string() || !event.contains("message") ||
        !event["message"].is_string() || !event.contains("level") || !event["level"].is_string()) {
      continue;
    }
    EXPECT_TRUE(std::regex_match(event["time"].get<std::string>(), kTime)) << line;
    EXPECT_TRUE(kLevels.count(event["level"].get<std::string>())) << line;
    const auto message = event["message"].get<std::string>();
    saw_start = saw_start || message.rfind("attempts-server starting", 0) == 0;
    saw_escaped_target = saw_escaped_target ||
                         message.find(R"(GET /nowhere/"quoted"\back\slash )") != std::string::npos;
    saw_access =
        saw_access || message.find("PATCH " + attempt_target(kId) + " 204") != std::string::npos;
    saw_non_ascii_target =
        saw_non_ascii_target ||
        message.find("GET /nowhere/caf\u00e9/\ufffd\ufffd(\ufffd ") != std::string::npos;
  }
  EXPECT_TRUE(saw_start) << "no start-up line:\n" << server.log();
  EXPECT_TRUE(saw_access) << "no access line for the PATCH:\n" << server.log();
  EXPECT_TRUE(saw_non_ascii_target) << "the target with bytes >= 0x80 did not read back as "
                                       "UTF-8 with U+FFFD for the bytes that are not:\n"
                                    << server.log();
  EXPECT_TRUE(saw_escaped_target) << "the target with quotes and backslashes did not read back:\n"
                                  << server.log();
}

TEST(LoggingTest, AccessLogWritesOneLinePerRequestWithMethodTargetAndStatus) {
  constexpr std::int64_t kId = 7111;
  Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--access-log"}));
  const auto port = server.port();
  struct Expected {
    HttpRequest request;
    int status;
  };
  // Each target is unique in the test, so that its lines can be counted.
  const std::vector<Expected> requests = {
      {patch_request(attempt_target(kId), answers_body(R"({"1":[1]})")), 204},
      {get_request(attempt_target(kId) + "?ops=get"), 200},
      {patch_request("/attempts/ops-bad-id", answers_body("{}")), 400},
      {get_request("/healthz?ops=access"), 200},
      {get_request("/ops-nowhere"), 404},
      {HttpRequest{"DELETE", attempt_target(kId) + "?ops=delete", {}, ""}, 405},
  };
  HttpClient keep_alive(port);  // several requests on one connection: still one line each
  for (const auto& [request, status] : requests) {
    ASSERT_EQ(keep_alive.request(request).status, status) << request.target;
  }

  const std::string log = server.log();
  for (const auto& [request, status] : requests) {
    const std::string line = request.method + " " + request.target + " " + std::to_string(status);
    EXPECT_EQ(count_lines_containing(log, line), 1u) << "'" << line << "' in:\n" << log;
  }
}

TEST(LoggingTest, WithoutAccessLogNoLineIsWrittenPerRequest) {
  constexpr std::int64_t kId = 7121;
  Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server;  // default level info, no --access-log
  const auto port = server.port();
  const std::size_t lines_at_start = split_lines(server.log()).size();

  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(patch(port, kId, R"({"1":[)" + std::to_string(i) + "]}").status, 204);
    ASSERT_EQ(send(port, get_request("/ops-nowhere")).status, 404);
    ASSERT_EQ(send(port, patch_request("/attempts/ops-bad", answers_body("{}"))).status, 400);
  }

  const std::string log = server.log();
  EXPECT_EQ(count_lines_containing(log, attempt_target(kId)), 0u) << log;
  EXPECT_EQ(count_lines_containing(log, "ops-nowhere"), 0u) << log;
  EXPECT_EQ(count_lines_containing(log, "ops-bad"), 0u) << log;
  EXPECT_EQ(split_lines(log).size(), lines_at_start) << log;
}

class PasswordLogTest : public testing::TestWithParam<const char*> {};

TEST_P(PasswordLogTest, TheLogNeverContainsTheDatabasePassword) {
  constexpr std::int64_t kId = 7131;
  Database db;
  db.reset_attempts(kId, kId);
  ServerSettings settings = ServerSettings::with_flags({"--log-format", GetParam()});
  settings.database_url = url_with_password();
  ASSERT_NE(settings.database_url.find(kPassword), std::string::npos);
  ServerProcess server(settings);
  ASSERT_EQ(patch(server.port(), kId, R"({"1":[1]})").status, 204);  // it did connect

  const std::string log = server.log();
  EXPECT_EQ(log.find(kPassword), std::string::npos) << log;
  const auto lines = split_lines(log);
  const auto start = std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
    return line.find("attempts-server starting") != std::string::npos;
  });
  ASSERT_NE(start, lines.end()) << log;
  EXPECT_NE(start->find("database-url=postgresql://postgres:***@"), std::string::npos) << *start;
}

INSTANTIATE_TEST_SUITE_P(Formats, PasswordLogTest, testing::Values("text", "json"),
                         [](const testing::TestParamInfo<const char*>& param) {
                           return std::string(param.param);
                         });

// A trigger that makes every UPDATE of attempts 7900..7909 fail inside PostgreSQL, while the
// connection stays open: the repeated statement error the server must not log once per request.
// Dropped again on destruction; it never fires for other ids.
class FailingUpdates {
 public:
  static constexpr std::int64_t kFirst = 7900;
  static constexpr std::int64_t kLast = 7909;

  explicit FailingUpdates(const Database& db) : url_(db.url()) {
    pqxx::connection connection(url_);
    pqxx::work tx(connection);
    tx.exec(R"sql(
      CREATE OR REPLACE FUNCTION attempts_ops_test_reject() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'attempt % is refused by the test', OLD.id;
      END $$)sql");
    tx.exec("DROP TRIGGER IF EXISTS attempts_ops_test_reject ON attempts");
    tx.exec(
        "CREATE TRIGGER attempts_ops_test_reject BEFORE UPDATE ON attempts FOR EACH ROW "
        "WHEN (OLD.id BETWEEN " +
        std::to_string(kFirst) + " AND " + std::to_string(kLast) +
        ") EXECUTE FUNCTION attempts_ops_test_reject()");
    tx.commit();
  }

  ~FailingUpdates() {
    try {
      pqxx::connection connection(url_);
      pqxx::work tx(connection);
      tx.exec("DROP TRIGGER IF EXISTS attempts_ops_test_reject ON attempts");
      tx.exec("DROP FUNCTION IF EXISTS attempts_ops_test_reject()");
      tx.commit();
    } catch (const std::exception& error) {
      ADD_FAILURE() << "cannot drop the test trigger: " << error.what();
    }
  }

  FailingUpdates(const FailingUpdates&) = delete;
  FailingUpdates& operator=(const FailingUpdates&) = delete;

 private:
  std::string url_;
};

TEST(LoggingTest, RepeatedDatabaseErrorsAreLoggedOncePerTenSecondsWithACount) {
  constexpr std::int64_t kId = FailingUpdates::kFirst;
  constexpr int kFailures = 30;
  // In the error's first line only (libpq adds a CONTEXT line naming the trigger function).
  const std::string kRefused = "is refused by the test";
  Database db;
  db.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--threads", "1", "--pool-size", "1"}));
  const auto port = server.port();
  FailingUpdates failing(db);
  const auto before = scrape(port);

  const auto first_failure = Clock::now();
  for (int i = 0; i < kFailures; ++i) {
    ASSERT_EQ(patch(port, kId, R"({"1":[1]})").status, 503) << "write " << i;
  }
  ASSERT_LT(Clock::now() - first_failure, seconds(9)) << "too slow to stay in one interval";

  EXPECT_EQ(
      scrape(port).counter("attempts_db_errors_total") - before.counter("attempts_db_errors_total"),
      kFailures);
  EXPECT_EQ(count_lines_containing(server.log(), kRefused), 1u) << server.log();

  // Past the interval, the next error is logged with the number held back.
  std::this_thread::sleep_for(seconds(10) + milliseconds(500));
  ASSERT_EQ(patch(port, kId, R"({"1":[1]})").status, 503);
  const std::string log = server.log();
  EXPECT_EQ(count_lines_containing(log, kRefused), 2u) << log;
  EXPECT_EQ(count_lines_containing(log, "(" + std::to_string(kFailures - 1) +
                                            " similar errors not logged in the last 10s)"),
            1u)
      << log;
  EXPECT_TRUE(server.running());
}

// The rate limit is meant for repetitions of the same error (README: "the same error is logged at
// most once per 10 s"). A different error in the same interval, here the connection lost by a
// PostgreSQL restart right after a statement error, must still reach the log: otherwise the
// restart leaves no trace at all (the reconnect succeeds at once, so nothing else is logged).
TEST_F(OperationsOutageTest, ADifferentDatabaseErrorWithinTheIntervalIsStillLogged) {
  constexpr std::int64_t kFailingId = FailingUpdates::kFirst + 1;
  constexpr std::int64_t kId = 7950;
  db_.reset_attempts(kFailingId, kFailingId);
  db_.reset_attempts(kId, kId);
  ServerProcess server(ServerSettings::with_flags({"--threads", "1", "--pool-size", "1"}));
  const auto port = server.port();
  ASSERT_EQ(patch(port, kId, R"({"1":[1]})").status, 204);
  const auto started = Clock::now();
  {
    FailingUpdates failing(db_);
    ASSERT_EQ(patch(port, kFailingId, R"({"1":[1]})").status, 503);  // logged: statement error
  }
  ASSERT_NE(server.log().find("is refused by the test"), std::string::npos) << server.log();

  const PostgresRunningAtExit guard;
  postgres_control::restart();  // the pool's connection is gone now
  const auto deadline = Clock::now() + seconds(5);
  int status = patch(port, kId, R"({"1":[2]})").status;
  while (status != 204 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(100));
    status = patch(port, kId, R"({"1":[2]})").status;
  }
  ASSERT_EQ(status, 204);
  ASSERT_LT(Clock::now() - started, seconds(10)) << "too slow to stay in one interval";

  EXPECT_GE(scrape(port).counter("attempts_db_errors_total"), 2.0);
  EXPECT_NE(server.log().find("db connection 0: lost"), std::string::npos)
      << "the lost connection was not logged, held back as 'similar' to the statement error:\n"
      << server.log();
}

TEST_F(OperationsOutageTest, AnOutageDoesNotWriteALogLinePerRequest) {
  constexpr std::int64_t kId = 7140;
  constexpr int kRequests = 40;
  db_.reset_attempts(kId, kId + 1);
  ServerProcess server(ServerSettings::with_flags({"--pool-size", "2"}));
  ASSERT_EQ(patch(server.port(), kId, R"({"1":[1]})").status, 204);
  ASSERT_EQ(patch(server.port(), kId + 1, R"({"1":[1]})").status, 204);
  const std::size_t events_before = count_events(server.log());
  PostgresOutage outage;

  for (int i = 0; i < kRequests; ++i) {
    EXPECT_TRUE(IsUnavailable(patch(server.port(), kId + i % 2, R"({"1":[2]})"))) << i;
  }

  // Per connection: the connection lost, the first failed reconnect; retries are at debug.
  const std::size_t new_events = count_events(server.log()) - events_before;
  EXPECT_GE(new_events, 1u) << server.log();
  EXPECT_LE(new_events, 6u) << server.log();
}

// ---- configuration --------------------------------------------------------------------------

using Environment = std::vector<std::pair<std::string, std::optional<std::string>>>;

// Runs attempts-server with `args` to completion, with none of its settings in the environment
// but `env`. Unless the arguments are about --listen, it gets a loopback address.
CommandResult run_server(std::vector<std::string> args, const Environment& env = {}) {
  SpawnOptions options;
  options.argv = {server_binary()};
  if (std::find(args.begin(), args.end(), "--listen") == args.end()) {
    options.argv.insert(options.argv.end(), {"--listen", "127.0.0.1:0"});
  }
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  for (const char* name : kSettingVariables) options.env.emplace_back(name, std::nullopt);
  options.env.insert(options.env.end(), env.begin(), env.end());
  return run_command(std::move(options), seconds(10));
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// `key = value` lines of --print-config's TOML, values as written (strings with their quotes).
std::map<std::string, std::string> printed_settings(const std::string& toml) {
  std::map<std::string, std::string> settings;
  for (const auto& line : split_lines(toml)) {
    if (line.empty() || line[0] == '#') continue;
    const auto equals = line.find(" = ");
    if (equals == std::string::npos) {
      ADD_FAILURE() << "not a `key = value` line: " << line;
      continue;
    }
    settings[line.substr(0, equals)] = line.substr(equals + 3);
  }
  return settings;
}

// A valid answers document of exactly `size` bytes (padded with an ignored field).
std::string answers_body_of_size(std::size_t size) {
  const std::string head = R"({"answers":{"1":[1]},"pad":")";
  const std::string tail = R"("})";
  return head + std::string(size - head.size() - tail.size(), 'x') + tail;
}

TEST(SettingsTest, TheFileSetsPoolSizeAndBodyLimit) {
  constexpr std::int64_t kId = 7201;
  constexpr std::size_t kBodyLimit = 2048;  // the default is 65536
  Database db;
  db.reset_attempts(kId, kId);
  TempDir dir("attempts-ops-config");
  write_file(dir.file("attempts.toml"),
             "# set by the test\npool-size = 3\nbody-limit = " + std::to_string(kBodyLimit) + "\n");
  ServerProcess server(ServerSettings::with_flags({"--config", dir.file("attempts.toml")}));
  const auto port = server.port();

  const auto metrics = scrape_until(
      port,
      [](const Exposition& m) {
        return m.value("attempts_db_connections", {{"state", "up"}}) == 3.0;
      },
      seconds(10));
  EXPECT_EQ(metrics.all("attempts_db_connection_up").size(), 3u);
  EXPECT_EQ(send(port, patch_request(attempt_target(kId), answers_body_of_size(kBodyLimit))).status,
            204);
  const auto too_large =
      send(port, patch_request(attempt_target(kId), answers_body_of_size(kBodyLimit + 1)));
  EXPECT_TRUE(IsJsonError(too_large, 413));
}

TEST(SettingsTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  TempDir dir("attempts-ops-config");
  write_file(dir.file("attempts.toml"),
             "pool-size = 3\nbody-limit = 2048\nmax-batch = 100\nlog-format = \"json\"\n"
             "access-log = true\n");

  const auto result =
      run_server({"--config", dir.file("attempts.toml"), "--pool-size", "7", "--print-config"},
                 {{"POOL_SIZE", "5"}, {"BODY_LIMIT", "4096"}, {"ACCESS_LOG", "0"}});

  ASSERT_EQ(result.status, ExitStatus::exit_code(0)) << result.output;
  auto settings = printed_settings(result.output);
  EXPECT_EQ(settings["pool-size"], "7") << "flag > env > file\n" << result.output;
  EXPECT_EQ(settings["body-limit"], "4096") << "env > file\n" << result.output;
  EXPECT_EQ(settings["access-log"], "false") << "env > file\n" << result.output;
  EXPECT_EQ(settings["max-batch"], "100") << "file > default\n" << result.output;
  EXPECT_EQ(settings["log-format"], "\"json\"") << "file > default\n" << result.output;
  EXPECT_EQ(settings["queue-capacity"], "4096") << "default\n" << result.output;
  EXPECT_EQ(settings["listen"], "\"127.0.0.1:0\"") << result.output;
}

TEST(SettingsTest, PrintConfigListsEverySettingAsTomlThatConfigAcceptsBack) {
  TempDir dir("attempts-ops-config");
  const auto first = run_server({"--print-config", "--pool-size", "4", "--reuse-port",
                                 "--database-url", "postgresql://ops@db.internal:6432/attempts"},
                                {{"IDLE_TIMEOUT", "30"}});
  ASSERT_EQ(first.status, ExitStatus::exit_code(0)) << first.output;
  auto settings = printed_settings(first.output);
  for (const char* key : {"listen", "database-url", "threads", "pool-size", "body-limit",
                          "log-level", "log-format", "access-log", "max-batch", "queue-capacity",
                          "max-connections", "idle-timeout", "shutdown-timeout", "reuse-port"}) {
    EXPECT_EQ(settings.count(key), 1u) << key << " missing:\n" << first.output;
  }
  EXPECT_EQ(settings["reuse-port"], "true");
  EXPECT_EQ(settings["idle-timeout"], "30");
  write_file(dir.file("printed.toml"), first.output);

  // Read back with nothing else set, it gives the same settings.
  const auto second = run_server({"--config", dir.file("printed.toml"), "--print-config"});

  ASSERT_EQ(second.status, ExitStatus::exit_code(0)) << second.output;
  EXPECT_EQ(second.output, first.output);
}

TEST(SettingsTest, PrintConfigRedactsThePassword) {
  const std::string url_password = "postgresql://ops:" + std::string(kPassword) + "@db/attempts";
  const std::string keyword_password =
      "host=db dbname=attempts password=" + std::string(kPassword) + " user=ops";

  for (const auto& url : {url_password, keyword_password}) {
    const auto result = run_server({"--print-config"}, {{"DATABASE_URL", url}});

    ASSERT_EQ(result.status, ExitStatus::exit_code(0)) << result.output;
    EXPECT_EQ(result.output.find(kPassword), std::string::npos) << result.output;
    EXPECT_NE(printed_settings(result.output)["database-url"].find("***"), std::string::npos)
        << result.output;
  }
}

TEST(SettingsTest, TheConfigVariableNamesTheFileToo) {
  TempDir dir("attempts-ops-config");
  write_file(dir.file("attempts.toml"), "max-connections = 123\n");

  const auto result = run_server({"--print-config"}, {{"CONFIG", dir.file("attempts.toml")}});

  ASSERT_EQ(result.status, ExitStatus::exit_code(0)) << result.output;
  EXPECT_EQ(printed_settings(result.output)["max-connections"], "123") << result.output;
}

struct BadFile {
  const char* name;
  const char* contents;
  const char* mentioned;  // the message names it
};

void PrintTo(const BadFile& file, std::ostream* out) {
  *out << file.name;
}

class BadConfigFileTest : public testing::TestWithParam<BadFile> {};

TEST_P(BadConfigFileTest, ExitsWithCode2AndSaysWhatIsWrong) {
  TempDir dir("attempts-ops-config");
  write_file(dir.file("attempts.toml"), GetParam().contents);

  const auto result = run_server({"--config", dir.file("attempts.toml"), "--print-config"});

  EXPECT_EQ(result.status, ExitStatus::exit_code(2)) << result.output;
  EXPECT_NE(result.output.find(GetParam().mentioned), std::string::npos) << result.output;
}

INSTANTIATE_TEST_SUITE_P(
    Files, BadConfigFileTest,
    testing::Values(BadFile{"UnknownKey", "pool-size = 2\npoolsize = 3\n", "poolsize"},
                    BadFile{"InvalidValue", "pool-size = 0\n", "pool-size"},
                    BadFile{"WrongType", "pool-size = [1, 2]\n", "pool-size"},
                    BadFile{"NotToml", "pool-size = = 2\n", "attempts.toml"},
                    BadFile{"UnknownLogFormat", "log-format = \"xml\"\n", "xml"}),
    [](const testing::TestParamInfo<BadFile>& param) { return std::string(param.param.name); });

TEST(SettingsTest, AMissingConfigFileExitsWithCode2) {
  const auto result = run_server({"--config", "/nonexistent/attempts-ops.toml"});

  EXPECT_EQ(result.status, ExitStatus::exit_code(2)) << result.output;
  EXPECT_NE(result.output.find("attempts-ops.toml"), std::string::npos) << result.output;
}

// ---- two instances on one port (SO_REUSEPORT) -----------------------------------------------

// An attempts-server started directly rather than through ServerProcess (which always gives its
// server a port of its own), so that two can share one --listen address. Killed (SIGKILL) if it
// still runs on destruction; a sanitizer report in its log fails the test, and the log is
// printed if the test failed. Only ever signals the pid it spawned.
class SharedPortServer {
 public:
  SharedPortServer(std::uint16_t port, std::vector<std::string> flags)
      : dir_("attempts-reuseport"), log_path_(dir_.file("server.log")) {
    SpawnOptions options;
    options.argv = {server_binary(), "--listen", "127.0.0.1:" + std::to_string(port), "--auth",
                    "none"};
    options.argv.insert(options.argv.end(), flags.begin(), flags.end());
    for (const char* name : kSettingVariables) options.env.emplace_back(name, std::nullopt);
    options.env.emplace_back("DATABASE_URL", TestEnvironment::get().database_url);
    options.output_path = log_path_;
    options.kill_with_parent = true;
    pid_ = spawn_process(options);
  }

  ~SharedPortServer() {
    resume();
    if (running()) {
      ::kill(pid_, SIGKILL);
      exit_ = attempts::integration::wait_for_exit(pid_, seconds(10));
    }
    const std::string text = log();
    for (const char* marker :
         {"ERROR: AddressSanitizer:", "ERROR: LeakSanitizer:",
          "SUMMARY: UndefinedBehaviorSanitizer:", "WARNING: ThreadSanitizer:"}) {
      if (text.find(marker) != std::string::npos) {
        ADD_FAILURE() << "attempts-server (pid " << pid_ << ") reported a sanitizer error";
      }
    }
    if (testing::Test::HasFailure()) {
      std::cerr << "---- attempts-server log (pid " << pid_ << ") ----\n"
                << text.substr(text.size() > 32768 ? text.size() - 32768 : 0)
                << "---- end of log ----\n";
    }
  }

  SharedPortServer(const SharedPortServer&) = delete;
  SharedPortServer& operator=(const SharedPortServer&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const { return read_file(log_path_); }

  bool running() {
    if (!exit_) exit_ = poll_exit(pid_);
    return !exit_;
  }

  // Until its log says it listens; false if it exited first or `timeout` passed.
  bool wait_until_listening(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (log().find("listening on") != std::string::npos) return true;
      if (!running()) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

  std::optional<ExitStatus> wait_for_exit(milliseconds timeout) {
    if (!exit_) exit_ = attempts::integration::wait_for_exit(pid_, timeout);
    return exit_;
  }

  // SIGSTOP: the kernel still hands it new connections, which then get no answer.
  void pause() {
    if (running()) {
      ::kill(pid_, SIGSTOP);
      paused_ = true;
    }
  }
  void resume() {
    if (paused_ && running()) ::kill(pid_, SIGCONT);
    paused_ = false;
  }

 private:
  TempDir dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_;
  bool paused_ = false;
};

// /metrics of `wanted` alone: `other` is paused meanwhile, so a connection the kernel gives it
// times out and a new one is tried; whatever answers is `wanted`.
Exposition scrape_instance(std::uint16_t port, SharedPortServer& wanted, SharedPortServer& other) {
  other.pause();
  std::optional<Exposition> metrics;
  for (int attempt = 0; attempt < 60 && !metrics; ++attempt) {
    try {
      HttpClient client(port, milliseconds(500));
      const auto response = client.request(get_request("/metrics"));
      EXPECT_EQ(response.status, 200) << response;
      metrics = parse_exposition(response.body);
    } catch (const HttpError&) {
      // This connection went to the paused instance.
    }
  }
  other.resume();
  if (!metrics) {
    ADD_FAILURE() << "instance " << wanted.pid() << " never answered /metrics";
    return {};
  }
  for (const auto& error : metrics->errors) ADD_FAILURE() << "/metrics: " << error;
  return *metrics;
}

TEST(ReusePortTest, TwoInstancesShareAPortAndKeepPerAttemptOrderForSequentialClients) {
  constexpr int kClients = 8;
  constexpr int kIdsPerClient = 4;
  constexpr int kValues = 25;  // writes per id, each on a new connection
  constexpr std::int64_t kFirst = 7300;
  Database db;
  db.reset_attempts(kFirst, kFirst + kClients * kIdsPerClient - 1);
  const std::uint16_t port = pick_free_port();
  SharedPortServer a(port, {"--reuse-port", "--pool-size", "2"});
  ASSERT_TRUE(a.wait_until_listening(seconds(10))) << a.log();
  SharedPortServer b(port, {"--reuse-port", "--pool-size", "2"});
  ASSERT_TRUE(b.wait_until_listening(seconds(10))) << b.log();

  // Each client owns its ids and sends strictly increasing values, one request at a time, each
  // on a new connection so that the kernel spreads them over both instances. A write is sent
  // only after the previous one was answered, so the two instances never hold writes to one id
  // at the same time.
  std::vector<std::vector<int>> last_acknowledged(kClients, std::vector<int>(kIdsPerClient, 0));
  std::atomic<int> failures{0};
  std::vector<std::string> failure_notes(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int value = 1; value <= kValues; ++value) {
        for (int k = 0; k < kIdsPerClient; ++k) {
          const std::int64_t id = kFirst + c * kIdsPerClient + k;
          const std::string answers =
              R"({"1":[)" + std::to_string(value) + R"(],"2":[)" + std::to_string(c) + "]}";
          try {
            const auto response = patch(port, id, answers);
            if (response.status == 204) {
              last_acknowledged[c][k] = value;
              continue;
            }
            failure_notes[c] = "attempt " + std::to_string(id) + " got " +
                               std::to_string(response.status) + ": " + response.body;
          } catch (const HttpError& error) {
            failure_notes[c] = "attempt " + std::to_string(id) + ": " + error.what();
          }
          ++failures;
        }
      }
    });
  }
  for (auto& client : clients) client.join();

  EXPECT_EQ(failures.load(), 0) << testing::PrintToString(failure_notes);
  for (int c = 0; c < kClients; ++c) {
    for (int k = 0; k < kIdsPerClient; ++k) {
      const std::int64_t id = kFirst + c * kIdsPerClient + k;
      EXPECT_TRUE(StoredAnswersAre(db, id,
                                   R"({"1":[)" + std::to_string(last_acknowledged[c][k]) +
                                       R"(],"2":[)" + std::to_string(c) + "]}"));
    }
  }
  const auto metrics_a = scrape_instance(port, a, b);
  const auto metrics_b = scrape_instance(port, b, a);
  const double accepted_a = metrics_a.counter("attempts_http_connections_accepted_total");
  const double accepted_b = metrics_b.counter("attempts_http_connections_accepted_total");
  RecordProperty("connections_accepted_a", std::to_string(accepted_a));
  RecordProperty("connections_accepted_b", std::to_string(accepted_b));
  EXPECT_GT(accepted_a, 0) << "instance A accepted no connection";
  EXPECT_GT(accepted_b, 0) << "instance B accepted no connection";
  EXPECT_GE(accepted_a + accepted_b, double{kClients * kIdsPerClient * kValues});
  EXPECT_GT(metrics_a.counter("attempts_db_rows_committed_total"), 0);
  EXPECT_GT(metrics_b.counter("attempts_db_rows_committed_total"), 0);
  EXPECT_EQ(metrics_a.counter("attempts_http_requests_total", with_code(kPatchRoute, "204")) +
                metrics_b.counter("attempts_http_requests_total", with_code(kPatchRoute, "204")),
            double{kClients * kIdsPerClient * kValues});
  EXPECT_TRUE(a.running());
  EXPECT_TRUE(b.running());
}

TEST(ReusePortTest, WithoutReusePortASecondInstanceCannotTakeThePort) {
  const std::uint16_t port = pick_free_port();
  SharedPortServer a(port, {"--reuse-port"});
  ASSERT_TRUE(a.wait_until_listening(seconds(10))) << a.log();

  SharedPortServer b(port, {});

  const auto status = b.wait_for_exit(seconds(10));
  ASSERT_TRUE(status.has_value()) << "a second server without --reuse-port kept running";
  EXPECT_NE(*status, ExitStatus::exit_code(0));
  EXPECT_NE(b.log().find("in use"), std::string::npos) << b.log();
  EXPECT_TRUE(a.running());
}

}  // namespace
}  // namespace attempts::integration
