#!/usr/bin/env bash
# One-command benchmark: the service against pgbench running the service's own UPDATE, on the
# same private PostgreSQL, in one run. Prints Markdown tables (stdout) and writes them to
# bench/results/latest.md, with the latency-throughput chart in bench/results/latest.svg;
# progress goes to stderr.
#
#   scripts/bench.sh                                  # defaults: 10 s per workload, ~6 min
#   scripts/bench.sh --duration 5s --pgbench-duration 5s --curve-rates ""
#   scripts/bench.sh --durability all                 # the durability ladder side by side
#   scripts/bench.sh --server-binary /tmp/old/attempts-server --auth off   # another build
#
# Steps: install deps (scripts/install-deps.sh), build the release preset, make development keys
# and one token per seeded student (attempts-token), start a throwaway PostgreSQL
# (scripts/lib/pg.sh, config/postgresql.conf) in a mktemp dir on 127.0.0.1, load sql/schema.sql +
# sql/seed.sql, then per durability mode:
#   1. pgbench -n -M prepared -f sql/pgbench/update.sql, N clients (-j 2), then 1 client
#   2. attempts-server under wrk, closed loop, at each --connections count (auth --auth)
#   3. the same at 64 connections with each other mode of --auth-compare (auth off, RS256), and
#      with --cors-compare, in turn: CORS off; CORS off with every request carrying an Origin;
#      CORS on (--cors-origin) with every request from that origin; and with --keys-compare, for
#      HS256 and RS256 in turn: keys from the bench's JWKS file (--jwks), then the same keys from
#      a URL (--jwks-url: the file served on 127.0.0.1 by a static HTTP server the script starts)
#   4. paced runs at each --rates rate over each --paced-connections count: open-loop (constant
#      arrival rate) with wrk2 or k6 when installed, else wrk's delay() (closed loop, and said so)
#   5. one connection, one request at a time (wrk -c1 -t1)
#   6. pgbench with N clients again, to show how much the machine drifted during the run
# and once, for the first mode: the latency-throughput curve, the service (open-loop tool) and
# pgbench --rate at each --curve-rates rate, drawn with gnuplot into bench/results/latest.svg.
# The server is restarted before each service workload, so its peak RSS, CPU and context
# switches are per workload. After each workload the rows it updated are counted (updated_at >=
# its start) and compared with the number of distinct ids that many uniform random requests
# should hit; at the end every row updated during the run must hold exactly the body that was
# sent.
#
# Options (environment variable in brackets; a flag beats the environment):
#   --duration D            each service workload, e.g. 10s, 1m [BENCH_DURATION, default 10s]
#   --pgbench-duration D    each pgbench run [BENCH_PGBENCH_DURATION, default 10s]
#   --pgbench-clients N     clients of the baseline pgbench [BENCH_PGBENCH_CLIENTS, default 16]
#   --connections "A B"     closed-loop wrk connection counts [BENCH_CONNECTIONS, default "64 256"]
#   --auth MODE             off, hs256, rs256 or es256: how the service rows authenticate
#                           [BENCH_AUTH, default hs256]
#   --auth-compare "M ..."  extra rows at 64 connections with these modes [BENCH_AUTH_COMPARE,
#                           default "off rs256"]; "" skips them. Every row sends the same
#                           requests but for their token: with auth off the HS256 ones
#   --cors-compare          more rows at 64 connections, one after the other, --cors-rounds
#                           times: the server without CORS; the same with every request carrying
#                           an Origin (what a page sends); the server with --cors-origin and
#                           every request from that origin. Prints the means and ratios of
#                           requests/s and server CPU per request [BENCH_CORS_COMPARE=1]
#   --cors-rounds N         rounds of --cors-compare [BENCH_CORS_ROUNDS, default 3]
#   --keys-compare          more rows at 64 connections, --keys-rounds times, for HS256 then
#                           RS256, one after the other: the server with --jwks FILE; the server
#                           with --jwks-url, that file served by python3 -m http.server (else
#                           node) on 127.0.0.1, loaded once /readyz answers 200 (at most 30 s).
#                           Both send the requests of that mode's other rows. Prints the means
#                           and ratios of requests/s and server CPU per request
#                           [BENCH_KEYS_COMPARE=1]
#   --keys-rounds N         rounds of --keys-compare [BENCH_KEYS_ROUNDS, default 3]
#   --history-compare       more rows at 64 connections, --history-rounds times, in turn: the
#                           server as it is (--history on, the default) and with --history off.
#                           Prints the means and ratios of requests/s and server CPU per request
#                           [BENCH_HISTORY_COMPARE=1]
#   --history-rounds N      rounds of --history-compare [BENCH_HISTORY_ROUNDS, default 3]
#   --history-read          one more workload: GET /attempts/{id}/history of an attempt with
#                           1,000 saves on record (first page), paced at 100/s over 4 connections
#                           by wrk2, while wrk2 paces saves to the other attempts at the first
#                           --rates rate over 128 connections; reports the history read's p99
#                           and the saves' rate, p99 and errors. Needs wrk2 [BENCH_HISTORY_READ=1]
#   --rates "A B"           paced total requests/s [BENCH_RATES, default "10000 15000"]; "" skips
#   --paced-connections "A B"  connections of the paced runs [BENCH_PACED_CONNECTIONS,
#                           default "128 1000"]
#   --curve-rates "A B ..." offered rates of the latency-throughput curve [BENCH_CURVE_RATES,
#                           default "5000 10000 20000 30000 40000 50000 60000"]; "" skips it
#   --curve-duration D      each point of the curve [BENCH_CURVE_DURATION, default 5s]
#   --wrk-threads N         wrk -t (capped at the connection count) [BENCH_WRK_THREADS, default 2]
#   --pool-size N, --threads N, --max-batch N, --pipeline-depth N
#                           attempts-server's settings [BENCH_POOL_SIZE, ...; default: the
#                           server's own]
#   --durability MODE       unlogged, async, sync, or all (each in turn) [BENCH_DURABILITY,
#                           default unlogged]: the table's persistence and commit mode
#   --server-binary PATH    the server to measure [BENCH_SERVER_BINARY, default
#                           build/release/attempts-server, built unless --no-build]
#   --no-build              use the existing build
#   --no-install            do not run scripts/install-deps.sh
#   -h, --help              this text
#
# Tools: wrk (Debian) always; wrk2 (BENCH_WRK2 or `wrk2` on PATH) or k6 (BENCH_K6 or `k6`) for
# open-loop rows when present; perf for instructions per request where the machine exposes
# hardware counters; gnuplot for the chart (installed when missing).
#
# Exit status: 0 when every check passed, 1 when a workload or a check failed (the tables are
# still written), 2 for a usage error.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
say() { printf '==> bench.sh: %s\n' "$*" >&2; }
die() { printf 'bench.sh: error: %s\n' "$1" >&2; exit "${2:-1}"; }
# shellcheck source=scripts/lib/bench-lib.sh
source scripts/lib/bench-lib.sh

