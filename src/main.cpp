// Wires the layers together: configuration -> logging -> event loops -> PostgreSQL pool ->
// HTTP server.
#include <malloc.h>
#include <pthread.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <variant>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/jwks.hpp"
#include "attempts/auth/remote_keys.hpp"
#include "attempts/auth/token_cache.hpp"
#include "attempts/auth/token_verifier.hpp"
#include "attempts/config/config.hpp"
#include "attempts/db/history_maintenance.hpp"
#include "attempts/db/pg_pool.hpp"
#include "attempts/db/staff_reader.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/server.hpp"
#include "attempts/logging.hpp"
#include "attempts/metrics/exposition.hpp"
#include "attempts/progress/progress_hub.hpp"
#include "attempts/runtime/event_loops.hpp"

namespace {

constexpr int kExitUsage = 2;

// A SIGHUP that arrives while the server starts, before the Reloader listens for it, is
// remembered and acted on once it does: its default action would end the process (an operator's
// or a supervisor's reload right after a start would kill it). Installed first thing in main();
// a SIGHUP blocked by whoever started the process is unblocked, since the server handles it.
volatile std::sig_atomic_t hangup_while_starting = 0;

extern "C" void remember_hangup(int) {
  hangup_while_starting = 1;
}

void catch_hangups_while_starting() {
  std::signal(SIGHUP, remember_hangup);
  sigset_t hangup;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  pthread_sigmask(SIG_UNBLOCK, &hangup, nullptr);
}

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

// Descriptors that are not client connections: the pool's connections (and the cancel
// requests a stalled one may send), the listener, the event loops, logs, and a margin.
std::size_t reserved_descriptors(const attempts::config::Config& config) {
  return 2 * config.pool_size + 2 * config.staff_connections + 4 * config.threads + 64;
}

attempts::db::PgPoolOptions pool_options(const attempts::config::Config& config) {
  attempts::db::PgPoolOptions options;
  options.database_url = config.database_url;
  options.durability = config.durability == "sync"    ? attempts::db::Durability::sync
                       : config.durability == "async" ? attempts::db::Durability::async
                                                      : attempts::db::Durability::unlogged;
  options.citus = config.citus == "on"    ? attempts::db::CitusMode::required
                  : config.citus == "off" ? attempts::db::CitusMode::off
                                          : attempts::db::CitusMode::detect;
  options.history = config.history;
  options.citus_entry = config.citus_entry == "coordinator" ? attempts::db::CitusEntry::coordinator
                                                            : attempts::db::CitusEntry::nodes;
  options.pool_size = config.pool_size;
  options.max_batch = config.max_batch;
  options.pipeline_depth = config.pipeline_depth;
  options.queue_capacity = config.queue_capacity;
  options.queue_bytes = config.queue_bytes;
  const auto request_timeout = std::chrono::milliseconds(config.request_timeout_seconds * 1000);
  // A statement stuck on a lock fails well within the request's deadline (503, nothing saved);
  // a server that does not answer at all is given up after the whole deadline.
  options.statement_timeout = std::min(options.statement_timeout, request_timeout / 2);
  options.stall_timeout = request_timeout;
  return options;
}

// What a token's claims must say, whichever keys verify it.
attempts::auth::VerifierOptions verifier_options(const attempts::config::Config& config) {
  attempts::auth::VerifierOptions options;
  if (!config.jwt_issuer.empty()) options.issuer = config.jwt_issuer;
  if (!config.jwt_audience.empty()) options.audience = config.jwt_audience;
  options.student_claim = config.jwt_student_claim;
  options.staff.claim = config.staff_claim;
  options.staff.role = config.staff_role;
  options.staff.id_claim = config.staff_id_claim;
  options.leeway = std::chrono::seconds(config.jwt_leeway_seconds);
  return options;
}

// A verifier for the keys in --jwks, or why there is none. Keys the file has but this service
// cannot use are logged and skipped (KeySet decides which).
std::variant<std::shared_ptr<const attempts::auth::TokenVerifier>, std::string> load_verifier(
    const attempts::config::Config& config) {
  auto loaded = attempts::auth::KeySet::load_file(config.jwks_path);
  if (auto* error = std::get_if<attempts::auth::KeySetError>(&loaded)) return error->message;
  auto& keys = std::get<attempts::auth::LoadedKeySet>(loaded);
  for (const auto& warning : keys.warnings) spdlog::warn("{}: {}", config.jwks_path, warning);
  spdlog::info("{}: {} verification keys", config.jwks_path, keys.key_set.keys().size());
  return std::make_shared<const attempts::auth::TokenVerifier>(
      std::make_shared<const attempts::auth::KeySet>(std::move(keys.key_set)),
      verifier_options(config));
}

// Keys from an identity provider: --jwks-url, or discovered from --jwt-issuer.
attempts::auth::RemoteKeysOptions remote_keys_options(const attempts::config::Config& config) {
  attempts::auth::RemoteKeysOptions options;
  options.jwks_url = config.jwks_url;
  options.issuer = config.jwt_issuer;
  options.ca_file = config.jwks_ca;
  if (config.jwks_refresh_seconds != 0) {
    options.refresh = std::chrono::seconds(config.jwks_refresh_seconds);
  }
  options.min_refresh = std::chrono::seconds(config.jwks_min_refresh_seconds);
  options.verifier = verifier_options(config);
  return options;
}

bool keys_from_provider(const attempts::config::Config& config) {
  return config.auth == "jwt" && (!config.jwks_url.empty() || config.oidc_discovery);
}

// SIGHUP re-reads what can be re-read: the --jwks key file (key rotation without a restart), or
// the identity provider's keys, fetched again.
// A file that cannot be used leaves the keys in force as they were, and says why. Without
// authentication there is nothing to re-read, and the signal is logged, never fatal: the
// default action of SIGHUP would end the process without draining it.
class Reloader {
 public:
  Reloader(boost::asio::io_context& loop, const attempts::config::Config& config,
           attempts::auth::Authenticator* authenticator, attempts::auth::RemoteKeys* remote_keys)
      : signals_(loop, SIGHUP),
        config_(config),
        authenticator_(authenticator),
        remote_keys_(remote_keys) {
    wait();
    // From here on the signal set takes SIGHUP; one that came before is acted on as the loop
    // starts.
    if (hangup_while_starting != 0) {
      hangup_while_starting = 0;
      boost::asio::post(loop, [this] {
        spdlog::info("SIGHUP received while starting");
        reload();
      });
    }
  }
  void stop() { signals_.cancel(); }

