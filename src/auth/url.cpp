#include "attempts/auth/url.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <optional>

namespace attempts::auth {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
  return out;
}

bool has_space_or_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte == 0x7f;
  });
}

// RFC 3986 reg-name characters that a DNS name or an IPv4 literal can hold.
bool is_host_name(std::string_view host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
  });
}

}  // namespace

std::variant<Url, std::string> parse_url(std::string_view text) {
  if (text.empty()) return std::string("an empty URL");
  if (has_space_or_control(text)) return std::string("spaces or control characters in the URL");
  const std::size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return std::string("not an http:// or https:// URL");
  Url url;
  const std::string scheme = lower(text.substr(0, scheme_end));
  if (scheme == "https") {
    url.https = true;
    url.port = 443;
  } else if (scheme != "http") {
    return "the scheme '" + scheme + "' is not http or https";
  }
  std::string_view rest = text.substr(scheme_end + 3);
  if (rest.find('#') != std::string_view::npos) return std::string("a fragment (#) in the URL");
  const std::size_t authority_end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return std::string("user information (user@ or user:password@) in the URL");
  }
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::string("an IPv6 host without its ']'");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return std::string("text after the IPv6 host");
    if (!after.empty()) port = after.substr(1);
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(std::string(host), ec);
    if (ec) return std::string("not an IPv6 address between [ and ]");
  } else {
    const std::size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (!is_host_name(lower(host))) return std::string("no host, or a host that is not a name");
  }
  url.host = lower(host);
  if (port) {
    unsigned value = 0;
    const auto [end, error] = std::from_chars(port->data(), port->data() + port->size(), value);
    if (port->empty() || error != std::errc() || end != port->data() + port->size() || value == 0 ||
        value > 65535) {
      return std::string("the port is not a number from 1 to 65535");
    }
    url.port = static_cast<std::uint16_t>(value);
  }
  if (authority_end != std::string_view::npos) {
    // A new string, appended to: GCC 12 warns of an overlapping copy (-Wrestrict, a false
    // positive) where std::string::insert or assign replaces characters in place.
    const std::string_view path = rest.substr(authority_end);
    std::string target;
    if (path.front() == '?') target.push_back('/');
    url.target = std::move(target.append(path));
  }
  return url;
}

std::string to_string(const Url& url) {
  // Appended piece by piece, for GCC 12's -Wrestrict (see parse_url).
  std::string text = url.https ? "https://" : "http://";
  const bool v6 = url.host.find(':') != std::string::npos;
  if (v6) text += '[';
  text += url.host;
  if (v6) text += ']';
  if (url.port != (url.https ? 443 : 80)) text.append(":").append(std::to_string(url.port));
  return text.append(url.target);
}

std::variant<Url, std::string> resolve_location(const Url& base, std::string_view location) {
  if (location.size() >= 2 && location[0] == '/' && location[1] == '/') {
    return std::string("a scheme-relative Location");
  }
  if (!location.empty() && location.front() == '/') {
    if (has_space_or_control(location) || location.find('#') != std::string_view::npos) {
      return std::string("spaces, control characters or a fragment in the Location");
    }
    Url url = base;
    url.target = std::string(location);
    return url;
  }
  if (location.find("://") == std::string_view::npos) {
    return "a relative Location ('" + std::string(location.substr(0, 100)) + "')";
  }
  return parse_url(location);
}

}  // namespace attempts::auth
