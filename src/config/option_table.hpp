#pragma once

#include <array>

namespace attempts::config {

// A setting: its name (the flag without --, the TOML key) and its --help text.
struct Option {
  const char* name;
  const char* help;
};

// Every setting, each read as text and validated by config.cpp, so that "-1" or "12abc" gets a
// precise message instead of program_options' wrap-around or generic error.
inline constexpr std::array kOptions = {
    Option{"listen", "address to listen on, host:port (default 0.0.0.0:8000)"},
    Option{"database-url", "libpq connection string or URI (default postgresql:///attempts)"},
    Option{"threads",
           "event loops, one thread each (default: hardware concurrency, at most --pool-size)"},
    Option{"pool-size",
           "PostgreSQL connections, spread over the event loops; at least --threads (default: "
           "one per event loop)"},
    Option{"body-limit", "largest request body in bytes (default 65536)"},
    Option{"log-level", "trace, debug, info, warn, error, critical or off (default info)"},
    Option{"log-format", "text or json (one JSON object per line) (default text)"},
    Option{"access-log", "log one line per request at info level (default false)"},
    Option{"max-batch", "most queued writes sent as one statement (default 256)"},
    Option{"pipeline-depth",
           "statements a connection sends before the first one's reply arrives (default 1)"},
    Option{"queue-capacity", "calls queued per connection before 503 (default 4096)"},
    Option{"queue-bytes",
           "bytes of answers queued per connection before 503, at least --body-limit (default "
           "16777216, or --body-limit if larger)"},
    Option{"max-connections",
           "open client connections before new ones are refused (default 10000)"},
    Option{"idle-timeout",
           "seconds a keep-alive connection may wait for its next request, or a client may "
           "take to read a response (default 15)"},
    Option{"request-timeout",
           "seconds from a request's first byte to its response, whatever the client or the "
           "database does (default 10)"},
    Option{"shutdown-timeout", "seconds in-flight requests get after SIGTERM (default 10)"},
    Option{"auth",
           "jwt (bearer tokens, see --jwks) or none (no authentication: trusted networks only) "
           "(default jwt)"},
    Option{"jwks", "JWKS file with the keys tokens are verified with; re-read on SIGHUP"},
    Option{"jwks-url",
           "http(s) URL of the JWKS, fetched off the request path at start, every --jwks-refresh, "
           "on SIGHUP and when a token's key is missing or does not verify it (instead of "
           "--jwks); https stays https through redirects, and http is logged as a warning"},
    Option{"oidc-discovery",
           "fetch the keys from the jwks_uri of {--jwt-issuer}/.well-known/openid-configuration "
           "(default: true when --jwt-issuer is an http(s) URL and neither --jwks nor --jwks-url "
           "is given)"},
    Option{"jwks-ca",
           "PEM file of the CA certificates an https key source must chain to (default: the "
           "system's store)"},
    Option{"jwks-refresh",
           "seconds between fetches of a remote JWKS; 0: the response's Cache-Control max-age "
           "within 60-86400, else 300 (default 0)"},
    Option{"jwks-min-refresh",
           "least seconds between fetches asked for by tokens naming an unknown kid or whose key "
           "does not verify them (their 401 says when to retry); SIGHUP does not wait (default "
           "10)"},
    Option{"jwt-issuer", "required iss claim (default: not checked)"},
    Option{"jwt-audience", "required aud claim (default: not checked)"},
    Option{"jwt-student-claim",
           "the claim holding the student id, a positive integer as a JSON number or a decimal "
           "string (default sub)"},
    Option{"jwt-leeway", "seconds of clock skew allowed on exp, nbf and iat (default 30)"},
    Option{"token-cache-size",
           "verified tokens the process remembers, rounded up to a power of two; 56 bytes each "
           "(default 131072: 7 MiB)"},
    Option{"durability",
           "unlogged (UNLOGGED table), async (LOGGED, synchronous_commit off) or sync (LOGGED, "
           "synchronous_commit on); the table must match (default unlogged)"},
    Option{"citus",
           "auto (detect a Citus cluster with attempts distributed, and batch by shard), on "
           "(require one) or off (plain PostgreSQL statements) (default auto)"},
    Option{"citus-entry",
           "nodes (each shard's batches enter at the Citus node holding the shard, through one "
           "extra connection per node and event loop) or coordinator (everything through "
           "--database-url) (default nodes)"},
    Option{"history",
           "on (keep every save, start and submit in answer_history, written in the save's own "
           "statement; GET /attempts/{id}/history reads it) or off (the saves' statements as "
           "without history) (default on)"},
    Option{"history-retention-days",
           "days the answer history is kept, in whole weeks (partitions older than this are "
           "dropped every hour); 0 keeps it for ever (default 400)"},
    Option{"reuse-port",
           "set SO_REUSEPORT so several processes can share the port (default false)"},
    Option{"staff-claim",
           "the claim that makes a token a staff member's, holding roles or scopes: an array of "
           "strings, or a string of space-separated values; a name that is not a top-level "
           "claim is a path (realm_access.roles) (default: none, no staff tokens)"},
    Option{"staff-role",
           "the value --staff-claim must contain for a staff member (e.g. teacher); required "
           "with --staff-claim"},
    Option{"staff-id-claim",
           "the claim naming the staff member, as exam_staff.staff_id holds it (default sub)"},
    Option{"staff-connections",
           "PostgreSQL connections for exports and staff reads, never the write pool's "
           "(default 1)"},
    Option{"max-exports",
           "exports running at once; one more gets 429 with Retry-After (default 1)"},
    Option{"export-rate",
           "attempts per second one export reads at most, so that exports leave the CPU to the "
           "saves; 0: as fast as the client reads (default 100000)"},
    Option{"staff-statement-timeout",
           "seconds one statement of an export or staff read may run (default 30)"},
    Option{"progress-interval",
           "milliseconds between two reads of a watched exam for its progress streams (GET "
           "/exams/{id}/progress): one read per watched exam per interval, whatever the number "
           "of streams (default 2000)"},
    Option{"progress-quiet",
           "seconds without a save after which an attempt not submitted counts as quiet "
           "(default 300)"},
    Option{"progress-heartbeat",
           "seconds a progress stream may stay silent before a comment keeps it open through "
           "proxies (default 15)"},
    Option{"max-progress-streams",
           "progress streams open at once on this process; one more gets 503 with Retry-After "
           "(default 1000)"},
    Option{"progress-queue-bytes",
           "bytes of events queued for one progress stream behind the one being written; past "
           "it the stream gets a fresh snapshot once it drains, and is ended the third time "
           "(default 8388608)"},
    Option{"cors-origin",
           "an origin, scheme://host[:port], whose pages may call the API from a browser "
           "(CORS); repeat the flag for several (CORS_ORIGIN and the file: separated by commas "
           "or spaces, or a TOML array) (default: none, CORS off)"},
};

}  // namespace attempts::config
