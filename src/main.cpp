// Wires the layers together: configuration -> logging -> PostgreSQL store -> HTTP server.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <iostream>

#include "attempts/config/config.hpp"
#include "attempts/db/pg_attempt_store.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/server.hpp"
#include "attempts/logging.hpp"
#include "attempts/metrics/exposition.hpp"

namespace {

constexpr int kExitUsage = 2;

std::optional<std::string> read_env(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value ? std::optional<std::string>(value) : std::nullopt;
}

// Each client connection is a file descriptor; the usual soft limit of 1024 would refuse
// connections long before --max-connections. Raises it as far as the hard limit allows and
// returns the limit now in force.
rlim_t raise_file_limit(rlim_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < wanted && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = std::min(limit.rlim_max, wanted);
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

attempts::db::PgPoolOptions pool_options(const attempts::config::Config& config) {
  attempts::db::PgPoolOptions options;
  options.database_url = config.database_url;
  options.pool_size = config.pool_size;
  options.max_batch = config.max_batch;
  options.queue_capacity = config.queue_capacity;
  return options;
}

attempts::http::ServerOptions server_options(const attempts::config::Config& config) {
  attempts::http::ServerOptions options;
  options.endpoint = {boost::asio::ip::make_address(config.listen.host), config.listen.port};
  options.threads = config.threads;
  options.max_connections = config.max_connections;
  options.reuse_port = config.reuse_port;
  options.session.access_log = config.access_log;
  options.shutdown_timeout = std::chrono::seconds(config.shutdown_timeout_seconds);
  options.session.body_limit = config.body_limit;
  options.session.idle_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  return options;
}

}  // namespace

int main(int argc, char* argv[]) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto parsed = attempts::config::parse_config(args, read_env);
  switch (parsed.action) {
    case attempts::config::ParseResult::Action::show_help:
      std::cout << parsed.message;
      return EXIT_SUCCESS;
    case attempts::config::ParseResult::Action::print_config:
      std::cout << parsed.message;
      return EXIT_SUCCESS;
    case attempts::config::ParseResult::Action::fail:
      std::cerr << "attempts-server: " << parsed.message << "\n(see attempts-server --help)\n";
      return kExitUsage;
    case attempts::config::ParseResult::Action::run:
      break;
  }
  const auto& config = parsed.config;
  attempts::configure_logging(config.log_level, config.log_format);
  spdlog::info("attempts-server starting: {}", attempts::config::describe(config));

  // Client connections, plus the pool's connections and a margin for the listener and logs.
  const rlim_t wanted_files = config.max_connections + config.pool_size + 64;
  if (const rlim_t files = raise_file_limit(wanted_files); files < wanted_files) {
    spdlog::warn(
        "open-file limit {} is below what --max-connections {} needs; connections beyond "
        "it are refused",
        files, config.max_connections);
  }

  try {
    attempts::db::PgAttemptStore store(pool_options(config));
    attempts::http::HttpMetrics http_metrics;
    attempts::http::HandlerOptions handler_options;
    handler_options.metrics_text = [&] {
      return attempts::metrics::render_exposition(http_metrics, store.metrics(),
                                                  store.connection_states());
    };
    attempts::http::RequestHandler handler(store, handler_options);
    attempts::http::Server server(server_options(config), handler, http_metrics);
    const auto endpoint = server.local_endpoint();
    spdlog::info("listening on {}:{}", endpoint.address().to_string(), endpoint.port());
    server.run();
    // Every session has ended; what the workers still hold is answered before they stop.
    store.stop();
    spdlog::info("stopped");
    return EXIT_SUCCESS;
  } catch (const std::exception& error) {
    spdlog::critical("cannot run: {}", error.what());
    return EXIT_FAILURE;
  }
}
