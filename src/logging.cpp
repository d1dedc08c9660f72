#include "attempts/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace attempts {

void configure_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("attempts");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ [%t] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);  // start-up, shutdown and problems reach the log at once
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace attempts
