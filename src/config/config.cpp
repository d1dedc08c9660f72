#include "attempts/config/config.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <limits>
#include <sstream>
#include <thread>

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
    Option{"threads", "I/O threads (default: hardware concurrency)"},
    Option{"pool-size", "PostgreSQL connections, one worker thread each (default 2)"},
    Option{"body-limit", "largest request body in bytes (default 65536)"},
    Option{"log-level", "trace, debug, info, warn, error, critical or off (default info)"},
    Option{"max-batch", "most queued writes sent as one statement (default 256)"},
    Option{"queue-capacity", "operations queued per connection before 503 (default 4096)"},
    Option{"max-connections",
           "open client connections before new ones are refused (default 10000)"},
    Option{"idle-timeout",
           "seconds to read a request or write a response; keep-alive idle limit "
           "(default 15)"},
    Option{"shutdown-timeout", "seconds in-flight requests get after SIGTERM (default 10)"},
};

std::string env_name(std::string_view option) {
  std::string name(option);
  std::transform(name.begin(), name.end(), name.begin(), [](char c) {
    return c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  return name;
}

po::options_description describe_options() {
  po::options_description options(
      "Options (each also read from the environment variable named "
      "in upper case with '_', e.g. --pool-size -> POOL_SIZE)");
  options.add_options()("help,h", "show this help and exit");
  for (const auto& option : kOptions) {
    options.add_options()(option.name, po::value<std::string>()->value_name("VALUE"), option.help);
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

class Reader {
 public:
  Reader(const po::variables_map& flags, const EnvLookup& env) : flags_(flags), env_(env) {}

  // The flag's value, else the environment's; records where it came from for messages.
  std::optional<std::string> get(const char* name) {
    if (flags_.count(name)) {
      source_ = std::string("--") + name;
      return flags_[name].as<std::string>();
    }
    source_ = env_name(name);
    return env_ ? env_(source_) : std::nullopt;
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

  const std::string& source() const { return source_; }

 private:
  const po::variables_map& flags_;
  const EnvLookup& env_;
  std::string source_;
};

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

std::string redact_database_url(std::string_view url) {
  std::string out(url);
  const bool is_uri = out.rfind("postgresql://", 0) == 0 || out.rfind("postgres://", 0) == 0;
  if (is_uri) {
    // scheme://user:password@host — libpq's userinfo ends at the first '@' before any '/'.
    const std::size_t authority = out.find("://") + 3;
    const std::size_t at = out.find_first_of("@/", authority);
    if (at != std::string::npos && out[at] == '@') {
      const std::size_t colon = out.find(':', authority);
      if (colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // password=... in a URI query (ends at '&') or in key=value form (ends at white space, or is
  // single-quoted with backslash escapes).
  for (std::size_t pos = out.find("password"); pos != std::string::npos;
       pos = out.find("password", pos + 1)) {
    std::size_t value = pos + 8;
    while (value < out.size() && out[value] == ' ') ++value;
    if (value >= out.size() || out[value] != '=') continue;
    ++value;
    while (value < out.size() && out[value] == ' ') ++value;
    std::size_t end = value;
    if (!is_uri && end < out.size() && out[end] == '\'') {
      ++end;
      while (end < out.size() && out[end] != '\'') end += out[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, out.size());
    } else {
      end = out.find_first_of(is_uri ? "&" : " \t\n", value);
      if (end == std::string::npos) end = out.size();
    }
    out.replace(value, end - value, "***");
  }
  return out;
}

ParseResult parse_config(const std::vector<std::string>& args, const EnvLookup& env) {
  ParseResult result;
  Config& config = result.config;
  config.threads = std::max(1u, std::thread::hardware_concurrency());

  const po::options_description options = describe_options();
  po::variables_map flags;
  try {
    // No positional arguments: a stray word is an error, not silently ignored.
    const po::positional_options_description no_positionals;
    po::store(po::command_line_parser(args).options(options).positional(no_positionals).run(),
              flags);
  } catch (const po::error& error) {
    result.action = ParseResult::Action::fail;
    result.message = error.what();
    return result;
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

  Reader reader(flags, env);
  std::string error;
  const auto fail = [&](std::string message) {
    result.action = ParseResult::Action::fail;
    result.message = std::move(message);
    return result;
  };

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
  if (!reader.number("threads", 1u, 256u, config.threads, error) ||
      !reader.number("pool-size", std::size_t{1}, std::size_t{256}, config.pool_size, error) ||
      !reader.number("body-limit", std::size_t{1}, std::size_t{64} << 20, config.body_limit,
                     error) ||
      !reader.number("max-batch", std::size_t{1}, std::size_t{10000}, config.max_batch, error) ||
      !reader.number("queue-capacity", std::size_t{1}, std::size_t{1000000}, config.queue_capacity,
                     error) ||
      !reader.number("max-connections", std::size_t{1}, std::size_t{1000000},
                     config.max_connections, error) ||
      !reader.number("idle-timeout", 1u, 3600u, config.idle_timeout_seconds, error) ||
      !reader.number("shutdown-timeout", 1u, 3600u, config.shutdown_timeout_seconds, error)) {
    return fail(error);
  }
  return result;
}

std::string describe(const Config& config) {
  const bool v6 = config.listen.host.find(':') != std::string::npos;
  std::ostringstream line;
  line << "listen=" << (v6 ? "[" : "") << config.listen.host << (v6 ? "]" : "") << ':'
       << config.listen.port << " database-url=" << redact_database_url(config.database_url)
       << " threads=" << config.threads << " pool-size=" << config.pool_size
       << " body-limit=" << config.body_limit << " log-level=" << config.log_level
       << " max-batch=" << config.max_batch << " queue-capacity=" << config.queue_capacity
       << " max-connections=" << config.max_connections
       << " idle-timeout=" << config.idle_timeout_seconds
       << "s shutdown-timeout=" << config.shutdown_timeout_seconds << 's';
  return line.str();
}

}  // namespace attempts::config
