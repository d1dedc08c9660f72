#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attempts::config {

struct ListenAddress {
  std::string host = "0.0.0.0";  // an IPv4 or IPv6 literal
  std::uint16_t port = 8000;     // 0 picks a free port
};

// Everything the service can be told at start-up. Defaults are sized for the reference box
// (2 cores here, 24 GB RAM, one SSD); see README "Configuration" for the reasoning.
struct Config {
  ListenAddress listen;
  std::string database_url = "postgresql:///attempts";
  unsigned threads = 1;       // event loops; the parser defaults it to the hardware concurrency
  std::size_t pool_size = 1;  // the parser defaults it to one connection per event loop
  std::size_t body_limit = 64 * 1024;
  std::string log_level = "info";
  std::string log_format = "text";  // or "json"
  bool access_log = false;
  bool reuse_port = false;
  std::size_t max_batch = 256;
  std::size_t pipeline_depth = 1;
  std::size_t queue_capacity = 4096;
  std::size_t queue_bytes = 16u << 20;
  std::size_t max_connections = 10000;
  unsigned idle_timeout_seconds = 15;
  unsigned request_timeout_seconds = 10;
  unsigned shutdown_timeout_seconds = 10;
  // Authentication: "jwt" (bearer tokens verified against a JWKS) or "none".
  std::string auth = "jwt";
  // Where the keys come from, one of: a file (re-read on SIGHUP), a URL, or the URL that
  // {jwt_issuer}/.well-known/openid-configuration names (implied by an http(s) issuer when
  // neither of the others is given).
  std::string jwks_path;
  std::string jwks_url;
  bool oidc_discovery = false;
  std::string jwks_ca;                     // PEM CA certificates for an https key source
  unsigned jwks_refresh_seconds = 0;       // 0: the JWKS response's max-age within bounds, else 300
  unsigned jwks_min_refresh_seconds = 10;  // least time between refetches for unknown kids
  std::string jwt_issuer;                  // empty: iss is not checked
  std::string jwt_audience;                // empty: aud is not checked
  std::string jwt_student_claim = "sub";   // the claim holding the student id
  unsigned jwt_leeway_seconds = 30;
  std::size_t token_cache_size = 131072;  // verified tokens kept by the process (56 B each)
  // unlogged, async or sync: what a crash of PostgreSQL may lose (README, Durability).
  std::string durability = "unlogged";
  // auto, on or off: whether attempts is a Citus distributed table, whose batches go by shard
  // (docs/scaling.md).
  std::string citus = "auto";
  std::string citus_entry = "nodes";  // "nodes" or "coordinator"
  // Whether every save, start and submit is kept in answer_history (README, Answer history), and
  // for how many days (0: for ever).
  bool history = true;
  unsigned history_retention_days = 400;
  // Staff tokens (docs/auth.md): the claim holding roles or scopes and the value a staff
  // member's has (both empty: no staff tokens), and the claim naming the staff member.
  std::string staff_claim;
  std::string staff_role;
  std::string staff_id_claim = "sub";
  // Exports and staff reads: their own connections, how many exports at once, and the limit on
  // each of their statements.
  std::size_t staff_connections = 1;
  std::size_t max_exports = 1;
  unsigned staff_statement_timeout_seconds = 30;
  std::size_t export_rate = 100000;  // attempts per second per export; 0: unpaced
  // Progress streams (GET /exams/{id}/progress): one read per watched exam per interval, the
  // quiet threshold, the heartbeat, the streams one process serves, and the bytes of events
  // queued for one stream before it falls behind.
  unsigned progress_interval_ms = 2000;
  unsigned progress_quiet_seconds = 300;
  unsigned progress_heartbeat_seconds = 15;
  std::size_t max_progress_streams = 1000;
  std::size_t progress_queue_bytes = 8 << 20;
  // Browser origins allowed to call the API (CORS), each exactly as a browser sends it in the
  // Origin header; empty: CORS off.
  std::vector<std::string> cors_origins;
};

struct ParseResult {
  enum class Action { run, show_help, print_config, fail } action = Action::run;
  Config config;
  std::string message;  // the help text, the effective settings as TOML, or what is wrong
};

// Looks up an environment variable; injected so tests need not touch the real environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Reads flags, then the environment for anything not given as a flag, then the --config file
// (TOML, keys named as the flags), then defaults. Each flag `--some-name` has the environment
// variable `SOME_NAME`. Never throws, never exits.
ParseResult parse_config(const std::vector<std::string>& args, const EnvLookup& env);

// "host:port", "[v6]:port" or ":port" (all interfaces); "localhost" means 127.0.0.1.
std::optional<ListenAddress> parse_listen_address(std::string_view text);

// The connection string with any password replaced by "***" (URI userinfo, `password=` in a
// URI query or in key=value form).
std::string redact_database_url(std::string_view url);

// One line with every effective setting, password redacted, for the start-up log.
std::string describe(const Config& config);

// Every effective setting as a TOML document that --config accepts, password redacted.
std::string to_toml(const Config& config);

}  // namespace attempts::config
