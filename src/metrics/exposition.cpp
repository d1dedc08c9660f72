#include "attempts/metrics/exposition.hpp"

#include <chrono>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/remote_keys.hpp"
#include "attempts/auth/token_cache.hpp"

namespace attempts::metrics {
namespace {

constexpr http::Route kRoutes[] = {
    http::Route::save_answers,       http::Route::get_attempt,
    http::Route::submit_attempt,     http::Route::start_attempt,
    http::Route::get_history,        http::Route::health,
    http::Route::readiness,          http::Route::metrics,
    http::Route::bad_attempt_id,     http::Route::bad_exam_id,
    http::Route::method_not_allowed, http::Route::not_found,
    http::Route::preflight,          http::Route::export_attempts,
    http::Route::progress_stream,
};

std::string route_label(http::Route route) {
  return "route=\"" + escape_label(http::HttpMetrics::route_label(route)) + "\"";
}

// A family with one unlabelled sample: the shape of most of the page.
template <typename Value>
void single(TextWriter& out, std::string_view name, std::string_view type, std::string_view help,
            Value value) {
  out.family(name, type, help);
  out.sample(name, "", value);
}

// Keys fetched from an identity provider: how the fetches went and how old the keys in use are.
void render_remote_keys(TextWriter& out, const auth::RemoteKeys& keys) {
  out.family("attempts_auth_jwks_fetches_total", "counter",
             "Fetches of the identity provider's keys (discovery included), by result; a failed "
             "one keeps the keys in use.");
  for (std::size_t i = 0; i < auth::kFetchOutcomeCount; ++i) {
    const auto outcome = static_cast<auth::FetchOutcome>(i);
    out.sample("attempts_auth_jwks_fetches_total",
               "result=\"" + std::string(auth::name(outcome)) + "\"", keys.fetches(outcome));
  }
  single(out, "attempts_auth_jwks_unknown_kid_refreshes_total", "counter",
         "Fetches asked for by tokens naming a kid the keys did not have (at most one per "
         "--jwks-min-refresh).",
         keys.unknown_kid_refreshes());
  single(out, "attempts_auth_jwks_bad_signature_refreshes_total", "counter",
         "Fetches asked for by tokens whose key did not verify them: a rotation under the same "
         "kid, or by a provider that sends none (at most one per --jwks-min-refresh).",
         keys.bad_signature_refreshes());
  const auto status = keys.status();
  single(out, "attempts_auth_jwks_keys", "gauge",
         "Verification keys in use from the identity provider; 0 until the first fetch succeeds.",
         static_cast<double>(status.keys));
  single(out, "attempts_auth_jwks_keys_refused", "gauge",
         "Keys of the provider's last JWKS meant for verifying tokens that were refused (too "
         "weak, a secret, a repeated kid...; the others are used): tokens they sign get 401.",
         static_cast<double>(status.refused_keys));
  if (!status.keys_known) return;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  single(out, "attempts_auth_jwks_age_seconds", "gauge",
         "Seconds since the keys in use were last fetched (confirmed) from the identity provider.",
         static_cast<double>(std::max<std::int64_t>(0, now - status.fetched_at)));
}

// Exports and staff reads, on the staff reader's connections.
void render_staff_reader(TextWriter& out, const db::StaffReader& reader) {
  const db::StaffReaderMetrics& m = reader.metrics();
  const auto load = [](const auto& value) { return value.load(std::memory_order_relaxed); };
  single(out, "attempts_exports_running", "gauge",
         "Exports of an exam's attempts running now (at most --max-exports).",
         static_cast<double>(load(m.exports_running)));
  single(out, "attempts_exports_started_total", "counter",
         "Exports that started reading (a staff connection, one snapshot).",
         load(m.exports_started));
  single(out, "attempts_exports_finished_total", "counter",
         "Exports that sent every row to their client.", load(m.exports_finished));
  single(out, "attempts_exports_aborted_total", "counter",
         "Exports ended early because their client went away or stopped reading; their query "
         "was cancelled and their connection freed.",
         load(m.exports_aborted));
  single(out, "attempts_exports_failed_total", "counter",
         "Exports the database could not complete (down, or a statement timed out).",
         load(m.exports_failed));
  single(out, "attempts_exports_refused_total", "counter",
         "Exports refused with 429 because --max-exports were running.", load(m.exports_refused));
  single(out, "attempts_export_rows_total", "counter", "Attempts read by exports.",
         load(m.export_rows));
  single(out, "attempts_export_bytes_total", "counter", "Bytes of NDJSON or CSV exports produced.",
         load(m.export_bytes));
  single(out, "attempts_export_longest_running_seconds", "gauge",
         "How long the oldest running export has run: its snapshot holds back VACUUM of the "
         "attempts the saves update.",
         static_cast<double>(reader.longest_export().count()));
  single(out, "attempts_staff_reads_total", "counter", "Staff reads of one attempt or its history.",
         load(m.reads));
  single(out, "attempts_staff_reads_failed_total", "counter",
         "Staff reads the database could not answer.", load(m.reads_failed));
  out.family("attempts_staff_connections", "gauge",
             "Staff reader connections (exports and staff reads, never the write pool's) by "
             "state: busy with a job, open and idle, or not open.");
  const auto busy = load(m.connections_busy);
  const auto up = load(m.connections_up);
  out.sample("attempts_staff_connections", "state=\"busy\"", static_cast<double>(busy));
  out.sample("attempts_staff_connections", "state=\"idle\"",
             static_cast<double>(std::max<std::int64_t>(0, up - busy)));
  out.sample("attempts_staff_connections", "state=\"closed\"",
             static_cast<double>(
                 std::max<std::int64_t>(0, static_cast<std::int64_t>(reader.connections()) - up)));
}

// The answer history's partitions: how far ahead they are made, and when that last worked.
void render_history(TextWriter& out, const db::HistoryMaintenance::Status& status) {
  single(out, "attempts_history_maintenance_runs_total", "counter",
         "Runs of answer_history_maintain(), which creates the weekly partitions ahead and drops "
         "those past --history-retention-days.",
         status.runs);
  single(out, "attempts_history_maintenance_failures_total", "counter",
         "Runs of answer_history_maintain() that failed (the reason is in the log).",
         status.failures);
  if (status.weeks_ahead < 0) return;
  single(out, "attempts_history_partitions_ahead", "gauge",
         "Weekly answer history partitions made after the current week's: at 0, saves "
         "fail when the next week starts unless a partition is made.",
         static_cast<double>(status.weeks_ahead));
  single(out, "attempts_history_maintenance_last_success_timestamp_seconds", "gauge",
         "Unix time of the last successful run of answer_history_maintain().",
         static_cast<double>(status.last_success_unix));
}

void render_auth(TextWriter& out, const AuthCounters& auth) {
  if (auth.authenticator == nullptr) return;
  out.family("attempts_auth_rejections_total", "counter",
             "Requests answered 401, by why the bearer token was refused.");
  for (std::size_t i = 0; i < auth::kTokenErrorCount; ++i) {
    const auto reason = static_cast<auth::TokenError>(i);
    out.sample("attempts_auth_rejections_total",
               "reason=\"" + std::string(auth::name(reason)) + "\"",
               auth.authenticator->rejections(reason));
  }
  if (auth.remote_keys != nullptr) render_remote_keys(out, *auth.remote_keys);
  if (auth.cache == nullptr) return;
  const auth::TokenCache& cache = *auth.cache;
  single(out, "attempts_auth_token_cache_hits_total", "counter",
         "Tokens found already verified in the process's cache.", cache.hits());
  single(out, "attempts_auth_token_cache_misses_total", "counter",
         "Tokens whose signature had to be verified.", cache.misses());
  single(out, "attempts_auth_token_cache_evictions_total", "counter",
         "Verified tokens dropped from a full cache before they expired.", cache.evictions());
  single(out, "attempts_auth_token_cache_entries", "gauge",
         "Tokens the cache holds (expired ones until their place is taken).",
         static_cast<double>(cache.size()));
  single(out, "attempts_auth_token_cache_bytes", "gauge",
         "Memory of the token cache's table, fixed at start (--token-cache-size x 56 bytes).",
         static_cast<double>(cache.bytes()));
}

// The proctors' progress streams (progress_hub.hpp).
void render_progress(TextWriter& out, const progress::ProgressMetrics& m,
                     std::chrono::milliseconds interval) {
  const auto load = [](const auto& value) { return value.load(std::memory_order_relaxed); };
  single(out, "attempts_progress_streams_open", "gauge",
         "Progress streams (GET /exams/{id}/progress) open now, at most --max-progress-streams.",
         static_cast<double>(load(m.streams_open)));
  single(out, "attempts_progress_watched_exams", "gauge",
         "Exams with at least one progress stream: each costs one read per interval.",
         static_cast<double>(load(m.watched_exams)));
  single(out, "attempts_progress_interval_seconds", "gauge",
         "--progress-interval: each watched exam is read once per interval.",
         static_cast<double>(interval.count()) / 1000.0);
  single(out, "attempts_progress_queries_total", "counter",
         "Reads of a watched exam's changed attempts (one per interval per watched exam).",
         load(m.queries));
  single(out, "attempts_progress_query_failures_total", "counter",
         "Reads of a watched exam the database could not answer.", load(m.query_failures));
  single(out, "attempts_progress_query_seconds_total", "counter",
         "Time the reads of watched exams took, from asking to the answer (queueing included).",
         static_cast<double>(load(m.query_microseconds)) / 1e6);
  single(out, "attempts_progress_query_rows_total", "counter",
         "Attempts the reads of watched exams returned.", load(m.query_rows));
  single(out, "attempts_progress_events_total", "counter",
         "Events posted to progress streams (one per stream per event).", load(m.events_sent));
  single(out, "attempts_progress_resumes_total", "counter",
         "Streams that resumed with Last-Event-ID: their first event was the changes since.",
         load(m.resumes));
  out.family("attempts_progress_snapshots_total", "counter",
             "Snapshots sent to progress streams, by why: a new stream, a Last-Event-ID too old "
             "(or of another instance), or a stream that fell behind.");
  out.sample("attempts_progress_snapshots_total", "reason=\"new\"", load(m.snapshots_new));
  out.sample("attempts_progress_snapshots_total", "reason=\"resume_too_old\"",
             load(m.snapshots_resume_too_old));
  out.sample("attempts_progress_snapshots_total", "reason=\"slow_consumer\"",
             load(m.snapshots_slow_consumer));
  single(out, "attempts_progress_slow_consumers_closed_total", "counter",
         "Progress streams ended because they fell behind three times.",
         load(m.slow_consumers_closed));
  single(out, "attempts_progress_streams_refused_total", "counter",
         "Progress streams refused with 503 because --max-progress-streams were open.",
         load(m.streams_refused));
}

}  // namespace

std::string render_exposition(const http::HttpMetrics& http, const AuthCounters& auth,
                              const db::PoolMetrics& pool,
                              const std::vector<db::ConnectionState>& connections,
                              const db::HistoryMaintenance* history,
                              const db::StaffReader* staff_reader,
                              const progress::ProgressMetrics* progress,
                              std::chrono::milliseconds progress_interval) {
  TextWriter out;

  out.family("attempts_http_requests_total", "counter",
             "HTTP requests answered, by route and status.");
  for (const auto route : kRoutes) {
    for (const unsigned status : http::HttpMetrics::kStatuses) {
      const auto count = http.requests(route, status);
      if (count == 0) continue;  // a series appears with its first request
      const std::string code = status == 0 ? "other" : std::to_string(status);
      out.sample("attempts_http_requests_total", route_label(route) + ",code=\"" + code + "\"",
                 count);
    }
  }
  out.family("attempts_http_request_duration_seconds", "histogram",
             "Time from a request's header being read to its response being ready.");
  for (const auto route : kRoutes) {
    const auto latency = http.latency(route);
    if (latency.count > 0) {
      out.histogram("attempts_http_request_duration_seconds", route_label(route), latency);
    }
  }
  single(out, "attempts_http_open_connections", "gauge", "Client connections open now.",
         static_cast<double>(http.open_connections.value()));
  single(out, "attempts_http_connections_accepted_total", "counter", "Client connections accepted.",
         http.connections_accepted.value());
  single(out, "attempts_http_connections_refused_total", "counter",
         "Client connections closed at once because --max-connections was reached.",
         http.connections_refused.value());
  render_auth(out, auth);

  out.family("attempts_db_batch_rows", "histogram",
             "Distinct attempts written by one UPDATE statement.");
  out.histogram("attempts_db_batch_rows", "", pool.batch_rows.snapshot());
  single(out, "attempts_db_batches_committed_total", "counter", "UPDATE statements committed.",
         pool.batches_committed.value());
  single(out, "attempts_db_rows_committed_total", "counter", "Attempt rows updated and committed.",
         pool.rows_committed.value());
  single(out, "attempts_db_connect_attempts_total", "counter",
         "Connection attempts by the pool, the first ones included.",
         pool.connect_attempts.value());
  single(out, "attempts_db_connect_failures_total", "counter", "Connection attempts that failed.",
         pool.connect_failures.value());
  single(out, "attempts_db_errors_total", "counter",
         "Statements that failed, connections lost during a statement included.",
         pool.database_errors.value());
  single(out, "attempts_db_deadline_expirations_total", "counter",
         "Calls answered at their request's deadline because the database had not answered.",
         pool.deadline_expirations.value());
  single(out, "attempts_db_outcomes_unknown_total", "counter",
         "Writes answered 504: sent, but the reply was lost or late, so they may have applied.",
         pool.outcomes_unknown.value());
  single(out, "attempts_db_stalled_connections_total", "counter",
         "Connections dropped because a statement had no reply for the stall timeout.",
         pool.stalled_connections.value());
  single(out, "attempts_db_writes_retried_total", "counter",
         "Writes sent again after their statement rolled back with a transient error "
         "(a deadlock, a serialization failure).",
         pool.writes_retried.value());
  single(out, "attempts_db_claim_waits_total", "counter",
         "Times calls of an attempt waited for another connection's statement of it (another "
         "event loop's, or a Citus node's) to finish before they were sent.",
         pool.claim_waits.value());
  single(out, "attempts_db_lost_session_holds_total", "counter",
         "Statements of a connection lost without a word from the server whose attempts were "
         "held back until its backend was seen gone, since they might still apply.",
         pool.lost_session_holds.value());
  single(out, "attempts_db_lost_backends_ended_total", "counter",
         "Backends of lost connections that the next session saw gone (ending them if they "
         "still ran), releasing the attempts held back for them.",
         pool.lost_backends_ended.value());
  single(out, "attempts_db_shard_map_changes_total", "counter",
         "Citus: shard maps of attempts read again that differed from the one in use.",
         pool.shard_map_changes.value());
  single(out, "attempts_db_citus_shards", "gauge",
         "Citus: shards of attempts in the shard map in use; 0 when it is not distributed.",
         static_cast<double>(pool.citus_shards.load(std::memory_order_relaxed)));

  out.family("attempts_db_connection_up", "gauge", "1 if the pool connection is open, else 0.");
  for (std::size_t i = 0; i < connections.size(); ++i) {
    out.sample("attempts_db_connection_up", "connection=\"" + std::to_string(i) + "\"",
               static_cast<double>(connections[i].connected ? 1 : 0));
  }
  // The durability mismatch has no other sign in the metrics: the connection is up and every
  // write is answered 503, as under overload.
  out.family("attempts_db_connection_refusing", "gauge",
             "1 if the pool connection is open but refuses calls: the attempts table does not fit "
             "--durability, or the cluster is not what --citus requires (reason in /readyz).");
  for (std::size_t i = 0; i < connections.size(); ++i) {
    out.sample("attempts_db_connection_refusing", "connection=\"" + std::to_string(i) + "\"",
               static_cast<double>(connections[i].refusing ? 1 : 0));
  }
  out.family("attempts_db_queue_depth", "gauge", "Calls waiting to be sent on the connection.");
  for (std::size_t i = 0; i < connections.size(); ++i) {
    out.sample("attempts_db_queue_depth", "connection=\"" + std::to_string(i) + "\"",
               static_cast<double>(connections[i].queue_depth));
  }
  out.family("attempts_db_in_flight", "gauge", "Calls sent on the connection, not yet answered.");
  for (std::size_t i = 0; i < connections.size(); ++i) {
    out.sample("attempts_db_in_flight", "connection=\"" + std::to_string(i) + "\"",
               static_cast<double>(connections[i].in_flight));
  }
  std::size_t up = 0;
  for (const auto& connection : connections) up += connection.connected ? 1 : 0;
  out.family("attempts_db_connections", "gauge", "Pool connections by state.");
  out.sample("attempts_db_connections", "state=\"up\"", static_cast<double>(up));
  out.sample("attempts_db_connections", "state=\"down\"",
             static_cast<double>(connections.size() - up));
  if (history != nullptr) render_history(out, history->status());
  if (staff_reader != nullptr) render_staff_reader(out, *staff_reader);
  if (progress != nullptr) render_progress(out, *progress, progress_interval);
  return out.text();
}

}  // namespace attempts::metrics
