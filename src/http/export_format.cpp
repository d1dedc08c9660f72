#include "attempts/http/export_format.hpp"

#include <algorithm>
#include <charconv>
#include <vector>

#include "attempts/http/query_string.hpp"

namespace attempts::http {
namespace {

constexpr std::string_view kNdjson = "application/x-ndjson";
constexpr std::string_view kCsv = "text/csv; charset=utf-8; header=present";
constexpr std::string_view kCsvHeader =
    "id,student_id,answers,revision,started_at,updated_at,submitted_at,deadline,saves\r\n";

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

void append_integer(std::string& out, std::int64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

// A JSON string; the store's timestamps never need an escape, but nothing relies on it.
void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(kHex[(c >> 4) & 0xf]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void append_json_timestamp(std::string& out, const std::optional<std::string_view>& value) {
  if (value) {
    append_json_string(out, *value);
  } else {
    out.append("null");
  }
}

class NdjsonEncoder final : public ExportEncoder {
 public:
  void begin(std::string&) const override {}
  void row(const ExportedAttempt& attempt, std::string& out) const override {
    out.append("{\"id\":");
    append_integer(out, attempt.id);
    out.append(",\"student_id\":");
    append_integer(out, attempt.student_id);
    // The stored answers are already JSON (PostgreSQL's jsonb output): spliced, not re-parsed.
    out.append(",\"answers\":").append(attempt.answers_json);
    out.append(",\"revision\":");
    append_integer(out, attempt.revision);
    out.append(",\"started_at\":");
    append_json_string(out, attempt.started_at);
    out.append(",\"updated_at\":");
    append_json_timestamp(out, attempt.updated_at);
    out.append(",\"submitted_at\":");
    append_json_timestamp(out, attempt.submitted_at);
    out.append(",\"deadline\":");
    append_json_timestamp(out, attempt.deadline);
    out.append(",\"saves\":");
    append_integer(out, attempt.saves);
    out.append("}\n");
  }
};

class CsvEncoder final : public ExportEncoder {
 public:
  void begin(std::string& out) const override { out.append(kCsvHeader); }
  void row(const ExportedAttempt& attempt, std::string& out) const override {
    const auto timestamp = [&](const std::optional<std::string_view>& value) {
      out.push_back(',');
      if (value) append_csv_field(out, *value);  // null: an empty field
    };
    append_integer(out, attempt.id);
    out.push_back(',');
    append_integer(out, attempt.student_id);
    out.push_back(',');
    // JSON in one field, always quoted, so that a spreadsheet never splits it.
    append_csv_field(out, attempt.answers_json, /*always_quote=*/true);
    out.push_back(',');
    append_integer(out, attempt.revision);
    out.push_back(',');
    append_csv_field(out, attempt.started_at);
    timestamp(attempt.updated_at);
    timestamp(attempt.submitted_at);
    timestamp(attempt.deadline);
    out.push_back(',');
    append_integer(out, attempt.saves);
    out.append("\r\n");
  }
};

const NdjsonEncoder kNdjsonEncoder;
const CsvEncoder kCsvEncoder;

// A media range of an Accept field: type, subtype, and its weight (q, 0 to 1 in thousandths).
struct MediaRange {
  std::string_view type;
  std::string_view subtype;
  int weight = 1000;
};

// q = 0(.ddd) or 1(.000); nullopt if malformed.
std::optional<int> parse_weight(std::string_view text) {
  if (text.empty() || (text[0] != '0' && text[0] != '1')) return std::nullopt;
  int weight = (text[0] - '0') * 1000;
  if (text.size() == 1) return weight;
  if (text[1] != '.' || text.size() > 5) return std::nullopt;
  int scale = 100;
  for (std::size_t i = 2; i < text.size(); ++i, scale /= 10) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    weight += (text[i] - '0') * scale;
  }
  return weight > 1000 ? std::nullopt : std::optional<int>(weight);
}

// Calls visit(value, weight) for each element of a list field (Accept, Accept-Encoding): its
// value before any ';', trimmed, and its q weight (1000 when absent, 0 when malformed).
template <typename Visit>
void for_each_weighted(std::string_view list, Visit visit) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view element = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    const auto semicolon = element.find(';');
    int weight = 1000;
    std::string_view parameters =
        semicolon == std::string_view::npos ? std::string_view{} : element.substr(semicolon + 1);
    while (!parameters.empty()) {
      const auto next = parameters.find(';');
      const std::string_view parameter = trim(parameters.substr(0, next));
      parameters =
          next == std::string_view::npos ? std::string_view{} : parameters.substr(next + 1);
      const auto equals = parameter.find('=');
      if (equals == std::string_view::npos || !iequals(trim(parameter.substr(0, equals)), "q")) {
        continue;
      }
      weight = parse_weight(trim(parameter.substr(equals + 1))).value_or(0);
    }
    visit(trim(element.substr(0, semicolon)), weight);
  }
}

std::vector<MediaRange> media_ranges(std::string_view accept) {
  std::vector<MediaRange> ranges;
  for_each_weighted(accept, [&](std::string_view media, int weight) {
    const auto slash = media.find('/');
    if (media.empty() || slash == std::string_view::npos) return;  // ignored, as RFC 9110 allows
    ranges.push_back({trim(media.substr(0, slash)), trim(media.substr(slash + 1)), weight});
  });
  return ranges;
}

// The weight the most specific matching range gives type/subtype (-1: none matches), and how
// specific that range was (2 exact, 1 type/*, 0 */*).
std::pair<int, int> weight_of(const std::vector<MediaRange>& ranges, std::string_view type,
                              std::string_view subtype) {
  int weight = -1;
  int specificity = -1;
  for (const auto& range : ranges) {
    int match = -1;
    if (iequals(range.type, type) && iequals(range.subtype, subtype)) {
      match = 2;
    } else if (iequals(range.type, type) && range.subtype == "*") {
      match = 1;
    } else if (range.type == "*" && range.subtype == "*") {
      match = 0;
    }
    if (match > specificity || (match == specificity && match >= 0 && range.weight > weight)) {
      specificity = match;
      weight = range.weight;
    }
  }
  return {weight, specificity};
}

}  // namespace

