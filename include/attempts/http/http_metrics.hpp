#pragma once

#include <array>
#include <chrono>
#include <cstddef>

#include "attempts/http/router.hpp"
#include "attempts/metrics/metrics.hpp"

namespace attempts::http {

// What the HTTP layer counts: requests by route and status, their latency, and connections.
class HttpMetrics {
 public:
  // Statuses the service sends; anything else is counted as "other".
  static constexpr std::array<unsigned, 17> kStatuses = {
      200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 431, 503, 504, 0};
  static constexpr std::size_t kRoutes = kRouteCount;

  HttpMetrics();

  // One finished request: `elapsed` from its header being read to its response being ready.
  void record(Route route, unsigned status, std::chrono::steady_clock::duration elapsed) noexcept;

  metrics::Gauge open_connections;
  metrics::Counter connections_accepted;
  metrics::Counter connections_refused;  // over --max-connections

  std::uint64_t requests(Route route, unsigned status) const noexcept;
  metrics::Histogram::Snapshot latency(Route route) const;
  static const char* route_label(Route route) noexcept;

 private:
  static std::size_t status_index(unsigned status) noexcept;

  std::array<std::array<metrics::Counter, kStatuses.size()>, kRoutes> requests_;
  std::array<metrics::Histogram, kRoutes> latency_;
};

}  // namespace attempts::http
