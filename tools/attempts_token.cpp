// attempts-token: development keys and tokens for the attempts service (tests, load scripts,
// local runs). Not for production keys: these are plain files on disk.
//
//   attempts-token keygen DIR [--force]
//   attempts-token sign --keys DIR --kid KID --sub ID [options]
//   attempts-token sign-range --keys DIR --kid KID --first ID --last ID [options]
//
// Options of sign and sign-range: --ttl SECONDS (default 3600), --iss ISSUER, --aud AUDIENCE,
// --no-kid, --nbf-in SECONDS, --iat-in SECONDS (default 0), --claims JSON (merged over the
// others: a staff member's roles), --now UNIX_SECONDS (default: the
// clock); --test-keys instead of --keys signs with the published test keys (kids test-*) of the
// unit tests and fuzz seeds. See docs/auth.md.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/domain/attempt_id.hpp"
#include "token/insecure_test_keys.hpp"
#include "token/token_tools.hpp"

namespace {

namespace tools = attempts::auth::tools;
using json = nlohmann::json;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr std::string_view kUsage =
    "usage:\n"
    "  attempts-token keygen DIR [--force]\n"
    "      writes DIR/jwks.json (the server's JWKS: one key per algorithm, kids dev-hs256,\n"
    "      dev-rs256, dev-es256, dev-eddsa) and DIR/private-keys.json, both mode 0600\n"
    "  attempts-token sign --keys DIR --kid KID --sub ID [options]\n"
    "      prints one token for student ID\n"
    "  attempts-token sign-range --keys DIR --kid KID --first ID --last ID [options]\n"
    "      prints one token per line, for students FIRST to LAST\n"
    "options of sign and sign-range:\n"
    "  --ttl SECONDS     exp = now + SECONDS (default 3600)\n"
    "  --iss ISSUER      iss claim\n"
    "  --claims JSON     claims merged over the others; a staff member's token:\n"
    "                    --claims '{\"sub\":\"teacher-1\",\"roles\":[\"teacher\"]}'\n"
    "  --aud AUDIENCE    aud claim\n"
    "  --no-kid          leave kid out of the header (the server then picks the key by alg)\n"
    "  --nbf-in SECONDS  nbf = now + SECONDS (may be negative)\n"
    "  --iat-in SECONDS  iat = now + SECONDS (default 0)\n"
    "  --now SECONDS     the Unix time to use instead of the clock\n"
    "  --test-keys       instead of --keys: the published test keys (kids test-hs256,\n"
    "                    test-rs256, test-es256, test-eddsa) of the unit tests and fuzz seeds\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::int64_t parse_integer(std::string_view option, std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
    throw UsageError(std::string(option) + " needs an integer, not '" + std::string(text) + "'");
  }
  return value;
}

std::int64_t parse_student_id(std::string_view option, std::string_view text) {
  const auto id = attempts::parse_positive_decimal(text);
  if (!id) {
    throw UsageError(std::string(option) + " needs a positive integer, not '" + std::string(text) +
                     "'");
  }
  return *id;
}

// `--name value` options and `--flag` flags, each at most once.
class Options {
 public:
  Options(const std::vector<std::string_view>& args, const std::vector<std::string_view>& valued,
          const std::vector<std::string_view>& flags) {
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string_view arg = args[i];
      const bool is_valued = std::find(valued.begin(), valued.end(), arg) != valued.end();
      const bool is_flag = std::find(flags.begin(), flags.end(), arg) != flags.end();
      if (!is_valued && !is_flag) throw UsageError("unknown argument '" + std::string(arg) + "'");
      if (values_.count(arg) != 0) throw UsageError(std::string(arg) + " given twice");
      if (is_flag) {
        values_[arg] = "";
        continue;
      }
      if (i + 1 == args.size()) throw UsageError(std::string(arg) + " needs a value");
      values_[arg] = args[++i];
    }
  }

  bool has(std::string_view name) const { return values_.count(name) != 0; }
  std::optional<std::string_view> get(std::string_view name) const {
    const auto found = values_.find(name);
    return found == values_.end() ? std::nullopt : std::optional(found->second);
  }
  std::string_view required(std::string_view name) const {
    const auto value = get(name);
    if (!value) throw UsageError(std::string(name) + " is required");
    return *value;
  }

 private:
  std::map<std::string_view, std::string_view, std::less<>> values_;
};

// Writes a file readable by its owner only: jwks.json holds the HS256 secret too.
void write_private_file(const std::string& path, const std::string& text, bool force) {
  if (force && unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw std::runtime_error("cannot replace " + path + ": " + std::strerror(errno));
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno) +
                             (errno == EEXIST ? " (--force replaces it)" : ""));
  }
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      close(fd);
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(error));
    }
    written += static_cast<std::size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  }
}

int keygen(const std::vector<std::string_view>& args) {
  if (args.empty() || args[0].starts_with("--")) throw UsageError("keygen needs a directory");
  const std::string dir(args[0]);
  const Options options({args.begin() + 1, args.end()}, {}, {"--force"});
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create " + dir + ": " + std::strerror(errno));
  }
  const tools::DevKeys keys = tools::generate_dev_keys();
  write_private_file(dir + "/jwks.json", keys.public_jwks.dump(2) + "\n", options.has("--force"));
  write_private_file(dir + "/private-keys.json", keys.private_jwks.dump(2) + "\n",
                     options.has("--force"));
  std::cerr << "attempts-token: wrote " << dir << "/jwks.json (give it to the server) and " << dir
            << "/private-keys.json (for sign)\n";
  return EXIT_SUCCESS;
}

