#pragma once

// A small blocking HTTP/1.1 client over a real loopback TCP socket, written from scratch (not
// with Beast) so that the server is checked against an independent reading of the protocol.
// Sends well-formed requests or raw bytes; every read has a deadline, so a test never hangs.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace attempts::integration {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  HeaderList headers;
  std::string body;
};

struct HttpResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  HeaderList headers;
  std::string body;

  // The first header with this name (case-insensitive), if any.
  std::optional<std::string> header(std::string_view name) const;
};

std::ostream& operator<<(std::ostream& out, const HttpResponse& response);

// The bytes of a request. Adds `Host: 127.0.0.1` unless given, and `Content-Length` unless a
// Content-Length or Transfer-Encoding header is given or the request has neither body nor a
// body-carrying method.
std::string serialize(const HttpRequest& request);

// Anything that keeps a response from being read: timeout, reset, malformed response.
class HttpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The server closed the connection (EOF) before a complete response.
class ConnectionClosed : public HttpError {
 public:
  using HttpError::HttpError;
};

class HttpClient {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{10000};

  // Connects to 127.0.0.1:port; throws HttpError if that fails or takes longer than `timeout`.
  explicit HttpClient(std::uint16_t port, std::chrono::milliseconds timeout = kDefaultTimeout);
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&& other) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // send() then read_response().
  HttpResponse request(const HttpRequest& request);
  void send(const HttpRequest& request);
  // Exactly these bytes, in one write call where the kernel allows.
  void send_raw(std::string_view bytes);

  // The next response on the connection. Interim (1xx) responses are returned like any other,
  // so a test sees `100 Continue`. Pass head_request for the answer to a HEAD (no body).
  HttpResponse read_response(bool head_request = false);
  std::vector<HttpResponse> read_responses(std::size_t count);

  // Waits for the server to close the connection (EOF or reset), discarding anything it sends
  // first. False if it is still open after `timeout`.
  bool wait_for_close(std::chrono::milliseconds timeout);

  // Bytes received but not yet parsed into a response.
  std::size_t buffered() const { return buffer_.size(); }

  void close();

 private:
  using Clock = std::chrono::steady_clock;

  // Receives more bytes into buffer_; false on EOF. Throws HttpError on timeout or error.
  bool receive(Clock::time_point deadline);
  // Reads until buffer_ holds at least `count` bytes.
  void need(std::size_t count, Clock::time_point deadline);
  // Takes the next CRLF-terminated line from the stream, without the CRLF.
  std::string read_line(Clock::time_point deadline);
  std::string read_chunked_body(Clock::time_point deadline);

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
};

// Requests the tests send most.
HttpRequest get_request(std::string target);
HttpRequest patch_request(std::string target, std::string body,
                          std::optional<std::string> content_type = "application/json");
std::string attempt_target(std::int64_t id);
// `{"answers":<answers_json>}`
std::string answers_body(std::string_view answers_json);

// The value of one sample of the server's /metrics (its name with any labels, e.g.
// `attempts_db_writes_retried_total`); -1 if the page has no such sample.
double metric(std::uint16_t port, const std::string& sample);

// The response to `request` (each on a new connection, every 100 ms) once it has `status`,
// within `within`; the last one otherwise.
HttpResponse when_status(std::uint16_t port, const HttpRequest& request, int status,
                         std::chrono::milliseconds within);

}  // namespace attempts::integration
