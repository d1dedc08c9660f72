#pragma once

#include <spdlog/common.h>

#include <string>
#include <string_view>

namespace attempts {

// Sets spdlog's default logger: stderr, one line per event, ISO timestamps; `format` "text"
// (readable) or "json" (one JSON object per line, message escaped). `level` is one of the
// names config accepts.
void configure_logging(const std::string& level, const std::string& format);

// Appends `text` as the contents of a JSON string (RFC 8259): quotes, backslashes and control
// characters escaped, well-formed UTF-8 kept as it is, and every byte that is not part of
// well-formed UTF-8 replaced by \ufffd, so that the result is always valid JSON in UTF-8.
void append_json_escaped(std::string_view text, spdlog::memory_buf_t& out);

}  // namespace attempts
