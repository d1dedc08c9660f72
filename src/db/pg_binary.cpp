#include "attempts/db/pg_binary.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "sql.hpp"

namespace attempts::db {
namespace {

void append_be32(std::string& out, std::uint32_t value) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                         static_cast<char>(value >> 8), static_cast<char>(value)};
  out.append(bytes, 4);
}

void append_be64(std::string& out, std::uint64_t value) {
  append_be32(out, static_cast<std::uint32_t>(value >> 32));
  append_be32(out, static_cast<std::uint32_t>(value));
}

std::uint32_t length32(std::size_t size) {
  if (size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw std::length_error("parameter larger than PostgreSQL's 1 GB field limit");
  }
  return static_cast<std::uint32_t>(size);
}

// ndim, has-nulls flag, element type, then the one dimension's length and lower bound (1).
void append_array_header(std::string& out, std::size_t count, bool has_nulls, unsigned oid) {
  append_be32(out, 1);
  append_be32(out, has_nulls ? 1 : 0);
  append_be32(out, oid);
  append_be32(out, length32(count));
  append_be32(out, 1);
}

}  // namespace

void append_int8(std::string& out, std::int64_t value) {
  append_be64(out, static_cast<std::uint64_t>(value));
}

void append_jsonb(std::string& out, std::string_view json) {
  out.push_back('\1');
  out.append(json);
}

void append_int8_array(std::string& out, std::span<const std::int64_t> values) {
  out.reserve(out.size() + 20 + values.size() * 12);
  append_array_header(out, values.size(), false, sql::kInt8Oid);
  for (const std::int64_t value : values) {
    append_be32(out, 8);
    append_int8(out, value);
  }
}

void append_int8_array(std::string& out, std::span<const std::optional<std::int64_t>> values) {
  const bool has_nulls = std::any_of(values.begin(), values.end(),
                                     [](const auto& value) { return !value.has_value(); });
  out.reserve(out.size() + 20 + values.size() * 12);
  append_array_header(out, values.size(), has_nulls, sql::kInt8Oid);
  for (const auto& value : values) {
    if (!value) {
      append_be32(out, 0xFFFFFFFFu);  // -1: NULL
      continue;
    }
    append_be32(out, 8);
    append_int8(out, *value);
  }
}

void append_int4(std::string& out, std::int32_t value) {
  append_be32(out, static_cast<std::uint32_t>(value));
}

void append_int4_array(std::string& out, std::span<const std::int32_t> values) {
  out.reserve(out.size() + 20 + values.size() * 8);
  append_array_header(out, values.size(), false, sql::kInt4Oid);
  for (const std::int32_t value : values) {
    append_be32(out, 4);
    append_int4(out, value);
  }
}

void append_jsonb_array(std::string& out, std::span<const std::string_view> documents) {
  std::size_t size = 20;
  for (const auto document : documents) size += 5 + document.size();
  out.reserve(out.size() + size);
  append_array_header(out, documents.size(), false, sql::kJsonbOid);
  for (const auto document : documents) {
    append_be32(out, length32(document.size() + 1));
    append_jsonb(out, document);
  }
}

}  // namespace attempts::db
