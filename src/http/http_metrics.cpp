#include "attempts/http/http_metrics.hpp"

#include <algorithm>
#include <utility>

namespace attempts::http {
namespace {

// Seconds; from well under a millisecond (a lone write) to the statement timeout.
metrics::Histogram make_latency_histogram() {
  return metrics::Histogram{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                            0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

// One per route.
template <std::size_t... Index>
std::array<metrics::Histogram, sizeof...(Index)> make_latency_histograms(
    std::index_sequence<Index...>) {
  return {((void)Index, make_latency_histogram())...};
}

}  // namespace

HttpMetrics::HttpMetrics()
    : latency_(make_latency_histograms(std::make_index_sequence<HttpMetrics::kRoutes>{})) {}

std::size_t HttpMetrics::status_index(unsigned status) noexcept {
  const auto it = std::find(kStatuses.begin(), kStatuses.end() - 1, status);
  return static_cast<std::size_t>(it - kStatuses.begin());  // "other" when not found
}

void HttpMetrics::record(Route route, unsigned status,
                         std::chrono::steady_clock::duration elapsed) noexcept {
  const auto index = static_cast<std::size_t>(route);
  requests_[index][status_index(status)].add();
  latency_[index].observe(std::chrono::duration<double>(elapsed).count());
}

std::uint64_t HttpMetrics::requests(Route route, unsigned status) const noexcept {
  return requests_[static_cast<std::size_t>(route)][status_index(status)].value();
}

metrics::Histogram::Snapshot HttpMetrics::latency(Route route) const {
  return latency_[static_cast<std::size_t>(route)].snapshot();
}

const char* HttpMetrics::route_label(Route route) noexcept {
  switch (route) {
    case Route::save_answers:
      return "PATCH /attempts/{id}";
    case Route::get_attempt:
      return "GET /attempts/{id}";
    case Route::submit_attempt:
      return "POST /attempts/{id}/submit";
    case Route::start_attempt:
      return "POST /exams/{exam_id}/attempts";
    case Route::get_history:
      return "GET /attempts/{id}/history";
    case Route::export_attempts:
      return "GET /exams/{exam_id}/attempts";
    case Route::progress_stream:
      return "GET /exams/{exam_id}/progress";
    case Route::health:
      return "/healthz";
    case Route::readiness:
      return "/readyz";
    case Route::metrics:
      return "/metrics";
    case Route::bad_attempt_id:
      return "/attempts/{invalid}";
    case Route::bad_exam_id:
      return "/exams/{invalid}";
    case Route::method_not_allowed:
      return "method not allowed";
    case Route::preflight:
      return "OPTIONS (CORS preflight)";
    case Route::not_found:
      break;
  }
  return "unknown";
}

}  // namespace attempts::http