 private:
  void wait() {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      reload();
      wait();
    });
  }

  void reload() {
    if (authenticator_ == nullptr) {
      spdlog::info("SIGHUP: nothing to reload (--auth none)");
      return;
    }
    if (remote_keys_ != nullptr) {
      // The keys are fetched, not read: fetch them now (after the fetch under way, if any), for
      // an operator who knows the provider has rotated, or has removed a compromised key.
      remote_keys_->refresh_now();
      spdlog::info("SIGHUP: fetching the keys from {} again", remote_keys_->status().source);
      return;
    }
    auto verifier = load_verifier(config_);
    if (auto* error = std::get_if<std::string>(&verifier)) {
      spdlog::error("SIGHUP: {}: {}; keeping the keys in force", config_.jwks_path, *error);
      return;
    }
    authenticator_->replace(std::move(std::get<0>(verifier)));
    spdlog::info("SIGHUP: {} reloaded", config_.jwks_path);
  }

  boost::asio::signal_set signals_;
  const attempts::config::Config& config_;
  attempts::auth::Authenticator* authenticator_;
  attempts::auth::RemoteKeys* remote_keys_;
};

attempts::db::StaffReaderOptions staff_reader_options(const attempts::config::Config& config) {
  attempts::db::StaffReaderOptions options;
  options.database_url = config.database_url;
  options.connections = config.staff_connections;
  options.max_exports = config.max_exports;
  options.rows_per_second = config.export_rate;
  options.statement_timeout = std::chrono::seconds(config.staff_statement_timeout_seconds);
  // A client reads a chunk within the idle timeout or its connection is closed (and the export
  // cancelled); this is the worker's own bound, should that never come.
  options.client_timeout =
      std::chrono::seconds(2 * config.idle_timeout_seconds + config.request_timeout_seconds);
  return options;
}