# ---- options -------------------------------------------------------------------------------------
duration=${BENCH_DURATION:-10s}
pgbench_duration=${BENCH_PGBENCH_DURATION:-10s}
pgbench_clients=${BENCH_PGBENCH_CLIENTS:-16}
connections=${BENCH_CONNECTIONS:-64 256}
auth=${BENCH_AUTH:-hs256}
auth_compare=${BENCH_AUTH_COMPARE-off rs256}
cors_compare=${BENCH_CORS_COMPARE:-0}
cors_rounds=${BENCH_CORS_ROUNDS:-3}
keys_compare=${BENCH_KEYS_COMPARE:-0}
keys_rounds=${BENCH_KEYS_ROUNDS:-3}
history_compare=${BENCH_HISTORY_COMPARE:-0}
history_rounds=${BENCH_HISTORY_ROUNDS:-3}
history_read=${BENCH_HISTORY_READ:-0}
rates=${BENCH_RATES-10000 15000}
paced_connections=${BENCH_PACED_CONNECTIONS:-128 1000}
curve_rates=${BENCH_CURVE_RATES-5000 10000 20000 30000 40000 50000 60000}
curve_duration=${BENCH_CURVE_DURATION:-5s}
wrk_threads=${BENCH_WRK_THREADS:-2}
# The server's own settings; empty means the server's default.
declare -A server_setting=(
  [pool-size]=${BENCH_POOL_SIZE:-} [threads]=${BENCH_THREADS:-}
  [max-batch]=${BENCH_MAX_BATCH:-} [pipeline-depth]=${BENCH_PIPELINE_DEPTH:-}
)
durability=${BENCH_DURABILITY:-unlogged}
server_bin=${BENCH_SERVER_BINARY:-$repo/build/release/attempts-server}
custom_server=0
[[ -n ${BENCH_SERVER_BINARY:-} ]] && custom_server=1
do_build=1
do_install=1

need_arg() { (($# >= 2)) || die "$1 needs a value" 2; }
while (($#)); do
  case $1 in
    --duration) need_arg "$@"; duration=$2; shift 2 ;;
    --pgbench-duration) need_arg "$@"; pgbench_duration=$2; shift 2 ;;
    --pgbench-clients) need_arg "$@"; pgbench_clients=$2; shift 2 ;;
    --connections) need_arg "$@"; connections=$2; shift 2 ;;
    --auth) need_arg "$@"; auth=$2; shift 2 ;;
    --auth-compare) need_arg "$@"; auth_compare=$2; shift 2 ;;
    --cors-compare) cors_compare=1; shift ;;
    --cors-rounds) need_arg "$@"; cors_rounds=$2; shift 2 ;;
    --keys-compare) keys_compare=1; shift ;;
    --history-compare) history_compare=1; shift ;;
    --history-rounds) history_rounds=$2; shift 2 ;;
    --history-read) history_read=1; shift ;;
    --keys-rounds) need_arg "$@"; keys_rounds=$2; shift 2 ;;
    --rates) need_arg "$@"; rates=$2; shift 2 ;;
    --paced-connections) need_arg "$@"; paced_connections=$2; shift 2 ;;
    --curve-rates) need_arg "$@"; curve_rates=$2; shift 2 ;;
    --curve-duration) need_arg "$@"; curve_duration=$2; shift 2 ;;
    --wrk-threads) need_arg "$@"; wrk_threads=$2; shift 2 ;;
    --pool-size | --threads | --max-batch | --pipeline-depth)
      need_arg "$@"; server_setting[${1#--}]=$2; shift 2 ;;
    --durability) need_arg "$@"; durability=$2; shift 2 ;;
    --server-binary) need_arg "$@"; server_bin=$2; custom_server=1; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --no-install) do_install=0; shift ;;
    -h | --help) usage; exit 0 ;;
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    *) die "unknown argument '$1' (see --help)" 2 ;;
  esac
