#include "support/http_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

namespace attempts::integration {
namespace {

constexpr std::size_t kMaxResponseHeader = 64 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

bool has_header(const HeaderList& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& header) { return iequals(header.first, name); });
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

int milliseconds_until(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60'000));
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

std::ostream& operator<<(std::ostream& out, const HttpResponse& response) {
  constexpr std::size_t kShownBody = 512;
  out << response.version << ' ' << response.status << ' ' << response.reason << " {";
  for (const auto& [name, value] : response.headers) out << name << ": " << value << "; ";
  out << "} body(" << response.body.size() << ")=";
  out << response.body.substr(0, kShownBody);
  if (response.body.size() > kShownBody) out << "...";
  return out;
}

std::string serialize(const HttpRequest& request) {
  std::string out = request.method + " " + request.target + " HTTP/1.1\r\n";
  if (!has_header(request.headers, "host")) out += "Host: 127.0.0.1\r\n";
  for (const auto& [name, value] : request.headers) out += name + ": " + value + "\r\n";
  const bool body_method =
      request.method == "PATCH" || request.method == "POST" || request.method == "PUT";
  if (!has_header(request.headers, "content-length") &&
      !has_header(request.headers, "transfer-encoding") && (!request.body.empty() || body_method)) {
    out += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  out += "\r\n";
  out += request.body;
  return out;
}

HttpClient::HttpClient(std::uint16_t port, std::chrono::milliseconds timeout) : timeout_(timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw HttpError(errno_text("socket"));
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    if (errno != EINPROGRESS) {
      const auto message = errno_text("connect to 127.0.0.1:" + std::to_string(port));
      close();
      throw HttpError(message);
    }
    pollfd waiting{fd_, POLLOUT, 0};
    const int ready = ::poll(&waiting, 1, static_cast<int>(timeout.count()));
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
    if (ready <= 0 || error != 0) {
      close();
      throw HttpError("connect to 127.0.0.1:" + std::to_string(port) + ": " +
                      (ready <= 0 ? std::string("timed out") : std::strerror(error)));
    }
  }
}

HttpClient::~HttpClient() {
  close();
}

HttpClient::HttpClient(HttpClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      timeout_(other.timeout_),
      buffer_(std::move(other.buffer_)) {}

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    timeout_ = other.timeout_;
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

HttpResponse HttpClient::request(const HttpRequest& request) {
  send(request);
  return read_response(request.method == "HEAD");
}

void HttpClient::send(const HttpRequest& request) {
  send_raw(serialize(request));
}

void HttpClient::send_raw(std::string_view bytes) {
  if (fd_ < 0) throw HttpError("send on a closed client");
  const auto deadline = Clock::now() + timeout_;
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd waiting{fd_, POLLOUT, 0};
      if (::poll(&waiting, 1, milliseconds_until(deadline)) <= 0) {
        throw HttpError("send timed out with " + std::to_string(bytes.size()) + " bytes left");
      }
      continue;
    }
    throw HttpError(errno_text("send"));
  }
}

bool HttpClient::receive(Clock::time_point deadline) {
  if (fd_ < 0) throw HttpError("receive on a closed client");
  char chunk[16 * 1024];
  for (;;) {
    const ssize_t received = ::recv(fd_, chunk, sizeof chunk, 0);
    if (received > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(received));
      return true;
    }
    if (received == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw HttpError(errno_text("recv"));
    pollfd waiting{fd_, POLLIN, 0};
    const int ready = ::poll(&waiting, 1, milliseconds_until(deadline));
    if (ready < 0 && errno != EINTR) throw HttpError(errno_text("poll"));
    if (ready == 0) {
      throw HttpError("no complete response within " + std::to_string(timeout_.count()) + " ms (" +
                      std::to_string(buffer_.size()) + " bytes received so far)");
    }
  }
}

void HttpClient::need(std::size_t count, Clock::time_point deadline) {
  while (buffer_.size() < count) {
    if (!receive(deadline)) {
      throw ConnectionClosed("connection closed by the server in the middle of a response");
    }
  }
}

std::string HttpClient::read_line(Clock::time_point deadline) {
  std::size_t end;
  while ((end = buffer_.find("\r\n")) == std::string::npos) {
    if (buffer_.size() > kMaxResponseHeader) throw HttpError("response line too long");
    if (!receive(deadline)) {
      throw ConnectionClosed(buffer_.empty()
                                 ? "connection closed by the server before a response"
                                 : "connection closed by the server in the middle of a response");
    }
  }
  std::string line = buffer_.substr(0, end);
  buffer_.erase(0, end + 2);
  return line;
}

std::string HttpClient::read_chunked_body(Clock::time_point deadline) {
  std::string body;
  for (;;) {
    const std::string size_line = read_line(deadline);
    std::size_t size = 0;
    try {
      size = std::stoul(size_line.substr(0, size_line.find(';')), nullptr, 16);
    } catch (const std::exception&) {
      throw HttpError("malformed chunk size line: " + size_line);
    }
    if (size == 0) break;
    need(size + 2, deadline);
    body.append(buffer_, 0, size);
    buffer_.erase(0, size + 2);
  }
  while (!read_line(deadline).empty()) {  // trailer fields, up to the empty line
  }
  return body;
}

HttpResponse HttpClient::read_response(bool head_request) {
  const auto deadline = Clock::now() + timeout_;
  HttpResponse response;

  const std::string status_line = read_line(deadline);
  const auto first_space = status_line.find(' ');
  if (status_line.rfind("HTTP/", 0) != 0 || first_space == std::string::npos) {
    throw HttpError("malformed status line: " + status_line);
  }
  response.version = status_line.substr(0, first_space);
  try {
    response.status = std::stoi(status_line.substr(first_space + 1, 3));
  } catch (const std::exception&) {
    throw HttpError("malformed status line: " + status_line);
  }
  if (status_line.size() > first_space + 5) response.reason = status_line.substr(first_space + 5);

  for (std::string line = read_line(deadline); !line.empty(); line = read_line(deadline)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) throw HttpError("malformed header line: " + line);
    response.headers.emplace_back(line.substr(0, colon), trim(line.substr(colon + 1)));
  }

