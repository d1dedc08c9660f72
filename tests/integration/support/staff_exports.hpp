#pragma once

// What the tests of staff access and exports share: staff tokens, exams made for a test with
// their attempts and staff, a slow raw reader of a streamed response, and a real CSV parser
// (Debian's libcsv) to read an export back.

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "support/postgres.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {

// The role the tests' servers give staff: --staff-claim roles --staff-role teacher.
inline constexpr std::string_view kStaffRole = "teacher";

// The flags of a server that verifies tokens with `jwks` and knows staff tokens.
std::vector<std::string> staff_server_flags(const TestJwks& jwks,
                                            std::vector<std::string> more = {});

// A staff member's token: sub `staff_id`, roles [teacher]; `claims` adds or overrides claims.
std::string staff_token(const std::string& staff_id,
                        const nlohmann::json& claims = nlohmann::json::object());

// An exam made for a test: `attempts` attempts of students first_student, first_student + 1, ...
// (ids first_attempt..first_attempt + attempts - 1, inserted in id order), each with answers of
// about `answer_bytes` bytes, and `staff_id` listed in exam_staff when not empty.
struct TestExam {
  std::int64_t id = 0;
  std::int64_t first_attempt = 0;
  std::int64_t count = 0;
};
TestExam make_exam(const Database& db, std::int64_t attempts, std::int64_t first_student,
                   const std::string& staff_id, std::size_t answer_bytes = 0);
void add_staff(const Database& db, std::int64_t exam_id, const std::string& staff_id);

// A response read from a raw socket as slowly as asked: `Connection: close`, a receive buffer of
// `receive_buffer` bytes, `read_size` bytes per read and `pause` after each, until the server
// closes or `deadline`; or only `stop_after` bytes, and then the socket is closed (a client that
// leaves mid-export). The head and the body as received (still chunked).
struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;       // the bytes after the head, chunk framing included
  bool complete = false;  // the body ended with the last chunk (0 CRLF CRLF)
};
struct SlowReading {
  int receive_buffer = 4096;
  std::size_t read_size = 4096;
  std::chrono::microseconds pause{0};
  std::size_t stop_after = 0;  // 0: read everything
  std::chrono::milliseconds deadline{30000};
};
RawResponse read_slowly(std::uint16_t port, const std::string& target, const std::string& token,
                        const SlowReading& how, const std::string& accept = "");

// A chunked body without its framing; throws std::runtime_error if the framing is malformed.
std::string dechunk(std::string_view chunked);

// RFC 4180 text parsed by libcsv (strict mode): its records, each a list of fields.
std::vector<std::vector<std::string>> parse_csv(std::string_view text);

// NDJSON: one JSON value per line.
std::vector<nlohmann::json> parse_ndjson(std::string_view text);

}  // namespace attempts::integration
