#include "attempts/config/config.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <limits>
#include <map>
#include <sstream>
#include <thread>
#include <toml.hpp>

#include "attempts/auth/url.hpp"
#include "attempts/http/cors.hpp"

namespace attempts::config {
namespace {

namespace po = boost::program_options;

constexpr std::array kLogLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};

struct Option {
  const char* name;
  const char* help;
};

// Every setting is read as text and validated here, so that "-1" or "12abc" gets a precise
// message instead of program_options' wrap-around or generic error.
constexpr std::array kOptions = {
    Option{"listen", "address to listen on, host:port (default 0.0.0.0:8000)"},
    Option{"database-url", "libpq connection string or URI (default postgresql:///attempts)"},
    Option{"threads",
           "event loops, one thread each (default: hardware concurrency, at most --pool-size)"},
    Option{"pool-size",
           "PostgreSQL connections, spread over the event loops; at least --threads (default: "
           "one per event loop)"},
    Option{"body-limit", "largest request body in bytes (default 65536)"},
    Option{"log-level", "trace, debug, info, warn, error, critical or off (default info)"},
    Option{"log-format", "text or json (one JSON object per line) (default text)"},
    Option{"access-log", "log one line per request at info level (default false)"},
    Option{"max-batch", "most queued writes sent as one statement (default 256)"},
    Option{"pipeline-depth",
           "statements a connection sends before the first one's reply arrives (default 1)"},
    Option{"queue-capacity", "calls queued per connection before 503 (default 4096)"},
    Option{"queue-bytes",
           "bytes of answers queued per connection before 503, at least --body-limit (default "
           "16777216, or --body-limit if larger)"},
    Option{"max-connections",
           "open client connections before new ones are refused (default 10000)"},
    Option{"idle-timeout",
           "seconds a keep-alive connection may wait for its next request, or a client may "
           "take to read a response (default 15)"},
    Option{"request-timeout",
           "seconds from a request's first byte to its response, whatever the client or the "
           "database does (default 10)"},
    Option{"shutdown-timeout", "seconds in-flight requests get after SIGTERM (default 10)"},
    Option{"auth",
           "jwt (bearer tokens, see --jwks) or none (no authentication: trusted networks only) "
           "(default jwt)"},
    Option{"jwks", "JWKS file with the keys tokens are verified with; re-read on SIGHUP"},
    Option{"jwks-url",
           "http(s) URL of the JWKS, fetched off the request path at start, every --jwks-refresh, "
           "on SIGHUP and when a token's key is missing or does not verify it (instead of "
           "--jwks); https stays https through redirects, and http is logged as a warning"},
    Option{"oidc-discovery",
           "fetch the keys from the jwks_uri of {--jwt-issuer}/.well-known/openid-configuration "
           "(default: true when --jwt-issuer is an http(s) URL and neither --jwks nor --jwks-url "
           "is given)"},
    Option{"jwks-ca",
           "PEM file of the CA certificates an https key source must chain to (default: the "
           "system's store)"},
    Option{"jwks-refresh",
           "seconds between fetches of a remote JWKS; 0: the response's Cache-Control max-age "
           "within 60-86400, else 300 (default 0)"},
    Option{"jwks-min-refresh",
           "least seconds between fetches asked for by tokens naming an unknown kid or whose key "
           "does not verify them (their 401 says when to retry); SIGHUP does not wait (default "
           "10)"},
    Option{"jwt-issuer", "required iss claim (default: not checked)"},
    Option{"jwt-audience", "required aud claim (default: not checked)"},
    Option{"jwt-student-claim",
           "the claim holding the student id, a positive integer as a JSON number or a decimal "
           "string (default sub)"},
    Option{"jwt-leeway", "seconds of clock skew allowed on exp, nbf and iat (default 30)"},
    Option{"token-cache-size",
           "verified tokens the process remembers, rounded up to a power of two; 56 bytes each "
           "(default 131072: 7 MiB)"},
    Option{"durability",
           "unlogged (UNLOGGED table), async (LOGGED, synchronous_commit off) or sync (LOGGED, "
           "synchronous_commit on); the table must match (default unlogged)"},
    Option{"citus",
           "auto (detect a Citus cluster with attempts distributed, and batch by shard), on "
           "(require one) or off (plain PostgreSQL statements) (default auto)"},
    Option{"citus-entry",
           "nodes (each shard's batches enter at the Citus node holding the shard, through one "
           "extra connection per node and event loop) or coordinator (everything through "
           "--database-url) (default nodes)"},
    Option{"history",
           "on (keep every save, start and submit in answer_history, written in the save's own "
           "statement; GET /attempts/{id}/history reads it) or off (the saves' statements as "
           "without history) (default on)"},
    Option{"history-retention-days",
           "days the answer history is kept, in whole weeks (partitions older than this are "
           "dropped every hour); 0 keeps it for ever (default 400)"},
    Option{"reuse-port",
           "set SO_REUSEPORT so several processes can share the port (default false)"},
    Option{"cors-origin",
           "an origin, scheme://host[:port], whose pages may call the API from a browser "
           "(CORS); repeat the flag for several (CORS_ORIGIN and the file: separated by commas "
           "or spaces, or a TOML array) (default: none, CORS off)"},
};

// Switches may be given bare (`--access-log`) or with a value (`--access-log=false`).
constexpr std::array kSwitches = {"access-log", "reuse-port", "oidc-discovery"};

bool is_switch(std::string_view name) {
  return std::find(kSwitches.begin(), kSwitches.end(), name) != kSwitches.end();
}

// Lists: the flag may be repeated, and the environment and the file give several values.
constexpr std::array kLists = {"cors-origin"};

bool is_list(std::string_view name) {
  return std::find(kLists.begin(), kLists.end(), name) != kLists.end();
}

// "a, b c" -> {"a", "b", "c"}: a list's items as the environment or the file give them.
std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  constexpr std::string_view kSeparators = ", \t\n";
  for (auto start = text.find_first_not_of(kSeparators); start != std::string_view::npos;) {
    const auto end = text.find_first_of(kSeparators, start);
    items.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    start = end == std::string_view::npos ? end : text.find_first_not_of(kSeparators, end);
  }
  return items;
}

