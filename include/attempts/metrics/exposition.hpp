#pragma once

#include <string>
#include <vector>

#include "attempts/db/pool_metrics.hpp"
#include "attempts/http/http_metrics.hpp"

namespace attempts::metrics {

// The whole /metrics page: HTTP and pool metrics in the Prometheus text format 0.0.4.
std::string render_exposition(const http::HttpMetrics& http, const db::PoolMetrics& pool,
                              const std::vector<db::ConnectionState>& connections);

}  // namespace attempts::metrics
