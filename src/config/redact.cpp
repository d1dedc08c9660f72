// Hides the password of a libpq connection string, in both of libpq's forms, for logs and
// --print-config.
#include <string>
#include <string_view>

#include "attempts/config/config.hpp"

namespace attempts::config {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A URI component as libpq reads it: %XX decoded.
std::string percent_decoded(std::string_view text) {
  std::string decoded;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
        hex_value(text[i + 2]) >= 0) {
      decoded.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      decoded.push_back(text[i]);
    }
  }
  return decoded;
}

// libpq's URI form: postgresql://[user[:password]@][hosts][/dbname][?key=value&...]. The
// userinfo ends at the first '@' before any '/'; keys and values of the query are
// percent-encoded (so `pass%77ord` is the password too).
std::string redact_uri(std::string_view uri) {
  std::string out(uri);
  std::size_t hosts = out.find("://") + 3;
  if (const std::size_t at = out.find_first_of("@/", hosts);
      at != std::string::npos && out[at] == '@') {
    const std::size_t colon = out.find(':', hosts);
    if (colon < at) out.replace(colon + 1, at - colon - 1, "***");
    hosts = out.find('@', hosts) + 1;
  }
  const std::size_t query = out.find('?', hosts);
  if (query == std::string::npos) return out;
  std::string redacted = out.substr(0, query + 1);
  std::size_t begin = query + 1;
  while (begin <= out.size()) {
    std::size_t end = out.find('&', begin);
    if (end == std::string::npos) end = out.size();
    const std::string_view parameter = std::string_view(out).substr(begin, end - begin);
    const std::size_t equals = parameter.find('=');
    if (equals != std::string_view::npos &&
        percent_decoded(parameter.substr(0, equals)) == "password") {
      redacted.append(parameter.substr(0, equals + 1)).append("***");
    } else {
      redacted.append(parameter);
    }
    if (end == out.size()) break;
    redacted.push_back('&');
    begin = end + 1;
  }
  return redacted;
}

// libpq's key=value form: pairs separated by white space; a key, optional white space, '=',
// optional white space, then a value, either single-quoted (ending at the first unescaped
// quote) or bare (ending at the first unescaped white space); in both, a backslash escapes the
// next character ("password=s3cr\ et" is the password "s3cr et"). What does not parse is
// hidden whole: libpq would refuse it, but the text may still hold a password.
std::string redact_key_value(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  const auto copy_spaces = [&] {
    while (i < text.size() && is_space(text[i])) out.push_back(text[i++]);
  };
  while (true) {
    copy_spaces();
    if (i >= text.size()) break;
    const std::size_t key_start = i;
    while (i < text.size() && text[i] != '=' && !is_space(text[i])) ++i;
    const std::string_view key = text.substr(key_start, i - key_start);
    out.append(key);
    copy_spaces();
    if (i >= text.size() || text[i] != '=') {
      if (i < text.size()) out.append("***");
      break;
    }
    out.push_back('=');
    ++i;
    copy_spaces();
    const std::size_t value_start = i;
    const bool quoted = i < text.size() && text[i] == '\'';
    if (quoted) ++i;
    while (i < text.size() && (quoted ? text[i] != '\'' : !is_space(text[i]))) {
      i += text[i] == '\\' && i + 1 < text.size() ? 2 : 1;
    }
    if (quoted && i < text.size()) ++i;  // the closing quote
    out.append(key == "password" ? std::string_view("***")
                                 : text.substr(value_start, i - value_start));
  }
  return out;
}

}  // namespace

std::string redact_database_url(std::string_view url) {
  const bool is_uri = url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  return is_uri ? redact_uri(url) : redact_key_value(url);
}

}  // namespace attempts::config
