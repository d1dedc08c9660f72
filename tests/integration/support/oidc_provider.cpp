#include "support/oidc_provider.hpp"

#include <cctype>
#include <csignal>
#include <stdexcept>
#include <thread>

#include "attempts/auth/base64url.hpp"
#include "support/http_client.hpp"

namespace attempts::integration {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// What Basic authentication sends (RFC 7617): standard base64 with padding.
std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t block = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      block = (block << 8) | (j < n ? static_cast<unsigned char>(bytes[i + j]) : 0u);
    }
    for (std::size_t j = 0; j < 4; ++j) {
      out += j <= n ? kAlphabet[(block >> (18 - 6 * j)) & 63] : '=';
    }
  }
  return out;
}

CommandResult run_openssl(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  SpawnOptions options;
  options.argv = std::move(args);
  options.working_directory = dir;
  auto result = run_command(options, std::chrono::seconds(60));
  if (result.status != ExitStatus::exit_code(0)) {
    throw std::runtime_error("openssl failed: " + result.output);
  }
  return result;
}

// `value` as a query parameter's value.
std::string percent_encoded(const std::string& value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (const unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      encoded += static_cast<char>(c);
    } else {
      encoded += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return encoded;
}

// Node's fetch, for a provider on https: the test CA is added to node's trust store.
constexpr const char* kNodeFetch = R"(
const [method, url, body, basic] = process.argv.slice(1);
const headers = {};
if (basic) headers.authorization = 'Basic ' + basic;
if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
const response = await fetch(url, { method, headers, body: body || undefined });
process.stdout.write(response.status + '\n' + await response.text());
)";

}  // namespace

