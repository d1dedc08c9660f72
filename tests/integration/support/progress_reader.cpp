#include "support/progress_reader.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <pqxx/pqxx>
#include <stdexcept>

namespace attempts::integration {

struct ProgressReader::Gunzip {
  z_stream stream{};
};

void ProgressReader::GunzipDeleter::operator()(Gunzip* gunzip) const {
  inflateEnd(&gunzip->stream);
  delete gunzip;
}

ProgressReader::ProgressReader(std::uint16_t port, std::int64_t exam,
                               const ProgressRequest& request) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  if (request.receive_buffer > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &request.receive_buffer,
                 sizeof request.receive_buffer);
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd_);
    throw std::runtime_error("connect failed");
  }
  std::string text =
      "GET /exams/" + std::to_string(exam) + "/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!request.token.empty()) text += "Authorization: Bearer " + request.token + "\r\n";
  if (request.last_event_id) text += "Last-Event-ID: " + *request.last_event_id + "\r\n";
  if (!request.accept.empty()) text += "Accept: " + request.accept + "\r\n";
  if (!request.accept_encoding.empty()) {
    text += "Accept-Encoding: " + request.accept_encoding + "\r\n";
  }
  text += "\r\n";
  if (::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
    ::close(fd_);
    throw std::runtime_error("send failed");
  }
}

ProgressReader::~ProgressReader() {
  close();
}

void ProgressReader::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool ProgressReader::receive(Clock::time_point deadline) {
  if (closed_ || fd_ < 0) return false;
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd poll_fd{fd_, POLLIN, 0};
  if (::poll(&poll_fd, 1, static_cast<int>(left)) <= 0) return false;
  char buffer[65536];
  const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
  if (got <= 0) {
    closed_ = true;
    return false;
  }
  raw_.append(buffer, static_cast<std::size_t>(got));
  return true;
}

bool ProgressReader::read_head(Clock::time_point deadline) {
  while (!head_read_) {
    const auto end = raw_.find("\r\n\r\n");
    if (end != std::string::npos) {
      const std::string head = raw_.substr(0, end);
      raw_.erase(0, end + 4);
      status_ = std::stoi(head.substr(9, 3));
      std::size_t line = head.find("\r\n");
      while (line != std::string::npos) {
        const std::size_t next = head.find("\r\n", line + 2);
        const std::string field =
            head.substr(line + 2, next == std::string::npos ? std::string::npos : next - line - 2);
        const auto colon = field.find(':');
        if (colon != std::string::npos) {
          std::string name = field.substr(0, colon);
          std::transform(name.begin(), name.end(), name.begin(), ::tolower);
          std::string value = field.substr(colon + 1);
          value.erase(0, value.find_first_not_of(' '));
          headers_[name] = value;
        }
        line = next;
      }
      head_read_ = true;
      if (header("content-encoding") == "gzip") {
        gunzip_.reset(new Gunzip);
        // 16 + 15: a gzip member, its header and trailer checked.
        if (inflateInit2(&gunzip_->stream, 16 + 15) != Z_OK) {
          throw std::runtime_error("inflateInit2 failed");
        }
      }
      return true;
    }
    if (!receive(deadline)) return false;
  }
  return true;
}

int ProgressReader::status(std::chrono::milliseconds timeout) {
  read_head(Clock::now() + timeout);
  return status_;
}

std::string ProgressReader::header(const std::string& name) const {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  const auto found = headers_.find(lower);
  return found == headers_.end() ? std::string() : found->second;
}

std::string ProgressReader::body(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!read_head(deadline)) return {};
  const std::size_t length =
      header("content-length").empty() ? 0 : std::stoul(header("content-length"));
  while (raw_.size() < length && receive(deadline)) {
  }
  return raw_.substr(0, length);
}

void ProgressReader::dechunk() {
  for (;;) {
    if (terminated_) return;
    const auto line_end = raw_.find("\r\n");
    if (line_end == std::string::npos) return;
    const std::size_t size = std::stoul(raw_.substr(0, line_end), nullptr, 16);
    if (size == 0) {
      if (raw_.size() < line_end + 4) return;
      terminated_ = true;
      raw_.erase(0, line_end + 4);
      return;
    }
    if (raw_.size() < line_end + 2 + size + 2) return;
    append_body(raw_.data() + line_end + 2, size);
    raw_.erase(0, line_end + 2 + size + 2);
  }
}

