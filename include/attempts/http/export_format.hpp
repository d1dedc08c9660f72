#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "attempts/domain/attempt_exports.hpp"

namespace attempts::http {

// The representations GET /exams/{id}/attempts streams.
enum class ExportFormat {
  ndjson,  // application/x-ndjson: one JSON object per line, the default
  csv,     // text/csv (RFC 4180): a header line, then one line per attempt, CRLF line ends
};

// The query of GET /exams/{id}/attempts:
//   submitted=true|false    only submitted attempts, or only those not submitted yet
//   updated_since=<time>    only attempts saved at or after this RFC 3339 instant (a `+` offset
//                           written %2B, as for the history's `at`)
// A parameter given twice, an unknown one or a bad value is refused: the message of a 400.
std::variant<ExportFilter, std::string> parse_export_query(std::string_view target);

// The format an Accept field value asks for (RFC 9110 12.5.1: media ranges with q weights, the
// most specific range deciding each type's weight): NDJSON when the field is absent, when
// both are equally acceptable, or for `*/*`; CSV when `text/csv` (or `text/*`) weighs more.
// nullopt when neither is acceptable (406).
std::optional<ExportFormat> negotiate_export_format(std::string_view accept);

// Whether an Accept field value takes text/event-stream (absent, */*, text/* or the type itself
// with a weight above 0): the progress stream's only representation.
bool accepts_event_stream(std::string_view accept);

// Whether an Accept-Encoding field value takes gzip (RFC 9110 12.5.3): `gzip` or `x-gzip` with a
// weight above 0, or else `*` with a weight above 0. An absent field means no coding is wanted
// here: a stream is compressed only when its client says it can read it.
bool accepts_gzip(std::string_view accept_encoding);

std::string_view content_type(ExportFormat format);

// The encoder of a format: stateless, shared by every export, safe on any thread.
const ExportEncoder& export_encoder(ExportFormat format);

// `value` as one RFC 4180 field: quoted (inner quotes doubled) when it holds a comma, a quote,
// CR or LF, or when `always_quote`; as it is otherwise.
void append_csv_field(std::string& out, std::string_view value, bool always_quote = false);

}  // namespace attempts::http