done


duration_s=$(to_seconds "$duration") || die "--duration: '$duration' is not a duration like 10s or 1m" 2
pgbench_s=$(to_seconds "$pgbench_duration") || die "--pgbench-duration: '$pgbench_duration' is not a duration like 10s or 1m" 2
curve_s=$(to_seconds "$curve_duration") || die "--curve-duration: '$curve_duration' is not a duration like 5s" 2
is_count "$pgbench_clients" || die "--pgbench-clients: '$pgbench_clients' is not a positive integer" 2
is_count "$wrk_threads" || die "--wrk-threads: '$wrk_threads' is not a positive integer" 2
is_count "$cors_rounds" || die "--cors-rounds: '$cors_rounds' is not a positive integer" 2
is_count "$keys_rounds" || die "--keys-rounds: '$keys_rounds' is not a positive integer" 2
is_auth "$auth" || die "--auth: '$auth' is not off, hs256, rs256 or es256" 2
read -r -a conn_list <<<"$connections"
read -r -a rate_list <<<"$rates"
read -r -a paced_list <<<"$paced_connections"
read -r -a curve_list <<<"$curve_rates"
read -r -a compare_list <<<"$auth_compare"
for c in "${conn_list[@]}" "${paced_list[@]}"; do is_count "$c" || die "connections: '$c' is not a positive integer" 2; done
for r in "${rate_list[@]}" "${curve_list[@]}"; do is_count "$r" || die "rates: '$r' is not a positive integer" 2; done
for m in "${compare_list[@]}"; do is_auth "$m" || die "--auth-compare: '$m' is not off, hs256, rs256 or es256" 2; done
server_flags=()
for setting in pool-size threads max-batch pipeline-depth; do
  value=${server_setting[$setting]}
  [[ -z $value ]] && continue
  is_count "$value" || die "--$setting: '$value' is not a positive integer" 2
  server_flags+=("--$setting" "$value")
done
case $durability in
  unlogged | async | sync) modes=("$durability") ;;
  all) modes=(unlogged async sync) ;;
  *) die "--durability: '$durability' is not unlogged, async, sync or all" 2 ;;
esac

readonly max_id=100000 # sql/seed.sql: attempts 1..100000
readonly students=20000 # sql/seed.sql: attempt i belongs to student 1 + (i - 1) % 20000
readonly body_sql='{"1":[1],"2":[2],"3":[3],"4":[4]}' # what bench/patch.lua and pgbench store
readonly body_wire='{"1": [1], "2": [2], "3": [3], "4": [4]}' # the answers object as patch.lua sends it
results_dir=$repo/bench/results
clk_tck=$(getconf CLK_TCK)