std::variant<ExportFilter, std::string> parse_export_query(std::string_view target) {
  ExportFilter filter;
  auto error = for_each_query_parameter(
      target, [&](std::string_view name, const std::string& value) -> std::optional<std::string> {
        if (name == "submitted") {
          if (filter.submitted) return std::string("submitted given twice");
          if (value != "true" && value != "false") {
            return std::string("submitted must be true or false");
          }
          filter.submitted = value == "true";
        } else if (name == "updated_since") {
          if (filter.updated_since) return std::string("updated_since given twice");
          if (!is_rfc3339_date_time(value)) {
            return std::string(
                "updated_since must be an RFC 3339 date-time with its offset, e.g. "
                "2026-12-07T10:03:00Z (a '+' offset written %2B)");
          }
          filter.updated_since =
              rfc3339_in_utc(value);  // PostgreSQL refuses year 0, offsets past 15:59
        } else {
          return "unknown query parameter '" + std::string(name) +
                 "' (the export takes submitted or updated_since)";
        }
        return std::nullopt;
      });
  if (error) return std::move(*error);
  return filter;
}

std::optional<ExportFormat> negotiate_export_format(std::string_view accept) {
  if (trim(accept).empty()) return ExportFormat::ndjson;
  const auto ranges = media_ranges(accept);
  if (ranges.empty()) return ExportFormat::ndjson;
  const auto [ndjson, ndjson_specificity] = weight_of(ranges, "application", "x-ndjson");
  const auto [csv, csv_specificity] = weight_of(ranges, "text", "csv");
  if (ndjson <= 0 && csv <= 0) return std::nullopt;
  if (csv > ndjson) return ExportFormat::csv;
  // Equal weights: the type the client named more precisely, NDJSON if neither.
  if (csv == ndjson && csv_specificity > ndjson_specificity) return ExportFormat::csv;
  return ExportFormat::ndjson;
}

bool accepts_event_stream(std::string_view accept) {
  const auto ranges = media_ranges(accept);
  if (ranges.empty()) return true;
  return weight_of(ranges, "text", "event-stream").first > 0;
}

bool accepts_gzip(std::string_view accept_encoding) {
  int gzip = -1;
  int any = -1;
  for_each_weighted(accept_encoding, [&](std::string_view coding, int weight) {
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      gzip = std::max(gzip, weight);
    } else if (coding == "*") {
      any = std::max(any, weight);
    }
  });
  return gzip >= 0 ? gzip > 0 : any > 0;
}

std::string_view content_type(ExportFormat format) {
  return format == ExportFormat::csv ? kCsv : kNdjson;
}

const ExportEncoder& export_encoder(ExportFormat format) {
  if (format == ExportFormat::csv) return kCsvEncoder;
  return kNdjsonEncoder;
}

void append_csv_field(std::string& out, std::string_view value, bool always_quote) {
  const bool quote = always_quote || value.find_first_of(",\"\r\n") != std::string_view::npos;
  if (!quote) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (const char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace attempts::http