TestCertificates::TestCertificates() : dir_("attempts-test-ca") {
  const auto& dir = dir_.path();
  run_openssl(dir, {"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                    "ca.pem", "-days", "2", "-subj", "/CN=attempts test CA", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"});
  run_openssl(dir, {"req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                    "server.csr", "-subj", "/CN=127.0.0.1"});
  {
    std::FILE* ext = std::fopen(dir_.file("server.ext").c_str(), "w");
    if (ext == nullptr) throw std::runtime_error("cannot write server.ext");
    std::fputs(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        ext);
    std::fclose(ext);
  }
  run_openssl(dir,
              {"x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
               "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"});
}

OidcProvider::OidcProvider(ProviderSettings settings)
    : settings_(std::move(settings)), dir_("attempts-oidc") {
  SpawnOptions options;
  options.argv = {"node", ATTEMPTS_OIDC_PROVIDER_SCRIPT, "--port", std::to_string(settings_.port)};
  if (settings_.tls != nullptr) {
    options.argv.insert(options.argv.end(), {"--tls-cert", settings_.tls->server_pem(), "--tls-key",
                                             settings_.tls->server_key()});
  }
  if (!settings_.keys_file.empty()) {
    options.argv.insert(options.argv.end(), {"--keys-file", settings_.keys_file});
  }
  options.output_path = dir_.file("provider.log");
  options.kill_with_parent = true;
  pid_ = spawn_process(options);
  // The one JSON line it prints once listening (node starts in well under a second; a loaded
  // CI machine gets more).
  const auto deadline = Clock::now() + std::chrono::seconds(90);
  while (Clock::now() < deadline) {
    const std::string text = log();
    if (const auto at = text.find("{\"issuer\":"); at != std::string::npos) {
      const auto end = text.find('\n', at);
      if (end != std::string::npos) {
        const auto ready = nlohmann::json::parse(text.substr(at, end - at));
        issuer_ = ready["issuer"].get<std::string>();
        port_ = ready["port"].get<std::uint16_t>();
        return;
      }
    }
    if (auto status = poll_exit(pid_)) {
      pid_ = -1;
      throw std::runtime_error("the OIDC provider exited (" + status->describe() +
                               "); is `npm ci` done (scripts/install-node-tools.sh)?\n" + log());
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  stop();
  throw std::runtime_error("the OIDC provider did not say it was listening:\n" + log());
}

OidcProvider::~OidcProvider() {
  stop();
}

void OidcProvider::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!wait_for_exit(pid_, std::chrono::seconds(10))) {
    ::kill(pid_, SIGKILL);
    wait_for_exit(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
}

std::string OidcProvider::log() const {
  return read_file(dir_.file("provider.log"));
}

nlohmann::json OidcProvider::call(const std::string& method, const std::string& target,
                                  const std::string& form_body, const std::string& basic_auth) {
  int status = 0;
  std::string body;
  if (settings_.tls == nullptr) {
    HttpRequest request;
    request.method = method;
    request.target = target;
    request.body = form_body;
    if (!form_body.empty()) {
      request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    }
    if (!basic_auth.empty()) request.headers.emplace_back("Authorization", "Basic " + basic_auth);
    HttpClient client(port_);
    const auto response = client.request(request);
    status = response.status;
    body = response.body;
  } else {
    SpawnOptions options;
    options.argv = {"node", "--input-type=module", "-e",      kNodeFetch,
                    method, issuer_ + target,      form_body, basic_auth};
    options.env.emplace_back("NODE_EXTRA_CA_CERTS", settings_.tls->ca_pem());
    const auto result = run_command(options, std::chrono::seconds(30));
    const auto newline = result.output.find('\n');
    if (result.status != ExitStatus::exit_code(0) || newline == std::string::npos) {
      throw std::runtime_error("fetch " + target + " failed: " + result.output);
    }
    status = std::stoi(result.output.substr(0, newline));
    body = result.output.substr(newline + 1);
  }
  if (status != 200) {
    throw std::runtime_error(method + " " + target + ": HTTP " + std::to_string(status) + ": " +
                             body);
  }
  return nlohmann::json::parse(body);
}

std::string OidcProvider::token_for(int student) {
  const std::string client = "student-" + std::to_string(student);
  const auto answer = call("POST", "/token", "grant_type=client_credentials&scope=attempts",
                           base64(client + ":secret-" + std::to_string(student)));
  return answer.at("access_token").get<std::string>();
}

std::string OidcProvider::rotate(bool only_new) {
  return call("POST", only_new ? "/test/rotate?only=1" : "/test/rotate")["kid"].get<std::string>();
}

std::string OidcProvider::rotate_same_kid() {
  return call("POST", "/test/rotate?same_kid=1")["kid"].get<std::string>();
}

void OidcProvider::set_jwks_mode(const std::string& mode) {
  call("POST", "/test/jwks-mode?mode=" + mode);
}

void OidcProvider::serve_jwks(const nlohmann::json& jwks) {
  call("POST", "/test/jwks-override", jwks.dump());
}

void OidcProvider::set_discovery_jwks_uri(const std::string& url) {
  call("POST", "/test/discovery-jwks-uri?value=" + percent_encoded(url));
}

void OidcProvider::set_cache_control(const std::string& value) {
  call("POST", "/test/cache-control?value=" + percent_encoded(value));
}

nlohmann::json OidcProvider::stats() {
  return call("GET", "/test/stats");
}

namespace {

nlohmann::json header_of(const std::string& token) {
  const auto dot = token.find('.');
  const auto header = auth::base64url_decode(std::string_view(token).substr(0, dot));
  if (dot == std::string::npos || !header) throw std::invalid_argument("not a JWS: " + token);
  return nlohmann::json::parse(*header);
}

}  // namespace

std::string with_kid(const std::string& token, const std::string& kid) {
  auto header = header_of(token);
  header["kid"] = kid;
  return auth::base64url_encode(header.dump()) + token.substr(token.find('.'));
}

std::string kid_of(const std::string& token) {
  return header_of(token).value("kid", "");
}

}  // namespace attempts::integration
