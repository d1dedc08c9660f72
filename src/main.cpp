// Wires the layers together: configuration -> logging -> PostgreSQL store -> HTTP server.
#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <iostream>

#include "attempts/config/config.hpp"
#include "attempts/db/pg_attempt_store.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/server.hpp"
#include "attempts/logging.hpp"

namespace {

constexpr int kExitUsage = 2;

std::optional<std::string> read_env(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value ? std::optional<std::string>(value) : std::nullopt;
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
    case attempts::config::ParseResult::Action::fail:
      std::cerr << "attempts-server: " << parsed.message << "\n(see attempts-server --help)\n";
      return kExitUsage;
    case attempts::config::ParseResult::Action::run:
      break;
  }
  const auto& config = parsed.config;
  attempts::configure_logging(config.log_level);
  spdlog::info("attempts-server starting: {}", attempts::config::describe(config));

  try {
    attempts::db::PgAttemptStore store(pool_options(config));
    attempts::http::RequestHandler handler(store, attempts::http::HandlerOptions{});
    attempts::http::Server server(server_options(config), handler);
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
