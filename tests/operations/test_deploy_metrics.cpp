// Every metric name that deploy/ uses (the Prometheus rules and the Grafana dashboard) exists in
// the /metrics page of a live attempts-server: a renamed or made-up metric would leave an alert
// that can never fire, or an empty panel, and nothing else would notice.
//
// Names are taken from each PromQL expression by a small lexer: what remains after dropping
// strings, label matchers ({...}), ranges ([...]), numbers and durations, functions and
// aggregations (a name followed by '('), keywords with their label lists (by (...), on (...)),
// and Grafana variables ($instance). A name may also be one a recording rule in deploy/ defines,
// or `up`, which Prometheus adds to every scrape target.
//
// And Debian's Prometheus (the prometheus package, which also gives promtool) scrapes a live
// server on loopback with deploy/'s rule files, and evaluates every rule without an error: a
// rule that parses can still fail on real series (many-to-many matching, duplicate series).
//
// The rule files are read by a line reader for the layout they keep: each rule is a list item
// `- alert: NAME` or `- record: NAME`, and its `expr:` is on one line or a block (`expr: |`)
// of lines indented deeper than the key. Any other way of writing an expr throws.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/http_client.hpp"
#include "support/oidc_provider.hpp"
#include "support/server_process.hpp"
#include "support/subprocess.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;
using Names = std::set<std::string, std::less<>>;

// Series that Prometheus makes itself, not the server.
const Names kPrometheusSeries = {"up"};

// Words that are not metric names where a name could stand.
const Names kKeywords = {
    "and",          "or",       "unless",     "bool",        "offset", "by",     "without",
    "on",           "ignoring", "group_left", "group_right", "inf",    "nan",    "sum",
    "min",          "max",      "avg",        "group",       "stddev", "stdvar", "count",
    "count_values", "bottomk",  "topk",       "quantile",    "atan2",
};
// Keywords followed by a parenthesised list of label names.
const Names kLabelListKeywords = {"by", "without", "on", "ignoring", "group_left", "group_right"};

bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':';
}
bool is_name_char(char c) {
  return is_name_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0;
}

// The index just past the bracketed group that starts at `open` (`{`, `[` or `(`), skipping
// quoted strings inside it.
std::size_t skip_group(std::string_view text, std::size_t open) {
  const char opening = text[open];
  const char closing = opening == '{' ? '}' : opening == '[' ? ']' : ')';
  int depth = 0;
  for (std::size_t i = open; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"' || c == '\'' || c == '`') {
      for (++i; i < text.size() && text[i] != c; ++i) {
        if (text[i] == '\\' && c != '`') ++i;
      }
    } else if (c == opening) {
      ++depth;
    } else if (c == closing && --depth == 0) {
      return i + 1;
    }
  }
  throw std::runtime_error("unbalanced '" + std::string(1, opening) + "' in: " + std::string(text));
}

std::size_t skip_spaces(std::string_view text, std::size_t i) {
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
  return i;
}