bool is_setting(std::string_view name) {
  return std::any_of(kOptions.begin(), kOptions.end(),
                     [&](const Option& option) { return option.name == name; });
}

std::string env_name(std::string_view option) {
  std::string name(option);
  std::transform(name.begin(), name.end(), name.begin(), [](char c) {
    return c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  return name;
}

po::options_description describe_options() {
  po::options_description options(
      "Options. Each setting is also read from the environment (upper case, '-' -> '_', e.g. "
      "--pool-size -> POOL_SIZE) and from the --config file (same names as keys); a flag beats "
      "the environment, which beats the file, which beats the default");
  options.add_options()("help,h", "show this help and exit");
  options.add_options()("config", po::value<std::string>()->value_name("FILE"),
                        "read settings from a TOML file (env CONFIG)");
  options.add_options()("print-config", "print the effective settings as TOML and exit");
  for (const auto& option : kOptions) {
    if (is_list(option.name)) {
      options.add_options()(option.name, po::value<std::vector<std::string>>()->value_name("VALUE"),
                            option.help);
      continue;
    }
    auto* value = po::value<std::string>()->value_name(is_switch(option.name) ? "BOOL" : "VALUE");
    if (is_switch(option.name)) value->implicit_value("true");
    options.add_options()(option.name, value, option.help);
  }
  return options;
}

template <typename Number>
bool parse_number(const std::string& text, Number min, Number max, Number& out) {
  Number value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || text.front() == '-' || text.front() == '+' || error != std::errc{} ||
      end != text.data() + text.size() || value < min || value > max) {
    return false;
  }
  out = value;
  return true;
}

std::optional<bool> parse_bool(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return std::nullopt;
}

using FileSettings = std::map<std::string, std::string>;

// Reads a TOML file of `name = value` lines, names as the flags. Unknown names are errors, so
// a typo cannot silently leave a default in force.
std::optional<std::string> read_config_file(const std::string& path, FileSettings& settings) {
  try {
    const toml::value data = toml::parse(path);
    for (const auto& [key, value] : toml::get<toml::table>(data)) {
      if (!is_setting(key)) return path + ": unknown setting '" + key + "'";
      if (value.is_string()) {
        settings[key] = toml::get<std::string>(value);
      } else if (value.is_integer()) {
        settings[key] = std::to_string(toml::get<std::int64_t>(value));
      } else if (value.is_boolean()) {
        settings[key] = toml::get<bool>(value) ? "true" : "false";
      } else if (value.is_array() && is_list(key)) {
        // Kept as the environment gives a list: items separated by spaces.
        std::string items;
        for (const auto& item : toml::get<toml::array>(value)) {
          if (!item.is_string()) return path + ": '" + key + "' must be an array of strings";
          items += toml::get<std::string>(item) + " ";
        }
        settings[key] = items;
      } else {
        return path + ": '" + key + "' must be a string, an integer or a boolean" +
               (is_list(key) ? ", or an array of strings" : "");
      }
    }
  } catch (const std::exception& error) {
    return std::string("cannot read config file: ") + error.what();
  }
  return std::nullopt;
}

class Reader {
 public:
  Reader(const po::variables_map& flags, const EnvLookup& env, const FileSettings& file,
         std::string file_name)
      : flags_(flags), env_(env), file_(file), file_name_(std::move(file_name)) {}

  // The flag's value, else the environment's, else the file's; remembers where it came from
  // for messages.
  std::optional<std::string> get(const char* name) {
    if (flags_.count(name)) {
      source_ = std::string("--") + name;
      return flags_[name].as<std::string>();
    }
    source_ = env_name(name);
    if (auto value = env_ ? env_(source_) : std::nullopt) return value;
    if (const auto it = file_.find(name); it != file_.end()) {
      source_ = file_name_ + ": " + name;
      return it->second;
    }
    return std::nullopt;
  }

  template <typename Number>
  bool number(const char* name, Number min, Number max, Number& out, std::string& error) {
    const auto text = get(name);
    if (!text) return true;
    if (parse_number(*text, min, max, out)) return true;
    error = source_ + ": '" + *text + "' is not a whole number from " + std::to_string(min) +
            " to " + std::to_string(max);
    return false;
  }

  bool flag(const char* name, bool& out, std::string& error) {
    const auto text = get(name);
    if (!text) return true;
    if (const auto value = parse_bool(*text)) {
      out = *value;
      return true;
    }
    error = source_ + ": '" + *text + "' is not true or false";
    return false;
  }

  // A list: every value of the repeated flag, else the environment's or the file's items.
  std::optional<std::vector<std::string>> list(const char* name) {
    if (flags_.count(name)) {
      source_ = std::string("--") + name;
      return flags_[name].as<std::vector<std::string>>();
    }
    if (auto text = get(name)) return split_list(*text);
    return std::nullopt;
  }

  const std::string& source() const { return source_; }

 private:
  const po::variables_map& flags_;
  const EnvLookup& env_;
  const FileSettings& file_;
  std::string file_name_;
  std::string source_;
};

// Why `text` is not an http(s) URL a key source can fetch, if it is not.
std::optional<std::string> url_error(const std::string& text) {
  const auto parsed = auth::parse_url(text);
  if (const auto* why = std::get_if<std::string>(&parsed)) return *why;
  return std::nullopt;
}

// With tokens on, one key source: a file, a URL, or discovery from an http(s) issuer, which is
// what an issuer URL alone implies (the issuer is all an identity provider's documentation
// gives).
std::optional<std::string> settle_key_source(Config& config, bool discovery_given) {
  if (config.auth != "jwt") return std::nullopt;
  const int sources =
      int{!config.jwks_path.empty()} + int{!config.jwks_url.empty()} + int{config.oidc_discovery};
  if (sources > 1) return "give one key source: --jwks FILE, --jwks-url URL or --oidc-discovery";
  if (config.oidc_discovery) {
    if (config.jwt_issuer.empty()) {
      return "--oidc-discovery needs --jwt-issuer, the URL of the identity provider whose "
             "/.well-known/openid-configuration names its keys";
    }
    if (const auto why = url_error(config.jwt_issuer)) {
      return "--oidc-discovery: --jwt-issuer '" + config.jwt_issuer + "' is not an http(s) URL (" +
             *why + ")";
    }
  }
  if (sources == 0 && !discovery_given && !config.jwt_issuer.empty() &&
      !url_error(config.jwt_issuer)) {
    config.oidc_discovery = true;
  }
  if (!config.jwks_ca.empty() && config.jwks_url.empty() && !config.oidc_discovery) {
    return "--jwks-ca is for keys fetched over https (--jwks-url or OIDC discovery)";
  }
  return std::nullopt;
}

}  // namespace

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  ListenAddress address;
  if (!parse_number(std::string(port), std::uint16_t{0}, std::uint16_t{65535}, address.port)) {
    return std::nullopt;
  }
  if (host.empty()) {
    address.host = "0.0.0.0";
  } else if (host == "localhost") {
    address.host = "127.0.0.1";
  } else {
    boost::system::error_code ec;
    const auto ip = boost::asio::ip::make_address(std::string(host), ec);
    if (ec) return std::nullopt;
    address.host = ip.to_string();
  }
  return address;
}

