#include "attempts/http/cors.hpp"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <stdexcept>

#include "attempts/http/responses.hpp"

namespace attempts::http {
namespace {

constexpr std::string_view kVaryOrigin = "Vary: Origin\r\n";
constexpr std::size_t kMaxPort = 65535;

bool is_lower_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

bool is_ipv6_char(char c) {
  return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' || c == '.';
}

// RFC 9110 5.6.2: a method is a token.
bool is_token(std::string_view text) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kSymbols.find(c) != std::string_view::npos;
  });
}

std::string_view trim_spaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

std::optional<std::string> origin_error(std::string_view text) {
  // New strings, appended to: GCC 12 warns of an overlapping copy (-Wrestrict, a false
  // positive) where "literal" + std::string inserts in place.
  const auto why = [&](std::string_view reason) {
    std::string message = "'";
    message.append(text).append("' is not an origin as browsers send it: ").append(reason);
    return message;
  };
  if (text == "*")
    return std::string("'*' is not accepted: name each origin, scheme://host[:port]");
  if (text == "null") {
    return std::string("the opaque origin 'null' (sandboxed frames, file: pages) is never allowed");
  }
  const bool https = text.starts_with("https://");
  if (!https && !text.starts_with("http://")) {
    return why("the scheme must be http:// or https://, in lower case");
  }
  const std::string_view scheme = text.substr(0, text.find("://") + 3);
  const std::string_view authority = text.substr(scheme.size());
  if (authority.find_first_of("/?#") != std::string_view::npos) {
    return why("an origin has no path, query or fragment (not even a trailing '/')");
  }
  if (authority.find('@') != std::string_view::npos) {
    return why("an origin has no user name or password");
  }
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return why("an IPv6 address needs its closing ']'");
    host = authority.substr(0, close + 1);
    const std::string_view inside = host.substr(1, host.size() - 2);
    if (inside.empty() || !std::all_of(inside.begin(), inside.end(), is_ipv6_char)) {
      return why("the IPv6 address must be hexadecimal digits and ':' in lower case");
    }
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return why("only ':' and a port may follow the IPv6 address");
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (std::any_of(host.begin(), host.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
      return why("the host must be in lower case, as browsers send it");
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), is_lower_host_char) ||
        host.front() == '.' || host.back() == '.') {
      return why("the host must be a domain name or an IP address");
    }
  }
  if (port) {
    const bool digits =
        !port->empty() && port->size() <= 5 && port->front() != '0' &&
        std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoul(std::string(*port)) > kMaxPort) {
      return why("the port must be 1 to 65535, without leading zeros");
    }
    if (*port == (https ? "443" : "80")) {
      return why("browsers leave the default port out: write " + std::string(scheme) +
                 std::string(host));
    }
  }
  return std::nullopt;
}

std::string_view find_origin_field(std::string_view raw_header) noexcept {
  constexpr std::string_view kName = "origin:";
  // A request line never starts with "origin:" (a method has no ':'), so every line is looked
  // at; the header ends at the first empty line.
  for (std::size_t start = 0; start < raw_header.size();) {
    const auto newline = raw_header.find('\n', start);
    if (newline == std::string_view::npos) return {};  // cut off: the value may be incomplete
    std::string_view line = raw_header.substr(start, newline - start);
    start = newline + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return {};
    if (line.size() >= kName.size() && boost::beast::iequals(line.substr(0, kName.size()), kName)) {
      return trim_spaces(line.substr(kName.size()));
    }
  }
  return {};
}

CorsPolicy::CorsPolicy(const std::vector<std::string>& origins) {
  for (const auto& origin : origins) {
    if (const auto error = origin_error(origin)) throw std::invalid_argument(*error);
    if (find(origin) != nullptr) continue;
    std::string allow = "Access-Control-Allow-Origin: ";  // appended: see origin_error
    allow.append(origin).append("\r\n");
    std::string fields = allow;
    fields.append("Access-Control-Expose-Headers: ").append(kExposeHeaders).append("\r\n");
    fields.append(kVaryOrigin);
    std::string fields_no_expose = allow;
    fields_no_expose.append(kVaryOrigin);
    allowed_.push_back({origin, std::move(fields), std::move(fields_no_expose)});
  }
}

const CorsPolicy::Allowed* CorsPolicy::find(std::string_view origin) const noexcept {
  for (const auto& allowed : allowed_) {
    if (allowed.origin == origin) return &allowed;
  }
  return nullptr;
}

bool CorsPolicy::allows(std::string_view origin) const noexcept {
  return find(origin) != nullptr;
}

std::vector<std::string> CorsPolicy::origins() const {
  std::vector<std::string> origins;
  for (const auto& allowed : allowed_) origins.push_back(allowed.origin);
  return origins;
}

std::string_view CorsPolicy::response_fields(std::string_view origin, unsigned count,
                                             bool expose) const noexcept {
  if (allowed_.empty()) return {};
  const Allowed* allowed = count == 1 ? find(origin) : nullptr;
  if (allowed == nullptr) return kVaryOrigin;
  return expose ? allowed->fields : allowed->fields_no_expose;
}

bool CorsPolicy::needs_expose(const Response& response) noexcept {
  // One pass over the few fields a response has (a 204 has none), by their enum where Beast
  // knows the name: cheaper than a lookup per name.
  for (const auto& field : response) {
    switch (field.name()) {
      case beast_http::field::location:
      case beast_http::field::retry_after:
      case beast_http::field::www_authenticate:
        return true;
      case beast_http::field::unknown:
        if (boost::beast::iequals(field.name_string(), "Idempotent-Replayed")) return true;
        break;
      default:
        break;
    }
  }
  return false;
}

bool CorsPolicy::is_preflight(const Request& request) noexcept {
  return request.method == Verb::options && request.origin_count > 0 &&
         request.access_control_request_method_count > 0;
}

Response CorsPolicy::preflight_response(const Request& request, std::string_view allow) const {
  if (request.origin_count != 1) {
    return error_response(Status::bad_request, "a CORS preflight carries one Origin field");
  }
  if (request.access_control_request_method_count != 1 ||
      !is_token(request.access_control_request_method)) {
    return error_response(Status::bad_request,
                          "a CORS preflight carries one Access-Control-Request-Method field "
                          "naming a method");
  }
  if (find(request.origin) == nullptr) {
    return error_response(Status::forbidden,
                          "this origin is not allowed to call the API from a browser (CORS); "
                          "the server names the allowed ones with --cors-origin");
  }
  // Every method of the path and every field the API reads: one preflight per URL then
  // covers all of a page's requests to it (the browser checks the method and fields it wants).
  Response response{Status::no_content, 11};
  response.set(beast_http::field::access_control_allow_methods, allow);
  response.set(beast_http::field::access_control_allow_headers, kAllowHeaders);
  response.set(beast_http::field::access_control_max_age, std::to_string(kMaxAge.count()));
  return response;
}

}  // namespace attempts::http