// now + SECONDS for an option, refused when it does not fit in 64 bits.
std::int64_t after(std::int64_t now, std::int64_t seconds, std::string_view option) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(now, seconds, &sum)) {
    throw UsageError(std::string(option) + " is out of range");
  }
  return sum;
}

// The claims every token of one invocation shares; sub is added per student.
struct Claims {
  std::int64_t issued_at = 0;
  std::int64_t expires_at = 0;
  std::optional<std::int64_t> not_before;
  std::optional<std::string> issuer;
  std::optional<std::string> audience;
  json extra = json::object();  // --claims: merged over the others

  json for_student(std::int64_t student_id) const {
    json claims = {{"sub", std::to_string(student_id)}, {"iat", issued_at}, {"exp", expires_at}};
    if (not_before) claims["nbf"] = *not_before;
    if (issuer) claims["iss"] = *issuer;
    if (audience) claims["aud"] = *audience;
    claims.update(extra);
    return claims;
  }
};

// sign and sign-range: the same options, one student or a range.
int sign(const std::vector<std::string_view>& args, bool range) {
  std::vector<std::string_view> valued = {"--keys",   "--kid",    "--ttl", "--iss",   "--aud",
                                          "--nbf-in", "--iat-in", "--now", "--claims"};
  if (range) {
    valued.insert(valued.end(), {"--first", "--last"});
  } else {
    valued.push_back("--sub");
  }
  const Options options(args, valued, {"--no-kid", "--test-keys"});
  if (options.has("--keys") == options.has("--test-keys")) {
    throw UsageError("give either --keys DIR or --test-keys");
  }
  const std::string keys_path =
      options.has("--test-keys") ? std::string("the published test keys")
                                 : std::string(options.required("--keys")) + "/private-keys.json";
  const std::string_view kid = options.required("--kid");
  std::int64_t first = 0;
  std::int64_t last = 0;
  if (range) {
    first = parse_student_id("--first", options.required("--first"));
    last = parse_student_id("--last", options.required("--last"));
    if (last < first) throw UsageError("--last is smaller than --first");
  } else {
    first = last = parse_student_id("--sub", options.required("--sub"));
  }

  std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  if (const auto fixed = options.get("--now")) now = parse_integer("--now", *fixed);
  const auto seconds = [&](std::string_view option, std::int64_t fallback) {
    const auto value = options.get(option);
    return value ? parse_integer(option, *value) : fallback;
  };
  Claims claims;
  claims.expires_at = after(now, seconds("--ttl", 3600), "--ttl");
  claims.issued_at = after(now, seconds("--iat-in", 0), "--iat-in");
  if (options.has("--nbf-in")) claims.not_before = after(now, seconds("--nbf-in", 0), "--nbf-in");
  if (const auto iss = options.get("--iss")) claims.issuer = std::string(*iss);
  if (const auto aud = options.get("--aud")) claims.audience = std::string(*aud);
  if (const auto extra = options.get("--claims")) {
    claims.extra = json::parse(*extra, nullptr, /*allow_exceptions=*/false);
    if (!claims.extra.is_object()) throw UsageError("--claims must be a JSON object");
  }

  const tools::SigningKeys keys =
      options.has("--test-keys")
          ? tools::signing_keys_from_jwks(json::parse(tools::insecure_test_private_jwks()))
          : tools::load_signing_keys(keys_path);
  const auto key = keys.find(kid);
  if (key == keys.end()) {
    throw std::runtime_error(keys_path + " has no key with kid '" + std::string(kid) + "'");
  }
  const json header = options.has("--no-kid") ? json{{"kid", nullptr}} : json::object();
  std::string out;
  // Counting up to `last` inclusive without ever computing last + 1 (it may be INT64_MAX).
  for (std::int64_t student = first;; ++student) {
    out += tools::sign_token(key->second, header, claims.for_student(student));
    out += '\n';
    if (out.size() >= (1 << 16) || student == last) {
      if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) {
        throw std::runtime_error(std::string("cannot write tokens: ") + std::strerror(errno));
      }
      out.clear();
    }
    if (student == last) break;
  }
  if (std::fflush(stdout) != 0) {
    throw std::runtime_error(std::string("cannot write tokens: ") + std::strerror(errno));
  }
  return EXIT_SUCCESS;
}

}  // namespace

int main(int argc, char* argv[]) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
      std::cout << kUsage;
      return args.empty() ? kExitUsage : EXIT_SUCCESS;
    }
    const std::vector<std::string_view> rest(args.begin() + 1, args.end());
    if (args[0] == "keygen") return keygen(rest);
    if (args[0] == "sign") return sign(rest, /*range=*/false);
    if (args[0] == "sign-range") return sign(rest, /*range=*/true);
    throw UsageError("unknown command '" + std::string(args[0]) + "'");
  } catch (const UsageError& error) {
    std::cerr << "attempts-token: " << error.what() << "\n" << kUsage;
    return kExitUsage;
  } catch (const std::exception& error) {
    std::cerr << "attempts-token: " << error.what() << "\n";
    return kExitFailure;
  }
}
