#include "attempts/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

#include "attempts/utf8.hpp"

namespace attempts {
namespace {

// `%*` in a pattern: the message as the contents of a JSON string, so that any text keeps
// each line valid JSON (see append_json_escaped).
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    append_json_escaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

}  // namespace

void append_json_escaped(std::string_view text, spdlog::memory_buf_t& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  static constexpr std::string_view kReplacement = "\\ufffd";
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20) {
      const char escaped[] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xF]};
      out.append(escaped, escaped + sizeof escaped);
    } else if (byte < 0x80) {
      out.push_back(c);
    } else if (const std::size_t length = utf8_sequence_length(text.substr(i)); length > 1) {
      out.append(text.data() + i, text.data() + i + length);
      i += length;
      continue;
    } else {
      // Not UTF-8 (a request target's raw bytes, say): each such byte becomes U+FFFD, as a
      // decoder would show it, rather than breaking the line.
      out.append(kReplacement.data(), kReplacement.data() + kReplacement.size());
    }
    ++i;
  }
}

void configure_logging(const std::string& level, const std::string& format) {
  auto logger = spdlog::stderr_color_mt("attempts");
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","thread":%t,"message":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ [%t] %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);  // start-up, shutdown and problems reach the log at once
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace attempts
