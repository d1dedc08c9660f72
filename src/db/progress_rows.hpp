#pragma once

#include <libpq-fe.h>

#include <optional>
#include <string_view>

#include "attempts/domain/exam_progress.hpp"

namespace attempts::db {

// PostgreSQL's text output of a timestamptz (DateStyle ISO, TimeZone UTC: "2026-12-07
// 04:16:09.467741+00", the fraction trimmed or absent) as microseconds since the Unix epoch;
// nullopt for anything else (infinity, a BC date, another zone).
std::optional<UnixMicros> micros_from_iso(std::string_view iso);

// The rows of sql::kProgressChanged: the database's now() in the first column of every row, and
// an attempt in the others (NULL in a lone row when none changed). False when a time does not
// parse (then `result` is unavailable with a problem).
bool read_progress_rows(const PGresult& rows, ProgressReadResult& result);

}  // namespace attempts::db
