#include "attempts/metrics/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace attempts::metrics {

Histogram::Histogram(std::initializer_list<double> upper_bounds) : upper_bounds_(upper_bounds) {
  if (upper_bounds_.size() > kMaxBuckets ||
      !std::is_sorted(upper_bounds_.begin(), upper_bounds_.end())) {
    throw std::invalid_argument("histogram bounds must be sorted and at most 24");
  }
}

void Histogram::observe(double value) noexcept {
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  if (value > 0) {
    sum_millionths_.fetch_add(static_cast<std::uint64_t>(std::llround(value * 1e6)),
                              std::memory_order_relaxed);
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot data;
  data.upper_bounds = upper_bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    data.cumulative_counts.push_back(running);
  }
  data.count = running;
  data.sum = static_cast<double>(sum_millionths_.load(std::memory_order_relaxed)) / 1e6;
  return data;
}

namespace {

std::string format_double(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Shortest text that reads back as the same double: 0.00025, not 0.00025000000000000001.
  char text[32];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

}  // namespace

void TextWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void TextWriter::line(std::string_view name, std::string_view labels, std::string_view value) {
  out_.append(name);
  if (!labels.empty()) out_.append("{").append(labels).append("}");
  out_.append(" ").append(value).append("\n");
}

void TextWriter::sample(std::string_view name, std::string_view labels, double value) {
  line(name, labels, format_double(value));
}

void TextWriter::sample(std::string_view name, std::string_view labels, std::uint64_t value) {
  line(name, labels, std::to_string(value));
}

void TextWriter::histogram(std::string_view name, std::string_view labels,
                           const Histogram::Snapshot& data) {
  const std::string bucket_name = std::string(name) + "_bucket";
  const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  for (std::size_t i = 0; i < data.cumulative_counts.size(); ++i) {
    const std::string le =
        i < data.upper_bounds.size() ? format_double(data.upper_bounds[i]) : "+Inf";
    line(bucket_name, prefix + "le=\"" + le + "\"", std::to_string(data.cumulative_counts[i]));
  }
  line(std::string(name) + "_sum", labels, format_double(data.sum));
  line(std::string(name) + "_count", labels, std::to_string(data.count));
}

std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace attempts::metrics