attempts::progress::ProgressOptions progress_options(const attempts::config::Config& config) {
  attempts::progress::ProgressOptions options;
  options.interval = std::chrono::milliseconds(config.progress_interval_ms);
  options.quiet_after = std::chrono::seconds(config.progress_quiet_seconds);
  options.max_streams = config.max_progress_streams;
  // A save stamps its row before it commits, at most a request's deadline before (the write
  // path gives up on a statement by then): each read looks back that far, and a second more.
  options.overlap = std::chrono::seconds(config.request_timeout_seconds + 1);
  options.read_timeout = std::chrono::seconds(config.request_timeout_seconds);
  return options;
}

attempts::http::ServerOptions server_options(const attempts::config::Config& config) {
  attempts::http::ServerOptions options;
  options.endpoint = {boost::asio::ip::make_address(config.listen.host), config.listen.port};
  options.max_connections = config.max_connections;
  options.reuse_port = config.reuse_port;
  options.shutdown_timeout = std::chrono::seconds(config.shutdown_timeout_seconds);
  options.session.access_log = config.access_log;
  options.session.body_limit = config.body_limit;
  options.session.idle_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  options.session.write_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  options.session.request_timeout = std::chrono::seconds(config.request_timeout_seconds);
  options.session.progress_heartbeat = std::chrono::seconds(config.progress_heartbeat_seconds);
  options.session.progress_interval = std::chrono::milliseconds(config.progress_interval_ms);
  options.session.progress_queue_bytes = config.progress_queue_bytes;
  return options;
}

}  // namespace

