#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "attempts/db/history_maintenance.hpp"
#include "attempts/db/pool_metrics.hpp"
#include "attempts/db/staff_reader.hpp"
#include "attempts/http/http_metrics.hpp"
#include "attempts/progress/progress_hub.hpp"

namespace attempts::auth {
class Authenticator;
class RemoteKeys;
class TokenCache;
}  // namespace attempts::auth

namespace attempts::metrics {

// What authentication counts: rejections by reason, and the process's token cache.
struct AuthCounters {
  const auth::Authenticator* authenticator = nullptr;  // null with authentication off
  const auth::TokenCache* cache = nullptr;
  const auth::RemoteKeys* remote_keys = nullptr;  // null unless keys come from a URL
};

// The whole /metrics page: HTTP, authentication, pool, answer history and staff reader (exports)
// metrics in the Prometheus text format 0.0.4. `history` is null with --history off.
std::string render_exposition(const http::HttpMetrics& http, const AuthCounters& auth,
                              const db::PoolMetrics& pool,
                              const std::vector<db::ConnectionState>& connections,
                              const db::HistoryMaintenance* history = nullptr,
                              const db::StaffReader* staff_reader = nullptr,
                              const progress::ProgressMetrics* progress = nullptr,
                              std::chrono::milliseconds progress_interval = {});

}  // namespace attempts::metrics
