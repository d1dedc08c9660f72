#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace attempts::metrics {

// Monotonic counter. Relaxed atomics: the hot path pays one uncontended atomic add, no lock.
class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down, such as open connections.
class Gauge {
 public:
  void add(std::int64_t n) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Histogram with fixed upper bounds (Prometheus "le" buckets, cumulative when rendered).
class Histogram {
 public:
  explicit Histogram(std::initializer_list<double> upper_bounds);

  void observe(double value) noexcept;

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative_counts;  // per bound, then +Inf last
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  static constexpr std::size_t kMaxBuckets = 24;
  std::vector<double> upper_bounds_;
  std::array<std::atomic<std::uint64_t>, kMaxBuckets + 1> counts_{};  // +Inf last
  // The sum is kept in millionths so that it can be a lock-free integer.
  std::atomic<std::uint64_t> sum_millionths_{0};
};

// Renders the Prometheus text exposition format, version 0.0.4.
class TextWriter {
 public:
  // One `# HELP` and `# TYPE` line per family; call before its samples.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // `labels` is either empty or `key="value",...` without braces, already escaped.
  void sample(std::string_view name, std::string_view labels, double value);
  void sample(std::string_view name, std::string_view labels, std::uint64_t value);
  void histogram(std::string_view name, std::string_view labels, const Histogram::Snapshot& data);

  const std::string& text() const { return out_; }

 private:
  void line(std::string_view name, std::string_view labels, std::string_view value);
  std::string out_;
};

// Escapes a label value: backslash, double quote and newline.
std::string escape_label(std::string_view value);

}  // namespace attempts::metrics