  const bool no_body = head_request || response.status / 100 == 1 || response.status == 204 ||
                       response.status == 304;
  if (no_body) return response;
  const auto transfer_encoding = response.header("transfer-encoding");
  if (transfer_encoding && iequals(trim(*transfer_encoding), "chunked")) {
    response.body = read_chunked_body(deadline);
  } else if (const auto length = response.header("content-length")) {
    std::size_t size = 0;
    try {
      size = std::stoul(*length);
    } catch (const std::exception&) {
      throw HttpError("malformed Content-Length: " + *length);
    }
    need(size, deadline);
    response.body = buffer_.substr(0, size);
    buffer_.erase(0, size);
  } else {  // delimited by the end of the connection
    while (receive(deadline)) {
    }
    response.body = std::move(buffer_);
    buffer_.clear();
  }
  return response;
}

std::vector<HttpResponse> HttpClient::read_responses(std::size_t count) {
  std::vector<HttpResponse> responses;
  responses.reserve(count);
  for (std::size_t i = 0; i < count; ++i) responses.push_back(read_response());
  return responses;
}

bool HttpClient::wait_for_close(std::chrono::milliseconds timeout) {
  if (fd_ < 0) throw HttpError("wait_for_close on a closed client");
  const auto deadline = Clock::now() + timeout;
  buffer_.clear();
  char discard[16 * 1024];
  for (;;) {
    const ssize_t received = ::recv(fd_, discard, sizeof discard, 0);
    if (received == 0) return true;  // EOF
    if (received > 0) continue;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw HttpError(errno_text("recv"));
    pollfd waiting{fd_, POLLIN, 0};
    const int ready = ::poll(&waiting, 1, milliseconds_until(deadline));
    if (ready < 0 && errno != EINTR) throw HttpError(errno_text("poll"));
    if (ready == 0) return false;
  }
}

HttpRequest get_request(std::string target) {
  return {"GET", std::move(target), {}, {}};
}

HttpRequest patch_request(std::string target, std::string body,
                          std::optional<std::string> content_type) {
  HttpRequest request{"PATCH", std::move(target), {}, std::move(body)};
  if (content_type) request.headers.emplace_back("Content-Type", *content_type);
  return request;
}

std::string attempt_target(std::int64_t id) {
  return "/attempts/" + std::to_string(id);
}

std::string answers_body(std::string_view answers_json) {
  return R"({"answers":)" + std::string(answers_json) + "}";
}

double metric(std::uint16_t port, const std::string& sample) {
  const auto page =
      HttpClient(port, std::chrono::milliseconds(2000)).request(get_request("/metrics")).body;
  std::istringstream lines(page);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
  }
  return -1;
}

HttpResponse when_status(std::uint16_t port, const HttpRequest& request, int status,
                         std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  HttpResponse response = HttpClient(port).request(request);
  while (response.status != status && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    response = HttpClient(port).request(request);
  }
  return response;
}

}  // namespace attempts::integration