void ProgressReader::append_body(const char* data, std::size_t size) {
  if (gunzip_ == nullptr) {
    text_.append(data, size);
    return;
  }
  if (gzip_complete_) throw std::runtime_error("bytes after the gzip trailer");
  z_stream& stream = gunzip_->stream;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  stream.avail_in = static_cast<uInt>(size);
  char out[65536];
  do {
    stream.next_out = reinterpret_cast<Bytef*>(out);
    stream.avail_out = sizeof out;
    const int result = inflate(&stream, Z_SYNC_FLUSH);
    if (result != Z_OK && result != Z_STREAM_END && result != Z_BUF_ERROR) {
      throw std::runtime_error(std::string("the gzip body does not inflate: ") +
                               (stream.msg != nullptr ? stream.msg : "?"));
    }
    text_.append(out, sizeof out - stream.avail_out);
    if (result == Z_STREAM_END) {
      gzip_complete_ = true;
      if (stream.avail_in != 0) throw std::runtime_error("bytes after the gzip trailer");
      break;
    }
  } while (stream.avail_out == 0 || stream.avail_in > 0);
}

std::optional<SseEvent> ProgressReader::next(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!read_head(deadline) || status_ != 200) return std::nullopt;
  for (;;) {
    dechunk();
    // One event: lines up to a blank line. Comments (heartbeats) are skipped.
    while (true) {
      const auto end = text_.find("\n\n");
      if (end == std::string::npos) break;
      const std::string block = text_.substr(0, end + 1);
      text_.erase(0, end + 2);
      SseEvent event;
      bool has_data = false;
      std::size_t start = 0;
      while (start < block.size()) {
        const auto newline = block.find('\n', start);
        const std::string line = block.substr(start, newline - start);
        start = newline + 1;
        if (line.starts_with(":")) continue;
        const auto colon = line.find(": ");
        const std::string field = line.substr(0, colon);
        const std::string value = colon == std::string::npos ? "" : line.substr(colon + 2);
        if (field == "id") event.id = value;
        if (field == "event") event.type = value;
        if (field == "retry") event.retry = value;
        if (field == "data") {
          if (has_data) throw std::runtime_error("an event with more than one data line");
          event.data = nlohmann::json::parse(value);
          has_data = true;
        }
      }
      if (has_data) return event;
      ++heartbeats_;
    }
    if (terminated_ || !receive(deadline)) return std::nullopt;
  }
}

std::map<std::int64_t, nlohmann::json> progress_rows_of(const std::string& database_url,
                                                        std::int64_t exam) {
  pqxx::connection connection(database_url);
  pqxx::work tx(connection);
  const auto time = [](const char* column) {
    return std::string("to_char(") + column +
           " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
  };
  const auto rows = tx.exec_params(
      "SELECT id, student_id, answered, " + time("started_at") + ", " + time("updated_at") + ", " +
          time("submitted_at") + ", " + time("deadline") +
          ", (SELECT count(*) FROM jsonb_object_keys(answers)) FROM attempts WHERE exam_id = $1",
      exam);
  std::map<std::int64_t, nlohmann::json> table;
  for (const auto& row : rows) {
    const auto text = [&](int column) -> nlohmann::json {
      if (row[column].is_null()) return nullptr;
      return row[column].as<std::string>();
    };
    nlohmann::json attempt{{"id", row[0].as<std::int64_t>()},
                           {"student_id", row[1].as<std::int64_t>()},
                           {"answered", row[2].as<std::int64_t>()},
                           {"started_at", text(3)},
                           {"updated_at", text(4)},
                           {"submitted_at", text(5)},
                           {"deadline", text(6)}};
    // The column the saves set must say what the stored answers hold.
    if (row[2].as<std::int64_t>() != row[7].as<std::int64_t>() && !row[4].is_null()) {
      attempt["answered_mismatch"] = row[7].as<std::int64_t>();
    }
    table[row[0].as<std::int64_t>()] = attempt;
  }
  return table;
}

void apply_event(std::map<std::int64_t, nlohmann::json>& table, const SseEvent& event) {
  if (event.type == "snapshot") table.clear();
  for (const auto& attempt : event.data["attempts"]) {
    table[attempt["id"].get<std::int64_t>()] = attempt;
  }
}

}  // namespace attempts::integration
