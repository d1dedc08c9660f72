#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace attempts::db {

// Parameters in PostgreSQL's binary wire format (what int8send, jsonb_send and array_send
// produce), so the server parses no text for them: an array of 256 ids arrives as 256 fixed-size
// integers, and a jsonb array needs no quoting or escaping of its elements. Each function
// appends one parameter's bytes to `out`.

void append_int8(std::string& out, std::int64_t value);
// jsonb's binary form: a version byte (1), then the JSON text.
void append_jsonb(std::string& out, std::string_view json);
// One-dimensional int8[]; nullopt elements are NULL.
void append_int8_array(std::string& out, std::span<const std::int64_t> values);
void append_int8_array(std::string& out, std::span<const std::optional<std::int64_t>> values);
void append_int4(std::string& out, std::int32_t value);
// One-dimensional int4[].
void append_int4_array(std::string& out, std::span<const std::int32_t> values);
// One-dimensional jsonb[] of the given documents.
void append_jsonb_array(std::string& out, std::span<const std::string_view> documents);

}  // namespace attempts::db
