// The effective settings as people read them: one line for the start-up log, and TOML for
// --print-config (which --config reads back).
#include <sstream>
#include <string>
#include <toml.hpp>

#include "attempts/config/config.hpp"

namespace attempts::config {

namespace {

std::string format_listen_address(const ListenAddress& address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

}  // namespace

std::string describe(const Config& config) {
  std::ostringstream line;
  line << "listen=" << format_listen_address(config.listen)
       << " database-url=" << redact_database_url(config.database_url)
       << " threads=" << config.threads << " pool-size=" << config.pool_size
       << " body-limit=" << config.body_limit << " log-level=" << config.log_level
       << " max-batch=" << config.max_batch << " pipeline-depth=" << config.pipeline_depth
       << " queue-capacity=" << config.queue_capacity << " queue-bytes=" << config.queue_bytes
       << " max-connections=" << config.max_connections
       << " idle-timeout=" << config.idle_timeout_seconds
       << "s request-timeout=" << config.request_timeout_seconds
       << "s shutdown-timeout=" << config.shutdown_timeout_seconds << 's'
       << " log-format=" << config.log_format << " access-log=" << std::boolalpha
       << config.access_log << " reuse-port=" << config.reuse_port
       << " durability=" << config.durability << " citus=" << config.citus
       << " citus-entry=" << config.citus_entry << " history=" << (config.history ? "on" : "off")
       << " history-retention-days=" << config.history_retention_days
       << " staff-connections=" << config.staff_connections << " max-exports=" << config.max_exports
       << " export-rate=" << config.export_rate
       << " staff-statement-timeout=" << config.staff_statement_timeout_seconds << 's'
       << " progress-interval=" << config.progress_interval_ms << "ms"
       << " progress-quiet=" << config.progress_quiet_seconds << 's'
       << " progress-heartbeat=" << config.progress_heartbeat_seconds << 's'
       << " max-progress-streams=" << config.max_progress_streams
       << " progress-queue-bytes=" << config.progress_queue_bytes << " auth=" << config.auth
       << " cors-origin=";
  for (std::size_t i = 0; i < config.cors_origins.size(); ++i) {
    line << (i == 0 ? "" : ",") << config.cors_origins[i];
  }
  if (config.cors_origins.empty()) line << '-';
  if (config.auth == "jwt") {
    if (!config.jwks_path.empty()) line << " jwks=" << config.jwks_path;
    if (!config.jwks_url.empty()) line << " jwks-url=" << config.jwks_url;
    if (config.oidc_discovery) line << " oidc-discovery=true";
    if (!config.jwks_url.empty() || config.oidc_discovery) {
      line << " jwks-ca=" << (config.jwks_ca.empty() ? "-" : config.jwks_ca) << " jwks-refresh="
           << (config.jwks_refresh_seconds == 0 ? std::string("auto")
                                                : std::to_string(config.jwks_refresh_seconds) + "s")
           << " jwks-min-refresh=" << config.jwks_min_refresh_seconds << 's';
    }
    line << " jwt-issuer=" << (config.jwt_issuer.empty() ? "-" : config.jwt_issuer)
         << " jwt-audience=" << (config.jwt_audience.empty() ? "-" : config.jwt_audience)
         << " jwt-student-claim=" << config.jwt_student_claim
         << " staff-claim=" << (config.staff_claim.empty() ? "-" : config.staff_claim)
         << " staff-role=" << (config.staff_role.empty() ? "-" : config.staff_role)
         << " staff-id-claim=" << config.staff_id_claim
         << " jwt-leeway=" << config.jwt_leeway_seconds << "s"
         << " token-cache-size=" << config.token_cache_size;
  }
  return line.str();
}

std::string to_toml(const Config& config) {
  // Strings go through toml11 so that quotes and backslashes are escaped correctly.
  const auto quoted = [](const std::string& text) {
    std::ostringstream out;
    out << toml::value(text);
    return out.str();
  };
  std::ostringstream out;
  out << std::boolalpha << "# attempts-server effective settings (password redacted)\n"
      << "listen = " << quoted(format_listen_address(config.listen)) << '\n'
      << "database-url = " << quoted(redact_database_url(config.database_url)) << '\n'
      << "threads = " << config.threads << '\n'
      << "pool-size = " << config.pool_size << '\n'
      << "body-limit = " << config.body_limit << '\n'
      << "log-level = " << quoted(config.log_level) << '\n'
      << "log-format = " << quoted(config.log_format) << '\n'
      << "access-log = " << config.access_log << '\n'
      << "max-batch = " << config.max_batch << '\n'
      << "pipeline-depth = " << config.pipeline_depth << '\n'
      << "queue-capacity = " << config.queue_capacity << '\n'
      << "queue-bytes = " << config.queue_bytes << '\n'
      << "max-connections = " << config.max_connections << '\n'
      << "idle-timeout = " << config.idle_timeout_seconds << '\n'
      << "request-timeout = " << config.request_timeout_seconds << '\n'
      << "shutdown-timeout = " << config.shutdown_timeout_seconds << '\n'
      << "reuse-port = " << config.reuse_port << '\n'
      << "durability = " << quoted(config.durability) << '\n'
      << "citus = " << quoted(config.citus) << '\n'
      << "citus-entry = " << quoted(config.citus_entry) << '\n'
      << "history = " << quoted(config.history ? "on" : "off") << '\n'
      << "history-retention-days = " << config.history_retention_days << '\n'
      << "staff-connections = " << config.staff_connections << '\n'
      << "max-exports = " << config.max_exports << '\n'
      << "export-rate = " << config.export_rate << '\n'
      << "staff-statement-timeout = " << config.staff_statement_timeout_seconds << '\n'
      << "progress-interval = " << config.progress_interval_ms << '\n'
      << "progress-quiet = " << config.progress_quiet_seconds << '\n'
      << "progress-heartbeat = " << config.progress_heartbeat_seconds << '\n'
      << "max-progress-streams = " << config.max_progress_streams << '\n'
      << "progress-queue-bytes = " << config.progress_queue_bytes << '\n'
      << "auth = " << quoted(config.auth) << '\n'
      << "jwks = " << quoted(config.jwks_path) << '\n'
      << "jwks-url = " << quoted(config.jwks_url) << '\n'
      << "oidc-discovery = " << config.oidc_discovery << '\n'
      << "jwks-ca = " << quoted(config.jwks_ca) << '\n'
      << "jwks-refresh = " << config.jwks_refresh_seconds << '\n'
      << "jwks-min-refresh = " << config.jwks_min_refresh_seconds << '\n'
      << "jwt-issuer = " << quoted(config.jwt_issuer) << '\n'
      << "jwt-audience = " << quoted(config.jwt_audience) << '\n'
      << "jwt-student-claim = " << quoted(config.jwt_student_claim) << '\n'
      << "staff-claim = " << quoted(config.staff_claim) << '\n'
      << "staff-role = " << quoted(config.staff_role) << '\n'
      << "staff-id-claim = " << quoted(config.staff_id_claim) << '\n'
      << "jwt-leeway = " << config.jwt_leeway_seconds << '\n'
      << "token-cache-size = " << config.token_cache_size << '\n'
      << "cors-origin = [";
  for (std::size_t i = 0; i < config.cors_origins.size(); ++i) {
    out << (i == 0 ? "" : ", ") << quoted(config.cors_origins[i]);
  }
  out << "]\n";
  return out.str();
}

}  // namespace attempts::config