# ---- dependencies and build ------------------------------------------------------------------------
if ((do_install)); then
  say "installing dependencies"
  bash scripts/install-deps.sh >&2
  if ((${#curve_list[@]})); then bash scripts/install-deps.sh gnuplot-nox >&2; fi
fi
for tool in wrk curl awk sort timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run scripts/install-deps.sh"
done

# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
pg_require_bin
[[ -x $PG_BIN/pgbench ]] || die "$PG_BIN/pgbench not found"

if ((do_build)); then
  say "building the release preset (attempts-server, attempts-token)"
  cmake --preset release >&2
  targets=(--target attempts-token)
  ((custom_server)) || targets+=(--target attempts-server)
  cmake --build --preset release "${targets[@]}" -j"$(nproc)" >&2
fi
[[ -x $server_bin ]] || die "$server_bin does not exist (build it, or drop --no-build)"
token_bin=$repo/build/release/tools/attempts-token
[[ -x $token_bin ]] || die "$token_bin does not exist (build it, or drop --no-build)"

# Servers from before authentication or durability modes do not know those flags.
server_help=$("$server_bin" --help 2>&1 || true)
server_has_auth=0
[[ $server_help == *--auth* ]] && server_has_auth=1
server_has_durability=0
[[ $server_help == *--durability* ]] && server_has_durability=1
if ((cors_compare)) && [[ $server_help != *--cors-origin* ]]; then
  die "$server_bin has no --cors-origin: run without --cors-compare" 2
fi
if ((keys_compare)) && [[ $server_help != *--jwks-url* ]]; then
  die "$server_bin has no --jwks-url: run without --keys-compare" 2
fi
if ((keys_compare)) && ! command -v python3 >/dev/null 2>&1 && ! command -v node >/dev/null 2>&1; then
  die "--keys-compare serves the JWKS with python3 or node: neither found" 2
fi
if ((!server_has_auth)); then
  [[ $auth == off ]] || die "$server_bin has no --auth: run with --auth off --auth-compare ''" 2
  for m in "${compare_list[@]}"; do [[ $m == off ]] || die "$server_bin has no --auth: run with --auth-compare ''" 2; done
fi

# The open-loop generator for paced rows and the curve.
open_loop=wrk
wrk2_bin=${BENCH_WRK2:-$(command -v wrk2 || true)}
k6_bin=${BENCH_K6:-$(command -v k6 || true)}
if [[ -n $wrk2_bin && -x $wrk2_bin ]]; then
  open_loop=wrk2
elif [[ -n $k6_bin && -x $k6_bin ]]; then
  open_loop=k6
fi
# Instructions per request need hardware counters, which some VMs do not expose.
perf_ok=0
if command -v perf >/dev/null 2>&1 && perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9]'; then
  perf_ok=1
fi

# Thousands of connections need descriptors, for wrk and the server alike.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- everything started from here on is stopped by cleanup -----------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-bench.XXXXXX")
chmod 755 "$tmp" # the postgres OS user must be able to enter it
datadir=$tmp/pgdata
pglog=$tmp/postgres.log
server_pid=
child_pid=


# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM HUP
  if [[ -n $child_pid ]] && kill -0 "$child_pid" 2>/dev/null; then
    kill -TERM "$child_pid" 2>/dev/null
    wait "$child_pid" 2>/dev/null
  fi
  stop_server
  stop_keys_http
  pg_stop "$datadir" fast
  if [[ -d $tmp ]]; then
    mkdir -p "$results_dir/latest-logs" && rm -f "$results_dir/latest-logs/"* &&
      cp "$tmp"/*.log "$tmp"/*.out "$results_dir/latest-logs/" 2>/dev/null
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'exit 129' HUP


# ---- keys and tokens ---------------------------------------------------------------------------------
keys=$tmp/keys
declare -A tokens_file=()
if ((server_has_auth)); then
  say "development keys and one token per student (attempts-token)"
  "$token_bin" keygen "$keys" >/dev/null
  for alg in hs256 es256 rs256; do
    tokens_file[$alg]=$tmp/tokens-$alg.txt
    "$token_bin" sign-range --keys "$keys" --kid "dev-$alg" --first 1 --last "$students" \
      --ttl 86400 >"${tokens_file[$alg]}"
  done
fi

if ((keys_compare)); then
  start_keys_http "$keys" jwks.json "$tmp/keys-http.log"
  say "the JWKS at $keys_http_url ($keys_http_tool, pid $keys_http_pid)"
fi

# ---- PostgreSQL ----------------------------------------------------------------------------------------
pg_port=$(pg_free_port)
say "private PostgreSQL in $datadir on 127.0.0.1:$pg_port"
pg_init_cluster "$datadir" "$pg_port"
pg_start "$datadir" "$pglog"
pg_wait_ready "$pg_port"
pg_create_database "$pg_port" attempts
url=$(pg_url "$pg_port" attempts)
pg_load_schema_and_seed "$url"


# ---- the run --------------------------------------------------------------------------------------------
run_start=$(db_now)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A persistence_of=()
# "MODE off|origin|on" -> sums over the rounds' rows of each --cors-compare variant: requests/s,
# server CPU µs per request
declare -A cors_rps=() cors_cpu=()
# "MODE ALG file|url" -> the same over the --keys-compare rows that ran, and how many ran
declare -A keys_rps=() keys_cpu=() keys_n=()
declare -A history_rps=() history_cpu=() history_n=()
last_rps=0 last_cpu_us=0

for mode in "${modes[@]}"; do
  set_durability "$mode"
  persistence_of[$mode]=$(sql "SELECT CASE relpersistence WHEN 'u' THEN 'UNLOGGED' WHEN 'p' THEN 'LOGGED' END
                                 FROM pg_class WHERE oid = 'attempts'::regclass")
  label=$(auth_label "$auth")
  run_pgbench "$mode" "pgbench, $pgbench_clients clients" "$pgbench_clients" "$mode-pgbench-c$pgbench_clients"
  if ((${#modes[@]} > 1)); then
    # The ladder: the rows the README's durability table quotes.
    run_service "$mode" "service, wrk 64 connections, $label" "$mode-wrk-c64" 64 "$wrk_threads" 0 "$auth" wrk
    for r in "${rate_list[@]}"; do
      [[ $r == 15000 ]] || continue
      run_service "$mode" "service, $r req/s over 1000 connections, $label" "$mode-rate$r-c1000" 1000 \
        "$wrk_threads" "$r" "$auth" "$open_loop"
    done
    continue
  fi
  run_pgbench "$mode" "pgbench, 1 client" 1 "$mode-pgbench-c1"
  # The HTTP floor: the same requests' header, GET /healthz (parse, route, answer).
  floor_row=1
  run_service "$mode" "floor: GET /healthz, wrk 64 connections, $label" "$mode-floor-c64" 64 "$wrk_threads" 0 "$auth" wrk
  floor_row=0
  for c in "${conn_list[@]}"; do
    run_service "$mode" "service, wrk $c connections, $label" "$mode-wrk-c$c" "$c" "$wrk_threads" 0 "$auth" wrk
  done
  for a in "${compare_list[@]}"; do
    [[ $a == "$auth" ]] && continue
    run_service "$mode" "service, wrk 64 connections, $(auth_label "$a")" "$mode-wrk-c64-$a" 64 "$wrk_threads" 0 "$a" wrk
  done
  if ((cors_compare)); then
    # The variants alternate, so that the machine's drift weighs on each alike.
    for ((round = 1; round <= cors_rounds; round++)); do
      for variant in off origin on; do
        case $variant in
          off) cors_on=0 send_origin=0 cors_label="CORS off" ;;
          origin) cors_on=0 send_origin=1 cors_label="CORS off, Origin sent" ;;
          on) cors_on=1 send_origin=1 cors_label="CORS on, Origin allowed" ;;
        esac
        last_rps=0 last_cpu_us=0
        run_service "$mode" "service, wrk 64 connections, $label, $cors_label ($round)" \
          "$mode-wrk-c64-cors-$variant-$round" 64 "$wrk_threads" 0 "$auth" wrk
        cors_rps["$mode $variant"]=$(awk -v a="${cors_rps["$mode $variant"]:-0}" -v b="$last_rps" 'BEGIN { print a + b }')
        cors_cpu["$mode $variant"]=$(awk -v a="${cors_cpu["$mode $variant"]:-0}" -v b="$last_cpu_us" 'BEGIN { print a + b }')
      done
    done
    send_origin=0
    cors_on=0
  fi
  if ((keys_compare)); then
    # Keys from the file, then from the URL, alternating, as the CORS rows do.
    for ((round = 1; round <= keys_rounds; round++)); do
      for alg in hs256 rs256; do
        for keys_from in file url; do
          keys_url=
          [[ $keys_from == url ]] && keys_url=$keys_http_url
          last_rps=0 last_cpu_us=0
          run_service "$mode" "service, wrk 64 connections, $(auth_label "$alg"), keys from a $([[ $keys_from == url ]] && echo URL || echo file) ($round)" \
            "$mode-wrk-c64-keys-$alg-$keys_from-$round" 64 "$wrk_threads" 0 "$alg" wrk
          keys_url=
          [[ $last_rps == 0 ]] && continue # the row failed: it is in failures, not in the means
          k="$mode $alg $keys_from"
          keys_rps[$k]=$(awk -v a="${keys_rps[$k]:-0}" -v b="$last_rps" 'BEGIN { print a + b }')
          keys_cpu[$k]=$(awk -v a="${keys_cpu[$k]:-0}" -v b="$last_cpu_us" 'BEGIN { print a + b }')
          keys_n[$k]=$((${keys_n[$k]:-0} + 1))
        done
      done
    done
  fi
  if ((history_compare)); then
    # With and without the answer history, alternating, as the CORS rows do.
    for ((round = 1; round <= history_rounds; round++)); do
      for variant in on off; do
        history_off=$([[ $variant == off ]] && echo 1 || echo 0)
        last_rps=0 last_cpu_us=0
        run_service "$mode" "service, wrk 64 connections, $label, history $variant ($round)" \
          "$mode-wrk-c64-history-$variant-$round" 64 "$wrk_threads" 0 "$auth" wrk
        [[ $last_rps == 0 ]] && continue # the row failed: it is in failures, not in the means
        history_rps["$mode $variant"]=$(awk -v a="${history_rps["$mode $variant"]:-0}" -v b="$last_rps" 'BEGIN { print a + b }')
        history_cpu["$mode $variant"]=$(awk -v a="${history_cpu["$mode $variant"]:-0}" -v b="$last_cpu_us" 'BEGIN { print a + b }')
        history_n["$mode $variant"]=$((${history_n["$mode $variant"]:-0} + 1))
      done
    done
    history_off=0
  fi
  ((history_read)) && run_history_read "$mode" "${rate_list[0]:-10000}"
  for c in "${paced_list[@]}"; do
    for r in "${rate_list[@]}"; do
      run_service "$mode" "service, $r req/s over $c connections, $label" "$mode-rate$r-c$c" "$c" \
        "$wrk_threads" "$r" "$auth" "$open_loop"
    done
  done
  run_service "$mode" "service, 1 connection (wrk -c1 -t1), $label" "$mode-wrk-c1" 1 1 0 "$auth" wrk
  run_pgbench "$mode" "pgbench, $pgbench_clients clients (again, at the end)" "$pgbench_clients" \
    "$mode-pgbench-c$pgbench_clients-end"
done

# ---- the latency-throughput curve, once, in the first mode -----------------------------------------------
svg=
if ((${#curve_list[@]})); then
  set_durability "${modes[0]}"
  for r in "${curve_list[@]}"; do
    run_service "${modes[0]}" "curve: service at $r req/s" "curve-service-$r" 256 "$wrk_threads" "$r" "$auth" \
      "$open_loop" "$curve_s" 1
    run_pgbench "${modes[0]}" "curve: pgbench at $r tps" "$pgbench_clients" "curve-pgbench-$r" "$r"
  done
  curve_data=$tmp/curve.dat
  {
    printf '# who offered achieved p50_us p99_us\n'
    printf '%s\n' "${curve_rows[@]}"
  } >"$curve_data"
  if command -v gnuplot >/dev/null 2>&1; then
    svg=$tmp/latest.svg
    gnuplot <<GNUPLOT 2>"$tmp/gnuplot.log" || failures+=("gnuplot failed (latest-logs/gnuplot.log)")
set terminal svg size 900,560 dynamic font "sans,12" background rgb "white"
set output "$svg"
set title "Latency against throughput, $(auth_label "$auth"), ${persistence_of[${modes[0]}]:-UNLOGGED} table ($started_at)"
set xlabel "achieved requests/s (service) or transactions/s (pgbench)"
set ylabel "latency, ms (log scale)"
set logscale y
set grid
set key top left
set datafile commentschars "#"
plot "< awk '\$1 == \"service\"' $curve_data" using 3:(\$4/1000) with linespoints lw 2 pt 7 title "service p50 ($open_loop, 256 connections)", \
     "< awk '\$1 == \"service\"' $curve_data" using 3:(\$5/1000) with linespoints lw 2 pt 5 title "service p99", \
     "< awk '\$1 == \"pgbench\"' $curve_data" using 3:(\$4/1000) with linespoints lw 2 pt 6 dt 2 title "pgbench p50 (--rate, $pgbench_clients clients)", \
     "< awk '\$1 == \"pgbench\"' $curve_data" using 3:(\$5/1000) with linespoints lw 2 pt 4 dt 2 title "pgbench p99"
GNUPLOT
  else
    failures+=("gnuplot not found: no chart (scripts/install-deps.sh gnuplot-nox)")
  fi
fi

# ---- verification over the whole run ------------------------------------------------------------------------
updated_total=$(rows_updated_since "$run_start")
mismatched=$(sql "SELECT count(*) FROM attempts WHERE updated_at >= '$run_start' AND answers <> '$body_sql'::jsonb")
sample=$(sql "SELECT string_agg(format('id %s = %s', id, answers::text), '; ' ORDER BY id)
                FROM (SELECT id, answers FROM attempts WHERE updated_at >= '$run_start' ORDER BY random() LIMIT 3) s")
untouched_changed=$(sql "SELECT count(*) FROM attempts WHERE (updated_at IS NULL OR updated_at < '$run_start') AND answers <> '{}'::jsonb")
if ((updated_total == 0)); then failures+=("no attempt was updated during the run"); fi
if ((mismatched != 0)); then failures+=("$mismatched updated attempts do not hold the body that was sent"); fi
if ((untouched_changed != 0)); then failures+=("$untouched_changed attempts changed their answers without a new updated_at"); fi

# ---- the report ----------------------------------------------------------------------------------------------
cpu_model=$(sed -n '/^model name/{s/^model name[[:space:]]*: //p;q;}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo none)
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then commit="$commit (with uncommitted changes)"; fi
pg_version=$("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')
wrk_version=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }')
case $open_loop in
  wrk2) open_loop_note="wrk2 ($wrk2_bin): open loop, constant arrival rate, latency from each request's scheduled time (no coordinated omission)" ;;
  k6) open_loop_note="k6 ($k6_bin), constant-arrival-rate executor: open loop" ;;
  *) open_loop_note="no open-loop tool found (wrk2 or k6): paced rows use wrk's delay(), closed loop, which hides queueing delay (coordinated omission)" ;;
esac


# The request path's targets, from this run's rows (HS256 rows against the floor, auth off,
# RS256, pgbench and the paced 15k row), when they were run.
print_targets() {
  local mode=$1 hs=$1-wrk-c64 off=$1-wrk-c64-off rs=$1-wrk-c64-rs256 floor=$1-floor-c64
  local paced=$1-rate15000-c128
  [[ $auth == hs256 && -n ${tag_rps[$hs]:-} ]] || return 0
  # target LABEL VALUE_TEXT MET(0/1)
  target() { printf '| %s | %s | %s |\n' "$1" "$2" "$( (($3)) && echo yes || echo '**no**')"; }
  # check EXPRESSION: 1 if the awk expression holds
  check() { awk "BEGIN { print (($1) ? 1 : 0) }"; }
  printf 'Targets of the request path, from the rows above (one run):\n\n| target | measured | met |\n|---|---|---|\n'
  local pg=${baseline_tps[$mode]:-0}
  target "HS256 PATCH requests/s >= 1.5x pgbench ($pgbench_clients clients)" \
    "$(fmt_int "${tag_rps[$hs]}") / $(fmt_int "$pg") = $(ratio "${tag_rps[$hs]}" "$pg")x" \
    "$(check "${tag_rps[$hs]} >= 1.5 * $pg")"
  if [[ -n ${tag_cpu_us[$floor]:-} ]]; then
    target "server CPU per HS256 PATCH <= 1.5x per GET /healthz" \
      "${tag_cpu_us[$hs]} µs / ${tag_cpu_us[$floor]} µs = $(ratio "${tag_cpu_us[$hs]}" "${tag_cpu_us[$floor]}")x" \
      "$(check "${tag_cpu_us[$hs]} <= 1.5 * ${tag_cpu_us[$floor]}")"
  fi
  if [[ -n ${tag_cpu_us[$off]:-} ]]; then
    target "server CPU with auth on <= auth off + 1.5 µs" \
      "${tag_cpu_us[$hs]} - ${tag_cpu_us[$off]} = $(awk -v a="${tag_cpu_us[$hs]}" -v b="${tag_cpu_us[$off]}" 'BEGIN { printf "%.2f", a - b }') µs" \
      "$(check "${tag_cpu_us[$hs]} <= ${tag_cpu_us[$off]} + 1.5")"
  fi
  if [[ -n ${tag_rps[$rs]:-} ]]; then
    target "RS256 (20,000 students, random order) requests/s >= 0.95x HS256" \
      "$(fmt_int "${tag_rps[$rs]}") / $(fmt_int "${tag_rps[$hs]}") = $(ratio "${tag_rps[$rs]}" "${tag_rps[$hs]}")x" \
      "$(check "${tag_rps[$rs]} >= 0.95 * ${tag_rps[$hs]}")"
  fi
  if [[ -n ${tag_p99_us[$paced]:-} ]]; then
    target "paced 15k requests/s over 128 connections, HS256: p99 <= 5 ms, 0 errors ($open_loop)" \
      "p99 $(ms "${tag_p99_us[$paced]}") ms, $(fmt_int "${tag_rps[$paced]}") requests/s, ${tag_bad[$paced]} errors" \
      "$(check "${tag_p99_us[$paced]} <= 5000 && ${tag_bad[$paced]} == 0")"
  fi
  printf '| server peak RSS, HS256 row (the token cache full: every student verified) | %s MiB | — |\n\n' \
    "$(awk -v k="${tag_rss_kib[$hs]}" 'BEGIN { printf "%.1f", k / 1024 }')"
}

report=$tmp/report.md
{
  printf '## attempts-server vs pgbench — %s\n\n' "$started_at"
  printf -- '- machine: %s cores (nproc), %s GiB RAM, %s; kernel %s; load average at start %s\n' \
    "$(nproc)" "$mem_gib" "${cpu_model:-unknown CPU}" "$(uname -r)" "$load_at_start"
  printf -- '- commit %s; server %s; PostgreSQL %s (config/postgresql.conf, private cluster on 127.0.0.1); wrk %s\n' \
    "$commit" "${server_bin#"$repo"/}" "$pg_version" "$wrk_version"
  printf -- '- server: %s\n' "${server_config:-flags ${server_flags[*]:-server defaults}}"
  printf -- '- each service workload: %ss, server restarted before it (auth rows: after a 5 s warm-up that fills the token cache); pgbench: %ss, -n -M prepared, sql/pgbench/update.sql; ids uniform in 1..%s; with auth on, each request carries its owner'"'"'s token\n' \
    "$duration_s" "$pgbench_s" "$max_id"
  printf -- '- closed-loop rows: wrk (a connection sends its next request after the previous response); paced rows: %s\n' "$open_loop_note"
  printf -- '- context switches: voluntary + involuntary of every server thread (/proc/<pid>/task/*/status); instructions: %s\n\n' \
    "$( ((perf_ok)) && echo "perf stat -e instructions" || echo "not available (no hardware counters on this machine)")"
  for mode in "${modes[@]}"; do
    printf '### durability %s: attempts table %s, synchronous_commit %s\n\n' "$mode" "${persistence_of[$mode]}" \
      "$([[ $mode == async ]] && echo off || echo on)"
    printf '| workload | tool | requests/s | vs pgbench %s clients | p50 ms | p99 ms | max ms | non-2xx / errors | server peak RSS MiB | server CPU s | server CPU µs / request | server context switches / req | server instructions / req | PostgreSQL CPU s | rows updated (expected) |\n' "$pgbench_clients"
    printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    for i in "${!r_name[@]}"; do
      [[ ${r_mode[i]} == "$mode" ]] || continue
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "${r_name[i]}" "${r_tool[i]}" "$(fmt_int "${r_rps[i]}")" "$(ratio "${r_rps[i]}" "${baseline_tps[$mode]:-0}")" \
        "$(ms "${r_p50[i]}")" "$(ms "${r_p99[i]}")" "$(ms "${r_max[i]}")" "${r_bad[i]:-—}" \
        "${r_rss[i]:-—}" "${r_cpu[i]:-—}" "${r_cpu_us[i]:-—}" "${r_cs[i]:-—}" "${r_instr[i]:-—}" \
        "${r_pgcpu[i]:-—}" "${r_rows[i]:-—}"
    done
    printf '\n'
    print_targets "$mode"
    if [[ -n ${cors_rps["$mode on"]:-} ]]; then
      mean() { awk -v v="$1" -v n="$cors_rounds" 'BEGIN { printf "%.2f", v / n }'; }
      printf 'CORS at 64 connections (%s; means of %s rows each, run in turn): requests/s %s with CORS off, %s off with an Origin sent, %s on with the Origin allowed: on / off with Origin = %s, on / off = %s. Server CPU µs per request %s, %s, %s: on / off with Origin = %s, on / off = %s.\n\n' \
        "$(auth_label "$auth")" "$cors_rounds" \
        "$(fmt_int "$(mean "${cors_rps["$mode off"]}")")" "$(fmt_int "$(mean "${cors_rps["$mode origin"]}")")" \
        "$(fmt_int "$(mean "${cors_rps["$mode on"]}")")" \
        "$(ratio "${cors_rps["$mode on"]}" "${cors_rps["$mode origin"]}")" \
        "$(ratio "${cors_rps["$mode on"]}" "${cors_rps["$mode off"]}")" \
        "$(mean "${cors_cpu["$mode off"]}")" "$(mean "${cors_cpu["$mode origin"]}")" "$(mean "${cors_cpu["$mode on"]}")" \
        "$(ratio "${cors_cpu["$mode on"]}" "${cors_cpu["$mode origin"]}")" \
        "$(ratio "${cors_cpu["$mode on"]}" "${cors_cpu["$mode off"]}")"
    fi
    if [[ -n ${history_n["$mode on"]:-} && -n ${history_n["$mode off"]:-} ]]; then
      hmean() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.2f", s / n }'; }
      hon=$(hmean "${history_rps["$mode on"]}" "${history_n["$mode on"]}")
      hoff=$(hmean "${history_rps["$mode off"]}" "${history_n["$mode off"]}")
      con=$(hmean "${history_cpu["$mode on"]}" "${history_n["$mode on"]}")
      coff=$(hmean "${history_cpu["$mode off"]}" "${history_n["$mode off"]}")
      printf 'Answer history at 64 connections (%s; means of %s and %s rows, run in turn): requests/s %s with --history on, %s off: on / off = %s, on / pgbench %s clients = %s. Server CPU µs per request %s on, %s off: on − off = %s µs.\n\n' \
        "$(auth_label "$auth")" "${history_n["$mode on"]}" "${history_n["$mode off"]}" \
        "$(fmt_int "$hon")" "$(fmt_int "$hoff")" "$(ratio "$hon" "$hoff")" "$pgbench_clients" \
        "$(ratio "$hon" "${baseline_tps[$mode]:-0}")" "$con" "$coff" \
        "$(awk -v a="$con" -v b="$coff" 'BEGIN { printf "%+.2f", a - b }')"
    fi
    if [[ -n ${history_read_line[$mode]:-} ]]; then
      printf '%s\n\n' "${history_read_line[$mode]}"
    fi
    if ((keys_compare && ${#modes[@]} == 1)); then
      # kmean MODE ALG SOURCE rps|cpu: the mean over the rows that ran, or — when none did
      kmean() {
        local k="$1 $2 $3" sum
        if [[ $4 == rps ]]; then sum=${keys_rps[$k]:-0}; else sum=${keys_cpu[$k]:-0}; fi
        awk -v s="$sum" -v n="${keys_n[$k]:-0}" 'BEGIN { if (n > 0) printf "%.2f", s / n; else printf "—" }'
      }
      # shellcheck disable=SC2016 # backquotes are Markdown
      printf 'Keys at 64 connections: from the JWKS file (`--jwks`) or from a URL (`--jwks-url %s`, the same file served by %s on 127.0.0.1, fetched off the request path at start); means of %s rows each, run in turn:\n\n' \
        "$keys_http_url" "$keys_http_tool" "$keys_rounds"
      printf '| auth | requests/s, file | requests/s, URL | URL / file | server CPU µs / request, file | server CPU µs / request, URL | URL / file |\n'
      printf '|---|---:|---:|---:|---:|---:|---:|\n'
      for alg in hs256 rs256; do
        rf=$(kmean "$mode" "$alg" file rps) ru=$(kmean "$mode" "$alg" url rps)
        cf=$(kmean "$mode" "$alg" file cpu) cu=$(kmean "$mode" "$alg" url cpu)
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(auth_label "$alg")" "$(fmt_int "$rf")" "$(fmt_int "$ru")" \
          "$(ratio "$ru" "$rf")" "$cf" "$cu" "$(ratio "$cu" "$cf")"
      done
      printf '\n'
    fi
  done
  if ((${#curve_rows[@]})); then
    printf '### latency against throughput (%s, 256 connections; pgbench --rate, %s clients)\n\n' "$open_loop" "$pgbench_clients"
    printf '| who | offered /s | achieved /s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|\n'
    for row in "${curve_rows[@]}"; do
      read -r who offered achieved p50 p99 <<<"$row"
      printf '| %s | %s | %s | %s | %s |\n' "$who" "$offered" "$(fmt_int "$achieved")" "$(ms "$p50")" "$(ms "$p99")"
    done
    [[ -n $svg ]] && printf '\nChart: bench/results/latest.svg\n'
    printf '\n'
  fi
  # shellcheck disable=SC2016 # backquotes are Markdown
  printf 'Verification: %s attempts updated since the run started; %s of them differ from the body sent (`%s`); %s attempts changed without a new `updated_at`. Sample: %s.\n' \
    "$updated_total" "$mismatched" "$body_sql" "$untouched_changed" "${sample:-none}"
  if ((${#failures[@]})); then
    printf '\n**Checks failed:**\n\n'
    printf -- '- %s\n' "${failures[@]}"
  else
    printf '\nAll checks passed.\n'
  fi
} >"$report"

mkdir -p "$results_dir"
cp "$report" "$results_dir/latest.md"
[[ -n $svg && -s $svg ]] && cp "$svg" "$results_dir/latest.svg"
cat "$report"
say "tables written to bench/results/latest.md (logs in bench/results/latest-logs/)"
if ((${#failures[@]})); then exit 1; fi
exit 0
