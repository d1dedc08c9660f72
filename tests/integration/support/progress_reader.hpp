#pragma once

// A client of GET /exams/{id}/progress for the tests: a raw socket, the response head, then the
// chunked body decoded as it arrives and split into Server-Sent Events.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace attempts::integration {

struct SseEvent {
  std::string id;
  std::string type;  // snapshot, changes
  std::optional<std::string> retry;
  nlohmann::json data;
};

struct ProgressRequest {
  std::string token;  // empty: none
  std::optional<std::string> last_event_id;
  std::string accept;           // empty: none
  std::string accept_encoding;  // empty: none; a gzip body is decompressed as it arrives
  int receive_buffer = 0;       // 0: the system's
};

class ProgressReader {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects and sends the request; the head is read by the first call that needs it.
  ProgressReader(std::uint16_t port, std::int64_t exam, const ProgressRequest& request);
  ~ProgressReader();
  ProgressReader(const ProgressReader&) = delete;
  ProgressReader& operator=(const ProgressReader&) = delete;

  // The status (reads the head, waiting up to `timeout`); 0 if none came.
  int status(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string header(const std::string& name) const;
  // A refusal's body (non-200): read to the connection's close.
  std::string body(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // The next event, or nullopt when none came by `timeout` or the stream ended.
  std::optional<SseEvent> next(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Whether the body ended with the chunked terminator (and, gzipped, with the gzip trailer,
  // its CRC-32 and length checked).
  bool ended_cleanly() const { return terminated_ && (gunzip_ == nullptr || gzip_complete_); }
  bool closed() const { return closed_; }
  std::size_t heartbeats() const { return heartbeats_; }
  void close();

 private:
  bool receive(Clock::time_point deadline);
  bool read_head(Clock::time_point deadline);
  // Moves whole chunks from raw_ to text_ (decompressed when gzipped); stops at the terminator.
  void dechunk();
  void append_body(const char* data, std::size_t size);

  struct Gunzip;
  struct GunzipDeleter {
    void operator()(Gunzip* gunzip) const;
  };

  int fd_ = -1;
  std::string raw_;   // bytes received, not yet decoded
  std::string text_;  // decoded body, not yet split into events
  int status_ = 0;
  std::map<std::string, std::string> headers_;
  bool head_read_ = false;
  bool terminated_ = false;
  bool closed_ = false;
  std::size_t heartbeats_ = 0;
  std::unique_ptr<Gunzip, GunzipDeleter> gunzip_;  // set when the response is gzipped
  bool gzip_complete_ = false;
};

// An exam's rows as the stream prints them (times RFC 3339 with microseconds and Z), by id.
std::map<std::int64_t, nlohmann::json> progress_rows_of(const std::string& database_url,
                                                        std::int64_t exam);

// Applies an event to a consumer's table (snapshot: replace; changes: upsert).
void apply_event(std::map<std::int64_t, nlohmann::json>& table, const SseEvent& event);

}  // namespace attempts::integration
