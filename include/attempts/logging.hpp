#pragma once

#include <string>

namespace attempts {

// Sets spdlog's default logger: stderr, one line per event, ISO timestamps. `level` is one of
// the names config accepts.
void configure_logging(const std::string& level);

}  // namespace attempts
