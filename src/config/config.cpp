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
#include "option_table.hpp"

namespace attempts::config {
namespace {

namespace po = boost::program_options;

constexpr std::array kLogLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};

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

constexpr const char* kNotAClaimName =
    ": not a claim name (1 to 128 printable ASCII characters, no spaces)";

// Logged and compared as given: printable ASCII, as every registered claim name is.
bool is_claim_name(const std::string& claim) {
  return !claim.empty() && claim.size() <= 128 &&
         std::all_of(claim.begin(), claim.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

// Which tokens are a staff member's: --staff-claim and --staff-role come together.
std::optional<std::string> read_staff_settings(Reader& reader, Config& config) {
  for (auto [name, into] :
       {std::pair{"staff-claim", &config.staff_claim}, std::pair{"staff-role", &config.staff_role},
        std::pair{"staff-id-claim", &config.staff_id_claim}}) {
    if (const auto value = reader.get(name); value && !value->empty()) {
      if (!is_claim_name(*value)) {
        return reader.source() + (std::string_view(name) == "staff-role"
                                      ? ": not a role (1 to 128 printable ASCII characters, no "
                                        "spaces)"
                                      : kNotAClaimName);
      }
      *into = *value;
    }
  }
  if (config.staff_claim.empty() != config.staff_role.empty()) {
    return "--staff-claim and --staff-role go together: the claim that holds roles, and the "
           "role a staff member's token has in it";
  }
  std::string error;
  if (!reader.number("staff-connections", std::size_t{1}, std::size_t{64}, config.staff_connections,
                     error) ||
      !reader.number("max-exports", std::size_t{1}, std::size_t{64}, config.max_exports, error) ||
      !reader.number("export-rate", std::size_t{0}, std::size_t{100000000}, config.export_rate,
                     error) ||
      !reader.number("staff-statement-timeout", 1u, 3600u, config.staff_statement_timeout_seconds,
                     error) ||
      !reader.number("progress-interval", 100u, 60000u, config.progress_interval_ms, error) ||
      !reader.number("progress-quiet", 1u, 86400u, config.progress_quiet_seconds, error) ||
      !reader.number("progress-heartbeat", 1u, 3600u, config.progress_heartbeat_seconds, error) ||
      !reader.number("max-progress-streams", std::size_t{1}, std::size_t{1000000},
                     config.max_progress_streams, error) ||
      !reader.number("progress-queue-bytes", std::size_t{65536}, std::size_t{1} << 30,
                     config.progress_queue_bytes, error)) {
    return error;
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
    if (!is_claim_name(*claim)) return fail(reader.source() + kNotAClaimName);
    config.jwt_student_claim = *claim;
  }
  if (auto why = read_staff_settings(reader, config)) return fail(*why);
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