// The metric names (and recording rule names) a PromQL expression selects.
Names metric_names(std::string_view expr) {
  Names names;
  std::size_t i = 0;
  while (i < expr.size()) {
    const char c = expr[i];
    if (c == '"' || c == '\'' || c == '`') {
      const char quote = c;
      for (++i; i < expr.size() && expr[i] != quote; ++i) {
        if (expr[i] == '\\' && quote != '`') ++i;
      }
      ++i;
    } else if (c == '#') {
      while (i < expr.size() && expr[i] != '\n') ++i;
    } else if (c == '{' || c == '[') {
      i = skip_group(expr, i);
    } else if (c == '$') {  // a Grafana variable: $name or ${name}
      ++i;
      if (i < expr.size() && expr[i] == '{') {
        i = skip_group(expr, i);
      } else {
        while (i < expr.size() && is_name_char(expr[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0 ||
               (c == '.' && i + 1 < expr.size() &&
                std::isdigit(static_cast<unsigned char>(expr[i + 1])) != 0)) {
      // A number or a duration: 0.99, 1e3, 5m, 1h30m.
      while (i < expr.size() && (is_name_char(expr[i]) || expr[i] == '.')) ++i;
    } else if (is_name_start(c)) {
      const std::size_t start = i;
      while (i < expr.size() && is_name_char(expr[i])) ++i;
      const std::string word(expr.substr(start, i - start));
      const std::size_t next = skip_spaces(expr, i);
      if (kLabelListKeywords.count(word) != 0) {
        if (next < expr.size() && expr[next] == '(') i = skip_group(expr, next);
      } else if (kKeywords.count(word) == 0 && (next >= expr.size() || expr[next] != '(')) {
        names.insert(word);  // not a function or aggregation call
      }
    } else {
      ++i;
    }
  }
  return names;
}

// ---- What deploy/ uses ------------------------------------------------------------------------

struct Expression {
  std::string where;  // file and rule or panel, for messages
  std::string promql;
};

struct DeployUse {
  std::vector<Expression> expressions;
  Names recorded;  // names recording rules define
};

std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t indentation(std::string_view line) {
  return line.find_first_not_of(' ') == std::string_view::npos ? line.size()
                                                               : line.find_first_not_of(' ');
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

// Adds the rules of one rule file (its text, named `file` in messages).
void read_rules(const std::string& file, const std::string& text, DeployUse& use) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::size_t rules = 0;
  std::size_t exprs = 0;
  std::string rule;
  for (std::size_t n = 0; n < lines.size(); ++n) {
    const std::string content = trim(lines[n]);
    for (const std::string_view key : {"- alert:", "- record:"}) {
      if (content.rfind(key, 0) == 0) {
        ++rules;
        rule = trim(std::string_view(content).substr(key.size()));
        if (key == "- record:") use.recorded.insert(rule);
      }
    }
    if (content.rfind("expr:", 0) != 0 && content.rfind("- expr:", 0) != 0) continue;
    ++exprs;
    const std::string value = trim(content.substr(content.find(':') + 1));
    const std::string where = file + ":" + std::to_string(n + 1) + " (" + rule + ")";
    if (value == "|" || value == "|-" || value == ">" || value == ">-") {
      const std::size_t key_indent = indentation(lines[n]);
      std::string block;
      while (n + 1 < lines.size() &&
             (trim(lines[n + 1]).empty() || indentation(lines[n + 1]) > key_indent)) {
        block += lines[++n] + "\n";
      }
      use.expressions.push_back({where, block});
    } else if (value.empty() || value.front() == '"' || value.front() == '\'') {
      throw std::runtime_error(where + ": write expr unquoted on its line or as a block (|)");
    } else {
      use.expressions.push_back({where, value});
    }
  }
  if (rules == 0 || rules != exprs) {
    throw std::runtime_error(file + ": " + std::to_string(rules) + " rules but " +
                             std::to_string(exprs) + " exprs read");
  }
}

// Adds every query of a Grafana dashboard: panels' targets (rows' panels included) and the
// metric of label_values() in template variables.
void read_dashboard(const std::string& file, const std::string& text, DeployUse& use) {
  const json dashboard = json::parse(text);
  std::size_t panels = 0;
  const auto read_panel = [&](const json& panel) {
    if (panel.value("type", "") == "row") return;
    ++panels;
    const std::string where = file + " (panel \"" + panel.value("title", "?") + "\")";
    std::size_t queries = 0;
    for (const auto& target : panel.value("targets", json::array())) {
      if (!target.contains("expr")) continue;
      use.expressions.push_back({where, target["expr"].get<std::string>()});
      ++queries;
    }
    if (queries == 0) throw std::runtime_error(where + " has no PromQL query");
  };
  for (const auto& panel : dashboard.at("panels")) {
    read_panel(panel);
    for (const auto& inner : panel.value("panels", json::array())) read_panel(inner);
  }
  if (panels == 0) throw std::runtime_error(file + " has no panels");
  for (const auto& variable : dashboard.at("templating").at("list")) {
    if (variable.value("type", "") != "query") continue;
    const auto& query = variable.at("query");
    const std::string text_query =
        query.is_string() ? query.get<std::string>() : query.at("query").get<std::string>();
    // label_values(METRIC_SELECTOR, label): the label is not a metric.
    const std::string prefix = "label_values(";
    const auto comma = text_query.rfind(',');
    if (text_query.rfind(prefix, 0) != 0 || comma == std::string::npos) {
      throw std::runtime_error(file + ": variable " + variable.value("name", "?") +
                               ": only label_values(metric, label) queries are read");
    }
    use.expressions.push_back({file + " (variable " + variable.value("name", "?") + ")",
                               text_query.substr(prefix.size(), comma - prefix.size())});
  }
}

std::filesystem::path deploy_dir() {
  return ATTEMPTS_DEPLOY_DIR;
}

// Rule files by name and their text, so that a test can change one.
std::map<std::string, std::string> rule_files() {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(deploy_dir() / "prometheus/rules")) {
    if (entry.path().extension() == ".yml") {
      files[entry.path().lexically_relative(deploy_dir()).string()] = file_text(entry.path());
    }
  }
  return files;
}

DeployUse read_deploy(const std::map<std::string, std::string>& rules) {
  DeployUse use;
  for (const auto& [file, text] : rules) read_rules(file, text, use);
  const auto dashboards = deploy_dir() / "grafana/dashboards";
  for (const auto& entry : std::filesystem::directory_iterator(dashboards)) {
    if (entry.path().extension() == ".json") {
      read_dashboard(entry.path().lexically_relative(deploy_dir()).string(),
                     file_text(entry.path()), use);
    }
  }
  return use;
}

// "name in where: expr" for every name that is neither on the page, nor recorded, nor
// Prometheus's own.
std::vector<std::string> unknown_names(const DeployUse& use, const Names& on_page) {
  std::vector<std::string> unknown;
  for (const auto& expression : use.expressions) {
    for (const auto& name : metric_names(expression.promql)) {
      if (on_page.count(name) || use.recorded.count(name) || kPrometheusSeries.count(name)) {
        continue;
      }
      unknown.push_back(name + " in " + expression.where + ": " + expression.promql);
    }
  }
  return unknown;
}

// ---- The live server ---------------------------------------------------------------------------

// The sample names of a /metrics page (histograms' _bucket, _sum and _count included).
Names sample_names(const std::string& page) {
  Names names;
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.front() == '#') continue;
    names.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

// The /metrics page of a server that has served what the dashboard shows: a read with a valid
// token, a request with none (a rejection), a probe. Authentication is on, so the auth families
// are on the page too. Only reads: the shared database is left as it was.
std::string live_page() {
  TestJwks jwks;
  ServerProcess server(
      ServerSettings::with_flags({"--auth", "jwt", "--jwks", jwks.path(), "--pool-size", "2"}));
  constexpr std::int64_t kId = 7990;
  HttpClient client(server.port());
  EXPECT_EQ(
      client.request(with_token(get_request(attempt_target(kId)), token_for(owner_of(kId)))).status,
      200);
  EXPECT_EQ(HttpClient(server.port()).request(get_request(attempt_target(kId))).status, 401);
  EXPECT_EQ(HttpClient(server.port()).request(get_request("/readyz")).status, 200);
  const auto page = HttpClient(server.port()).request(get_request("/metrics"));
  EXPECT_EQ(page.status, 200);
  return page.body;
}

// The page of a server whose keys come from an identity provider (a real one on loopback, see
// support/oidc_provider.hpp), once it has them: the key source's families are on it too.
std::string live_page_with_provider_keys() {
  OidcProvider provider;
  ServerProcess server(ServerSettings::with_flags(
      {"--auth", "jwt", "--jwt-issuer", provider.issuer(), "--pool-size", "2"}));
  EXPECT_EQ(
      when_status(server.port(), get_request("/readyz"), 200, std::chrono::seconds(30)).status,
      200);
  const auto page = HttpClient(server.port()).request(get_request("/metrics"));
  EXPECT_EQ(page.status, 200);
  return page.body;
}

Names live_sample_names() {
  Names names = sample_names(live_page());
  names.merge(sample_names(live_page_with_provider_keys()));
  return names;
}

// ---- Prometheus itself --------------------------------------------------------------------------

constexpr const char* kPrometheus = "/usr/bin/prometheus";

// Debian's Prometheus on a free loopback port, scraping `target` every second with deploy/'s rule
// files, its data in a temporary directory. Stopped (SIGTERM, then SIGKILL) on destruction; only
// its own pid is ever signalled.
class PrometheusProcess {
 public:
  explicit PrometheusProcess(std::uint16_t target) : port_(pick_free_port()) {
    std::ofstream config(dir_.file("prometheus.yml"));
    config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           << "rule_files:\n  - " << (deploy_dir() / "prometheus/rules/*.yml").string() << "\n"
           << "scrape_configs:\n  - job_name: attempts\n    static_configs:\n"
           << "      - targets: [\"127.0.0.1:" << target << "\"]\n";
    config.close();
    SpawnOptions options;
    options.argv = {kPrometheus, "--config.file=" + dir_.file("prometheus.yml"),
                    "--storage.tsdb.path=" + dir_.file("data"),
                    "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"};
    options.output_path = dir_.file("prometheus.log");
    options.kill_with_parent = true;
    pid_ = spawn_process(options);
  }
  ~PrometheusProcess() {
    if (poll_exit(pid_)) return;
    ::kill(pid_, SIGTERM);
    if (!wait_for_exit(pid_, std::chrono::seconds(10))) {
      ::kill(pid_, SIGKILL);
      wait_for_exit(pid_, std::chrono::seconds(10));
    }
  }
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  // The `data` of an API answer, or null while Prometheus does not answer yet.
  json api(const std::string& target) {
    try {
      const auto response = HttpClient(port_).request(get_request(target));
      if (response.status != 200) return nullptr;
      return json::parse(response.body).at("data");
    } catch (const HttpError&) {
      return nullptr;
    }
  }
  bool running() { return !poll_exit(pid_).has_value(); }
  std::string log() const { return read_file(dir_.file("prometheus.log")); }

 private:
  TempDir dir_{"attempts-prometheus"};
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// Every rule of every group of /api/v1/rules, once each has been evaluated at least twice (its
// lastEvaluation moved on); empty if that does not happen within `within`.
std::vector<json> evaluated_rules(PrometheusProcess& prometheus, std::chrono::seconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  std::map<std::string, std::string> first_evaluation;
  while (std::chrono::steady_clock::now() < deadline && prometheus.running()) {
    const json data = prometheus.api("/api/v1/rules");
    std::vector<json> rules;
    std::size_t twice = 0;
    if (data.is_object()) {
      for (const auto& group : data.at("groups")) {
        for (const auto& rule : group.at("rules")) {
          rules.push_back(rule);
          const std::string at = rule.value("lastEvaluation", "");
          const std::string key = group.value("name", "") + "/" + rule.value("name", "");
          if (at.rfind("0001-", 0) == 0 || at.empty()) continue;
          const auto [first, inserted] = first_evaluation.emplace(key, at);
          if (!inserted && first->second != at) ++twice;
        }
      }
    }
    if (!rules.empty() && twice == rules.size()) return rules;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return {};
}

// ---- Tests -------------------------------------------------------------------------------------

TEST(MetricNamesTest, ThePromqlReaderFindsMetricsAndNothingElse) {
  const std::pair<std::string, Names> kCases[] = {
      {R"(histogram_quantile(0.99, sum by (instance, le) (rate(x_bucket{route="PATCH /a/{id}"}[5m]))) > 0.1)",
       {"x_bucket"}},
      {R"(a{code=~"5.."} / ignoring (state) group_left (route) b offset 5m and on () c:rec == 1)",
       {"a", "b", "c:rec"}},
      {R"((sum(rate(m{route!~"/healthz|/readyz"}[$__rate_interval])) or vector(0)) == 0)", {"m"}},
      {"max by (instance) (avg_over_time(q[2m])) > 2048  # a comment names nothing_here", {"q"}},
      {R"(up{job="attempts"} == 0 unless count without (x) (y{i=~"$instance"}) > 1e3)",
       {"up", "y"}},
      {"vector(1) and on () (hour() >= 7 < 20)", {}},
  };
  for (const auto& [expr, expected] : kCases) EXPECT_EQ(metric_names(expr), expected) << expr;
}

TEST(MetricNamesTest, EveryNameInDeployIsOnALiveServersMetricsPage) {
  const Names on_page = live_sample_names();
  ASSERT_TRUE(on_page.count("attempts_http_request_duration_seconds_bucket"))
      << "the page lacks series the requests above should have made";
  ASSERT_TRUE(on_page.count("attempts_auth_rejections_total"));
  const DeployUse use = read_deploy(rule_files());
  // 17 alerts, 5 recording rules and 25+ panels: the readers found them all.
  EXPECT_GE(use.expressions.size(), 40u);
  EXPECT_EQ(use.recorded.size(), 5u);
  const auto unknown = unknown_names(use, on_page);
  EXPECT_TRUE(unknown.empty()) << "not on the live server's /metrics:\n"
                               << testing::PrintToString(unknown);
  std::size_t used = 0;
  for (const auto& name : on_page) {
    for (const auto& expression : use.expressions) {
      if (metric_names(expression.promql).count(name)) {
        ++used;
        break;
      }
    }
  }
  std::cout << "[  FIGURE  ] deploy_metric_names_checked = " << used << " of " << on_page.size()
            << " sample names on the page, in " << use.expressions.size() << " expressions\n";
}

// promtool's own lint of an exposition (names, HELP, TYPE, counters ending in _total, ...).
TEST(MetricNamesTest, PromtoolFindsNothingToLintOnTheLivePage) {
  TempDir dir("attempts-metrics-page");
  std::ofstream(dir.file("metrics.txt")) << live_page();
  SpawnOptions options;
  options.argv = {"sh", "-c", "promtool check metrics < \"$0\"", dir.file("metrics.txt")};
  const auto result = run_command(options, std::chrono::seconds(30));
  EXPECT_EQ(result.status, ExitStatus::exit_code(0)) << result.output;
  EXPECT_EQ(result.output, "");
}

TEST(MetricNamesTest, AMadeUpNameInARuleIsCaught) {
  const Names on_page = live_sample_names();
  auto rules = rule_files();
  auto& text = rules.at("prometheus/rules/attempts.yml");
  const std::string real = "attempts_db_queue_depth";
  const auto at = text.find(real);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, real.size(), "attempts_db_queue_length");
  const auto unknown = unknown_names(read_deploy(rules), on_page);
  ASSERT_EQ(unknown.size(), 1u) << testing::PrintToString(unknown);
  EXPECT_EQ(unknown[0].rfind("attempts_db_queue_length in prometheus/rules/attempts.yml:", 0), 0u)
      << unknown[0];
}

}  // namespace
}  // namespace attempts::integration

namespace attempts::integration {
namespace {

TEST(PrometheusTest, ScrapesALiveServerAndEvaluatesEveryRuleWithoutAnError) {
  ASSERT_TRUE(std::filesystem::exists(kPrometheus))
      << kPrometheus << " is missing: Debian's prometheus package (scripts/install-deps.sh)";
  TestJwks jwks;
  ServerProcess server(
      ServerSettings::with_flags({"--auth", "jwt", "--jwks", jwks.path(), "--pool-size", "2"}));
  constexpr std::int64_t kId = 7991;
  EXPECT_EQ(HttpClient(server.port())
                .request(with_token(get_request(attempt_target(kId)), token_for(owner_of(kId))))
                .status,
            200);
  EXPECT_EQ(HttpClient(server.port()).request(get_request(attempt_target(kId))).status, 401);
  PrometheusProcess prometheus(server.port());

  // The scrape: the target is up and the server's series are stored under job attempts.
  json up;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && prometheus.running()) {
    up = prometheus.api("/api/v1/query?query=up");
    if (up.is_object() && !up.at("result").empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(up.is_object() && up.at("result").size() == 1) << up.dump() << prometheus.log();
  EXPECT_EQ(up.at("result")[0].at("metric").value("job", ""), "attempts");
  EXPECT_EQ(up.at("result")[0].at("value")[1], "1");
  const json connections = prometheus.api("/api/v1/query?query=attempts_db_connection_up");
  ASSERT_TRUE(connections.is_object()) << prometheus.log();
  EXPECT_EQ(connections.at("result").size(), 2u) << connections.dump();

  // Then every rule, evaluated again since: on the scraped series.
  const auto rules = evaluated_rules(prometheus, std::chrono::seconds(60));
  ASSERT_FALSE(rules.empty()) << "the rules were not evaluated twice within 60 s:\n"
                              << prometheus.log();
  const DeployUse use = read_deploy(rule_files());
  std::size_t alerts = 0;
  for (const auto& rule : rules) {
    alerts += rule.value("type", "") == "alerting";
    EXPECT_EQ(rule.value("health", ""), "ok")
        << rule.value("name", "") << ": " << rule.value("lastError", "");
  }
  EXPECT_EQ(rules.size(), alerts + use.recorded.size());
  std::size_t alerts_in_files = 0;  // every `- alert:` of deploy/'s rule files
  for (const auto& [file, text] : rule_files()) {
    for (auto at = text.find("- alert:"); at != std::string::npos;
         at = text.find("- alert:", at + 1)) {
      ++alerts_in_files;
    }
  }
  EXPECT_EQ(alerts, alerts_in_files);
  EXPECT_GE(alerts, 16u);
  std::cout << "[  FIGURE  ] prometheus_rules_evaluated_ok = " << rules.size() << " (" << alerts
            << " alerts)\n";
}

}  // namespace
}  // namespace attempts::integration
