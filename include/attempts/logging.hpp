#pragma once

#include <string>

namespace attempts {

// Sets spdlog's default logger: stderr, one line per event, ISO timestamps; `format` "text"
// (readable) or "json" (one JSON object per line, message escaped). `level` is one of the
// names config accepts.
void configure_logging(const std::string& level, const std::string& format);

}  // namespace attempts
