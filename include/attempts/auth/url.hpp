#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace attempts::auth {

// An http or https URL as the key source fetches it: where to connect and what to ask for.
struct Url {
  bool https = false;
  std::string host;  // a name, an IPv4 literal, or an IPv6 literal without brackets
  std::uint16_t port = 80;
  std::string target = "/";  // path and query, never empty

  friend bool operator==(const Url&, const Url&) = default;
};

// `http://host[:port][/path][?query]` or the same with https. Refused: other schemes, user
// info (credentials do not belong in a configured URL), a fragment, an empty host or port,
// spaces and control characters. Scheme and host are compared case-insensitively, so they are
// kept in lower case; the path is kept as given. Returns why a text is not such a URL.
std::variant<Url, std::string> parse_url(std::string_view text);

// The URL as text, with the port only when it is not the scheme's default.
std::string to_string(const Url& url);

// Where a redirect's Location leads from `base`: an absolute http(s) URL, or a reference
// starting with "/" (same scheme, host and port). Other relative forms are refused: identity
// providers redirect with absolute locations, and guessing is how redirects go astray.
std::variant<Url, std::string> resolve_location(const Url& base, std::string_view location);

}  // namespace attempts::auth