int main(int argc, char* argv[]) {
  catch_hangups_while_starting();
  // Buffers of 128 KiB and more (progress events of MBs, export chunks) are mapped and given
  // back when freed. glibc's default raises this threshold to the largest buffer freed so far,
  // after which such buffers come from the heaps of the threads that built them and stay there:
  // with 200 progress streams on a busy 20,000-attempt exam the peak RSS grew 21.6 MiB that way,
  // 15.1 MiB with the threshold fixed (scripts/bench-progress.sh).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = attempts::config::parse_config(args, read_env);
  switch (parsed.action) {
    case attempts::config::ParseResult::Action::show_help:
    case attempts::config::ParseResult::Action::print_config:
      std::cout << parsed.message;
      return EXIT_SUCCESS;
    case attempts::config::ParseResult::Action::fail:
      std::cerr << "attempts-server: " << parsed.message << "\n(see attempts-server --help)\n";
      return kExitUsage;
    case attempts::config::ParseResult::Action::run:
      break;
  }
  auto& config = parsed.config;
  if (config.auth == "jwt" && config.jwks_path.empty() && !keys_from_provider(config)) {
    std::cerr << "attempts-server: --auth jwt (the default) needs the keys tokens are verified "
                 "with: --jwks FILE, --jwks-url URL, or --jwt-issuer URL (OIDC discovery); "
                 "--auth none turns authentication off (trusted networks only)\n";
    return kExitUsage;
  }
  attempts::configure_logging(config.log_level, config.log_format);
  spdlog::info("attempts-server starting: {}", attempts::config::describe(config));

  std::unique_ptr<attempts::auth::Authenticator> authenticator;
  // Outlives the server (declared before the loops): tokens naming an unknown kid call it.
  std::unique_ptr<attempts::auth::RemoteKeys> remote_keys;
  if (keys_from_provider(config)) {
    authenticator = std::make_unique<attempts::auth::Authenticator>();
    try {
      remote_keys =
          std::make_unique<attempts::auth::RemoteKeys>(remote_keys_options(config), *authenticator);
    } catch (const std::runtime_error& error) {
      std::cerr << "attempts-server: " << error.what() << '\n';
      return kExitUsage;
    }
    remote_keys->start();
  } else if (config.auth == "jwt") {
    auto verifier = load_verifier(config);
    if (auto* error = std::get_if<std::string>(&verifier)) {
      std::cerr << "attempts-server: --jwks " << config.jwks_path << ": " << *error << '\n';
      return kExitUsage;
    }
    authenticator =
        std::make_unique<attempts::auth::Authenticator>(std::move(std::get<0>(verifier)));
  } else {
    spdlog::warn(
        "authentication is off (--auth none): any client can read and write any attempt; use "
        "this only on a trusted network");
  }

  // Out of descriptors, accept() fails and clients wait in the backlog; fitting the connection
  // limit under the descriptor limit makes the server refuse them cleanly instead, and keeps
  // descriptors for the pool's reconnects.
  const std::size_t reserve = reserved_descriptors(config);
  const rlim_t files = raise_file_limit(config.max_connections + reserve);
  if (files < config.max_connections + reserve) {
    const std::size_t fitted = files > reserve + 1 ? files - reserve : 1;
    spdlog::warn(
        "open-file limit {} is below what --max-connections {} needs (plus {} kept for "
        "the pool and the process); serving at most {} connections",
        files, config.max_connections, reserve, fitted);
    config.max_connections = fitted;
  }

  try {
    // Declared first, destroyed last: sessions that outlive the server (in the loops' queues)
    // still count themselves out of it.
    attempts::http::HttpMetrics http_metrics;
    attempts::runtime::EventLoops loops(config.threads);
    std::optional<attempts::db::PgPool> pool;
    // Exports and staff reads: connections and threads of their own.
    std::optional<attempts::db::StaffReader> staff_reader;
    try {
      pool.emplace(loops, pool_options(config));
      staff_reader.emplace(loops, staff_reader_options(config));
    } catch (const std::invalid_argument& error) {
      std::cerr << "attempts-server: --database-url: " << error.what() << '\n';
      return kExitUsage;
    }
    // One cache of verified tokens for the process, a reader per event loop: a lookup takes
    // no lock, and a student's token is verified once whichever loop their connections use.
    std::optional<attempts::auth::TokenCache> token_cache;
    attempts::metrics::AuthCounters auth_counters;
    Reloader reloader(loops.context(0), config, authenticator.get(), remote_keys.get());
    if (authenticator) {
      token_cache.emplace(attempts::auth::TokenCacheOptions{
          .capacity = config.token_cache_size,
          .leeway = std::chrono::seconds(config.jwt_leeway_seconds),
          .readers = loops.size()});
      auth_counters.authenticator = authenticator.get();
      auth_counters.cache = &*token_cache;
      auth_counters.remote_keys = remote_keys.get();
      spdlog::info("token cache: {} tokens in {} KiB", token_cache->capacity(),
                   token_cache->bytes() >> 10);
    }
    attempts::http::HandlerOptions handler_options;
    handler_options.authenticator = authenticator.get();
    if (remote_keys) {
      handler_options.key_status = [&remote_keys] { return remote_keys->status(); };
    }
    handler_options.cors = attempts::http::CorsPolicy(config.cors_origins);
    if (handler_options.cors.enabled()) {
      spdlog::info("CORS: pages from {} may call the API from a browser",
                   fmt::join(config.cors_origins, ", "));
    }
    // The answer history's weekly partitions, made ahead and dropped past the retention.
    std::optional<attempts::db::HistoryMaintenance> history;
    if (config.history) {
      history.emplace(attempts::db::HistoryMaintenance::Options{
          .database_url = config.database_url, .retention_days = config.history_retention_days});
      history->start();
    }
    // The proctors' progress streams: one read per watched exam per interval, on the staff
    // reader's connections.
    attempts::progress::ProgressHub progress_hub(loops, staff_reader->progress_reads(),
                                                 progress_options(config));
    handler_options.history = config.history;
    handler_options.metrics_text = [&] {
      return attempts::metrics::render_exposition(
          http_metrics, auth_counters, pool->metrics(), pool->connection_states(),
          history ? &*history : nullptr, &*staff_reader, &progress_hub.metrics(),
          progress_hub.options().interval);
    };
    attempts::http::RequestHandler handler(handler_options);
    attempts::http::Server server(
        server_options(config), loops, handler,
        [&](std::size_t loop) {
          return attempts::http::LoopResources{
              pool->store(loop), token_cache ? &token_cache->reader(loop) : nullptr,
              staff_reader->store(loop), staff_reader->exports(loop), &progress_hub};
        },
        http_metrics);
    server.start(
        // Every session has ended: the pool answers what it still holds, closes, and the
        // loops run out of work.
        [&] {
          reloader.stop();
          if (remote_keys) remote_keys->stop();
          if (history) history->stop();
          progress_hub.stop();
          staff_reader->stop();
          pool->close_when_idle([&] { loops.release(); });
        },
        [&] { return pool->pending_calls(); });
    const auto endpoint = server.local_endpoint();
    spdlog::info("listening on {}:{}", endpoint.address().to_string(), endpoint.port());
    loops.run();
    spdlog::info("stopped");
    return server.exit_code();
  } catch (const std::exception& error) {
    spdlog::critical("cannot run: {}", error.what());
    return EXIT_FAILURE;
  }
}