ParseResult parse_config(const std::vector<std::string>& args, const EnvLookup& env) {
  ParseResult result;
  Config& config = result.config;
  config.threads = std::max(1u, std::thread::hardware_concurrency());
  const auto fail = [&](std::string message) {
    result.action = ParseResult::Action::fail;
    result.message = std::move(message);
    return result;
  };

  const po::options_description options = describe_options();
  po::variables_map flags;
  try {
    // No positional arguments: a stray word is an error, not silently ignored.
    const po::positional_options_description no_positionals;
    po::store(po::command_line_parser(args).options(options).positional(no_positionals).run(),
              flags);
  } catch (const po::error& error) {
    return fail(error.what());
  }
  if (flags.count("help")) {
    std::ostringstream help;
    help << "Usage: attempts-server [options]\n\n"
            "Serves PATCH /attempts/{id} and saves each attempt's answers in PostgreSQL.\n\n"
         << options;
    result.action = ParseResult::Action::show_help;
    result.message = help.str();
    return result;
  }

  FileSettings file;
  std::string file_name;
  if (flags.count("config")) {
    file_name = flags["config"].as<std::string>();
  } else if (auto from_env = env ? env("CONFIG") : std::nullopt) {
    file_name = *from_env;
  }
  if (!file_name.empty()) {
    if (auto error = read_config_file(file_name, file)) return fail(*error);
  }

  Reader reader(flags, env, file, file_name);
  std::string error;
  if (const auto listen = reader.get("listen")) {
    const auto address = parse_listen_address(*listen);
    if (!address) {
      return fail(reader.source() + ": '" + *listen +
                  "' is not host:port (an IP address or localhost, and a port 0-65535)");
    }
    config.listen = *address;
  }
  if (const auto url = reader.get("database-url")) {
    if (url->empty()) return fail(reader.source() + ": must not be empty");
    config.database_url = *url;
  }
  if (const auto level = reader.get("log-level")) {
    if (std::find(kLogLevels.begin(), kLogLevels.end(), *level) == kLogLevels.end()) {
      return fail(reader.source() + ": '" + *level +
                  "' is not one of trace, debug, info, warn, error, critical, off");
    }
    config.log_level = *level;
  }
  if (const auto auth = reader.get("auth")) {
    if (*auth != "jwt" && *auth != "none") {
      return fail(reader.source() + ": '" + *auth + "' is not jwt or none");
    }
    config.auth = *auth;
  }
  if (const auto jwks = reader.get("jwks")) config.jwks_path = *jwks;
  if (const auto url = reader.get("jwks-url"); url && !url->empty()) {  // "": none (the TOML)
    if (const auto why = url_error(*url))
      return fail(reader.source() + ": '" + *url + "': " + *why);
    config.jwks_url = *url;
  }
  if (const auto ca = reader.get("jwks-ca")) config.jwks_ca = *ca;
  if (const auto durability = reader.get("durability")) {
    if (*durability != "unlogged" && *durability != "async" && *durability != "sync") {
      return fail(reader.source() + ": '" + *durability + "' is not unlogged, async or sync");
    }
    config.durability = *durability;
  }
  if (const auto citus = reader.get("citus")) {
    if (*citus != "auto" && *citus != "on" && *citus != "off") {
      return fail(reader.source() + ": '" + *citus + "' is not auto, on or off");
    }
    config.citus = *citus;
  }
  if (const auto history = reader.get("history")) {
    if (*history != "on" && *history != "off") {
      return fail(reader.source() + ": '" + *history + "' is not on or off");
    }
    config.history = *history == "on";
  }
  if (const auto entry = reader.get("citus-entry")) {
    if (*entry != "nodes" && *entry != "coordinator") {
      return fail(reader.source() + ": '" + *entry + "' is not nodes or coordinator");
    }
    config.citus_entry = *entry;
  }
  if (const auto issuer = reader.get("jwt-issuer")) config.jwt_issuer = *issuer;
  if (const auto audience = reader.get("jwt-audience")) config.jwt_audience = *audience;
  if (const auto claim = reader.get("jwt-student-claim")) {
    // Logged and compared as given: printable ASCII, as every registered claim name is.
    const bool printable =
        std::all_of(claim->begin(), claim->end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
    if (claim->empty() || claim->size() > 128 || !printable) {
      return fail(reader.source() +
                  ": not a claim name (1 to 128 printable ASCII characters, no spaces)");
    }
    config.jwt_student_claim = *claim;
  }
  if (const auto format = reader.get("log-format")) {
    if (*format != "text" && *format != "json") {
      return fail(reader.source() + ": '" + *format + "' is not text or json");
    }
    config.log_format = *format;
  }
  if (const auto origins = reader.list("cors-origin")) {
    for (const auto& origin : *origins) {
      if (const auto why = http::origin_error(origin)) return fail(reader.source() + ": " + *why);
      if (std::find(config.cors_origins.begin(), config.cors_origins.end(), origin) ==
          config.cors_origins.end()) {
        config.cors_origins.push_back(origin);
      }
    }
  }
  config.pool_size = 0;  // not given: one per event loop, once --threads is known
  if (!reader.number("threads", 1u, 256u, config.threads, error) ||
      !reader.number("pool-size", std::size_t{1}, std::size_t{1024}, config.pool_size, error) ||
      !reader.number("body-limit", std::size_t{1}, std::size_t{64} << 20, config.body_limit,
                     error) ||
      !reader.number("max-batch", std::size_t{1}, std::size_t{10000}, config.max_batch, error) ||
      !reader.number("pipeline-depth", std::size_t{1}, std::size_t{64}, config.pipeline_depth,
                     error) ||
      !reader.number("queue-capacity", std::size_t{1}, std::size_t{1000000}, config.queue_capacity,
                     error) ||
      !reader.number("history-retention-days", 0u, 36500u, config.history_retention_days, error) ||
      !reader.number("queue-bytes", std::size_t{1024}, std::size_t{1} << 34, config.queue_bytes,
                     error) ||
      !reader.number("max-connections", std::size_t{1}, std::size_t{1000000},
                     config.max_connections, error) ||
      !reader.number("idle-timeout", 1u, 3600u, config.idle_timeout_seconds, error) ||
      !reader.number("request-timeout", 1u, 3600u, config.request_timeout_seconds, error) ||
      !reader.number("shutdown-timeout", 1u, 3600u, config.shutdown_timeout_seconds, error) ||
      !reader.number("jwt-leeway", 0u, 600u, config.jwt_leeway_seconds, error) ||
      !reader.number("token-cache-size", std::size_t{1}, std::size_t{10000000},
                     config.token_cache_size, error) ||
      !reader.number("jwks-refresh", 0u, 86400u, config.jwks_refresh_seconds, error) ||
      !reader.number("jwks-min-refresh", 1u, 3600u, config.jwks_min_refresh_seconds, error) ||
      !reader.flag("oidc-discovery", config.oidc_discovery, error) ||
      !reader.flag("access-log", config.access_log, error) ||
      !reader.flag("reuse-port", config.reuse_port, error)) {
    return fail(error);
  }
  if (const auto why = settle_key_source(config, reader.get("oidc-discovery").has_value())) {
    return fail(*why);
  }
  // A save whose answers are larger than a connection's whole queue could never be queued: it
  // would be refused as overloaded (503, retry) forever. Unless set, the queue grows to fit.
  if (!reader.get("queue-bytes") && config.queue_bytes < config.body_limit) {
    config.queue_bytes = config.body_limit;
  }
  if (config.queue_bytes < config.body_limit) {
    return fail("--queue-bytes " + std::to_string(config.queue_bytes) + " is below --body-limit " +
                std::to_string(config.body_limit) +
                ": a save of the largest body allowed could never be queued");
  }
  // Each event loop owns its connections, so every loop needs one: without --threads there
  // are no more loops than connections; without --pool-size, one connection per loop.
  const bool threads_given = reader.get("threads").has_value();
  if (config.pool_size == 0) {
    config.pool_size = config.threads;
  } else if (config.pool_size < config.threads) {
    if (threads_given) {
      return fail("--pool-size " + std::to_string(config.pool_size) + " is below --threads " +
                  std::to_string(config.threads) +
                  ": each event loop owns at least one PostgreSQL connection");
    }
    config.threads = static_cast<unsigned>(config.pool_size);
  }
  if (flags.count("print-config")) {
    result.action = ParseResult::Action::print_config;
    result.message = to_toml(config);
  }
  return result;
}

}  // namespace attempts::config
