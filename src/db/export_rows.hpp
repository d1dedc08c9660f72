#pragma once

#include <libpq-fe.h>

#include <array>
#include <string_view>

#include "attempts/domain/attempt_exports.hpp"

namespace attempts::db {

// PostgreSQL's text output of a timestamptz (DateStyle ISO, TimeZone UTC: "2026-12-07
// 04:16:09.467741+00") as RFC 3339, the form the rest of the API uses ("2026-12-07T04:16:09.
// 467741+00:00", what to_jsonb() prints), written into `out`. Anything else (infinity, a BC
// date) is copied as it is. `out` must hold the input's size + 3.
std::string_view rfc3339_from_iso(std::string_view iso, char* out);

// The rows of the export cursor (sql.hpp, kExportDeclare) as the encoder sees them. The
// timestamps are converted here rather than by to_jsonb() in SQL, which made PostgreSQL spend a
// third more CPU per exported row; the converted text lives in this reader until the next row.
class ExportRowReader {
 public:
  ExportedAttempt read(const PGresult& result, int row);

 private:
  // An ISO timestamp is at most 35 bytes ("-infinity" aside), 3 more once converted.
  std::array<std::array<char, 64>, 4> timestamps_{};
};

}  // namespace attempts::db
