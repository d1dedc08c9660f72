#include "support/staff_exports.hpp"

#include <arpa/inet.h>
#include <csv.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>

namespace attempts::integration {

std::vector<std::string> staff_server_flags(const TestJwks& jwks, std::vector<std::string> more) {
  std::vector<std::string> flags = {
      "--auth",        "jwt",   "--jwks",       jwks.path(),
      "--staff-claim", "roles", "--staff-role", std::string(kStaffRole)};
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

std::string staff_token(const std::string& staff_id, const nlohmann::json& claims) {
  nlohmann::json all = {{"sub", staff_id}, {"roles", {kStaffRole}}};
  all.update(claims);
  return token_for(1, "test-hs256", all);
}

TestExam make_exam(const Database& db, std::int64_t attempts, std::int64_t first_student,
                   const std::string& staff_id, std::size_t answer_bytes) {
  pqxx::connection connection(db.url());
  pqxx::work tx(connection);
  TestExam exam;
  exam.count = attempts;
  exam.id = tx.exec1("INSERT INTO exams (title) VALUES ('export test') RETURNING id")[0]
                .as<std::int64_t>();
  // Options padded to about answer_bytes: question 1 holds as many option ids as it takes.
  const std::int64_t options =
      std::max<std::int64_t>(1, static_cast<std::int64_t>(answer_bytes) / 7);
  const auto range = tx.exec_params1(
      "WITH inserted AS ("
      " INSERT INTO attempts (exam_id, student_id, answers)"
      " SELECT $1, $2 + g - 1, jsonb_build_object('1', (SELECT jsonb_agg(100000 + o)"
      "   FROM generate_series(1, $4) o), '2', jsonb_build_array(g % 4))"
      "   FROM generate_series(1, $3) g ORDER BY g RETURNING id)"
      " SELECT min(id), count(*) FROM inserted",
      exam.id, first_student, attempts, options);
  exam.first_attempt = range[0].as<std::int64_t>();
  if (range[1].as<std::int64_t>() != attempts) throw std::runtime_error("make_exam: short insert");
  if (!staff_id.empty()) {
    tx.exec_params("INSERT INTO exam_staff (exam_id, staff_id) VALUES ($1, $2)", exam.id, staff_id);
  }
  tx.commit();
  return exam;
}

void add_staff(const Database& db, std::int64_t exam_id, const std::string& staff_id) {
  pqxx::connection connection(db.url());
  pqxx::work tx(connection);
  tx.exec_params(
      "INSERT INTO exam_staff (exam_id, staff_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", exam_id,
      staff_id);
  tx.commit();
}

RawResponse read_slowly(std::uint16_t port, const std::string& target, const std::string& token,
                        const SlowReading& how, const std::string& accept) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  // Before connect, so that the window the server sees is small from the start.
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &how.receive_buffer, sizeof how.receive_buffer);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  if (!accept.empty()) request += "Accept: " + accept + "\r\n";
  request += "\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    throw std::runtime_error("send failed");
  }
  const auto deadline = std::chrono::steady_clock::now() + how.deadline;
  std::string received;
  std::vector<char> buffer(how.read_size);
  while (std::chrono::steady_clock::now() < deadline &&
         (how.stop_after == 0 || received.size() < how.stop_after)) {
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    received.append(buffer.data(), static_cast<std::size_t>(n));
    if (how.pause.count() > 0) std::this_thread::sleep_for(how.pause);
  }
  ::close(fd);
  RawResponse response;
  const auto head_end = received.find("\r\n\r\n");
  if (head_end == std::string::npos) return response;
  response.head = received.substr(0, head_end + 4);
  response.body = received.substr(head_end + 4);
  if (response.head.size() > 12) response.status = std::stoi(response.head.substr(9, 3));
  response.complete = response.body.ends_with("\r\n0\r\n\r\n") || response.body == "0\r\n\r\n";
  return response;
}

std::string dechunk(std::string_view chunked) {
  std::string body;
  while (true) {
    const auto line_end = chunked.find("\r\n");
    if (line_end == std::string_view::npos) throw std::runtime_error("chunk size line missing");
    const std::size_t size = std::stoul(std::string(chunked.substr(0, line_end)), nullptr, 16);
    chunked.remove_prefix(line_end + 2);
    if (size == 0) return body;
    if (chunked.size() < size + 2 || chunked.substr(size, 2) != "\r\n") {
      throw std::runtime_error("chunk shorter than its size");
    }
    body.append(chunked.substr(0, size));
    chunked.remove_prefix(size + 2);
  }
}

namespace {

struct CsvRecords {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> current;
};

void on_field(void* data, std::size_t size, void* records) {
  static_cast<CsvRecords*>(records)->current.emplace_back(static_cast<const char*>(data), size);
}

void on_record(int, void* records) {
  auto& all = *static_cast<CsvRecords*>(records);
  all.records.push_back(std::move(all.current));
  all.current.clear();
}

}  // namespace

std::vector<std::vector<std::string>> parse_csv(std::string_view text) {
  csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
    throw std::runtime_error("csv_init failed");
  }
  CsvRecords records;
  const std::size_t parsed =
      csv_parse(&parser, text.data(), text.size(), on_field, on_record, &records);
  const bool failed =
      parsed != text.size() || csv_fini(&parser, on_field, on_record, &records) != 0;
  const std::string error = csv_strerror(csv_error(&parser));
  csv_free(&parser);
  if (failed) throw std::runtime_error("not RFC 4180 CSV: " + error);
  return records.records;
}

std::vector<nlohmann::json> parse_ndjson(std::string_view text) {
  std::vector<nlohmann::json> values;
  while (!text.empty()) {
    const auto end = text.find('\n');
    if (end == std::string_view::npos) throw std::runtime_error("NDJSON without its last newline");
    values.push_back(nlohmann::json::parse(text.substr(0, end)));
    text.remove_prefix(end + 1);
  }
  return values;
}

}  // namespace attempts::integration
