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
#   3. the same at 64 connections with each other mode of --auth-compare (auth off, ES256), and
#      with --cors-compare, in turn: CORS off; CORS off with every request carrying an Origin;
#      CORS on (--cors-origin) with every request from that origin
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
#   --auth MODE             off, hs256 or es256: how the service rows authenticate
#                           [BENCH_AUTH, default hs256]
#   --auth-compare "M ..."  extra rows at 64 connections with these modes [BENCH_AUTH_COMPARE,
#                           default "off es256"]; "" skips them
#   --cors-compare          more rows at 64 connections, one after the other, --cors-rounds
#                           times: the server without CORS; the same with every request carrying
#                           an Origin (what a page sends); the server with --cors-origin and
#                           every request from that origin. Prints the means and ratios of
#                           requests/s and server CPU per request [BENCH_CORS_COMPARE=1]
#   --cors-rounds N         rounds of --cors-compare [BENCH_CORS_ROUNDS, default 3]
#   --rates "A B"           paced total requests/s [BENCH_RATES, default "10000 15000"]; "" skips
#   --paced-connections "A B"  connections of the paced runs [BENCH_PACED_CONNECTIONS,
#                           default "1000 5000"]
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

# ---- options -------------------------------------------------------------------------------------
duration=${BENCH_DURATION:-10s}
pgbench_duration=${BENCH_PGBENCH_DURATION:-10s}
pgbench_clients=${BENCH_PGBENCH_CLIENTS:-16}
connections=${BENCH_CONNECTIONS:-64 256}
auth=${BENCH_AUTH:-hs256}
auth_compare=${BENCH_AUTH_COMPARE-off es256}
cors_compare=${BENCH_CORS_COMPARE:-0}
cors_rounds=${BENCH_CORS_ROUNDS:-3}
rates=${BENCH_RATES-10000 15000}
paced_connections=${BENCH_PACED_CONNECTIONS:-1000 5000}
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

# 15, 15s, 2m, 1h -> seconds
to_seconds() {
  local v=$1 n
  [[ $v =~ ^([0-9]+)(s|m|h)?$ ]] || return 1
  n=$((10#${BASH_REMATCH[1]}))
  case ${BASH_REMATCH[2]} in
    m) n=$((n * 60)) ;;
    h) n=$((n * 3600)) ;;
  esac
  ((n >= 1)) || return 1
  printf '%s\n' "$n"
}
is_count() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1)); }
is_auth() { [[ $1 == off || $1 == hs256 || $1 == es256 ]]; }

duration_s=$(to_seconds "$duration") || die "--duration: '$duration' is not a duration like 10s or 1m" 2
pgbench_s=$(to_seconds "$pgbench_duration") || die "--pgbench-duration: '$pgbench_duration' is not a duration like 10s or 1m" 2
curve_s=$(to_seconds "$curve_duration") || die "--curve-duration: '$curve_duration' is not a duration like 5s" 2
is_count "$pgbench_clients" || die "--pgbench-clients: '$pgbench_clients' is not a positive integer" 2
is_count "$wrk_threads" || die "--wrk-threads: '$wrk_threads' is not a positive integer" 2
is_count "$cors_rounds" || die "--cors-rounds: '$cors_rounds' is not a positive integer" 2
is_auth "$auth" || die "--auth: '$auth' is not off, hs256 or es256" 2
read -r -a conn_list <<<"$connections"
read -r -a rate_list <<<"$rates"
read -r -a paced_list <<<"$paced_connections"
read -r -a curve_list <<<"$curve_rates"
read -r -a compare_list <<<"$auth_compare"
for c in "${conn_list[@]}" "${paced_list[@]}"; do is_count "$c" || die "connections: '$c' is not a positive integer" 2; done
for r in "${rate_list[@]}" "${curve_list[@]}"; do is_count "$r" || die "rates: '$r' is not a positive integer" 2; done
for m in "${compare_list[@]}"; do is_auth "$m" || die "--auth-compare: '$m' is not off, hs256 or es256" 2; done
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

stop_server() {
  local pid=$server_pid i
  [[ -n $pid ]] || return 0
  server_pid=
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do # the server's --shutdown-timeout is 10 s
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "attempts-server $pid did not stop after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  local status=0
  wait "$pid" 2>/dev/null || status=$?
  return "$status"
}

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

# Runs a command in the background and waits for it, so that INT/TERM reach the trap at once
# (bash runs traps only between foreground commands); cleanup stops child_pid. Bounded by timeout.
run_bounded() {
  local limit=$1 out=$2 status=0
  shift 2
  timeout --kill-after=10 "$limit" "$@" >"$out" 2>&1 &
  child_pid=$!
  wait "$child_pid" || status=$?
  child_pid=
  return "$status"
}

# ---- keys and tokens ---------------------------------------------------------------------------------
keys=$tmp/keys
declare -A tokens_file=()
if ((server_has_auth)); then
  say "development keys and one token per student (attempts-token)"
  "$token_bin" keygen "$keys" >/dev/null
  for alg in hs256 es256; do
    tokens_file[$alg]=$tmp/tokens-$alg.txt
    "$token_bin" sign-range --keys "$keys" --kid "dev-$alg" --first 1 --last "$students" \
      --ttl 86400 >"${tokens_file[$alg]}"
  done
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

sql() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$url" -c "$1"; }

# Puts the table in the persistence a durability mode needs, and the database's
# synchronous_commit in what pgbench should run with (the server sets its own sessions).
set_durability() {
  local mode=$1
  case $mode in
    unlogged) "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" -f "$repo/sql/unlogged.sql" >/dev/null 2>&1 ||
      sql "ALTER TABLE attempts SET UNLOGGED; ALTER TABLE attempt_starts SET UNLOGGED" ;;
    async | sync) "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" -f "$repo/sql/durable.sql" >/dev/null ;;
  esac
  local commit=on
  [[ $mode == async ]] && commit=off
  sql "ALTER DATABASE attempts SET synchronous_commit = $commit"
}

# CPU ticks (utime+stime) of PostgreSQL: the postmaster, its live children, and the children it
# has already reaped (cutime+cstime), so backends that exited in between still count.
pg_cpu_ticks() {
  local pm
  pm=$(head -n 1 "$datadir/postmaster.pid")
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '
    { pid = $1; s = $0; sub(/^.*\) /, "", s); n = split(s, f, " ")
      if (n < 15) next
      if (pid == pm) total += f[12] + f[13] + f[14] + f[15]
      else if (f[2] == pm) total += f[12] + f[13] }
    END { printf "%d\n", total }'
}
proc_cpu_ticks() {
  awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); printf "%d\n", f[12] + f[13] }' "/proc/$1/stat"
}
# Context switches of every thread of a process so far, voluntary and involuntary. The process's
# own status file counts only its main thread; each thread has its own under task/.
proc_switches() {
  awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s + 0 }' \
    "/proc/$1"/task/*/status
}
proc_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
ticks_to_s() { awk -v t="$1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }'; }
db_now() { sql "SELECT clock_timestamp()"; }
rows_updated_since() { sql "SELECT count(*) FROM attempts WHERE updated_at >= '$1'"; }
# Distinct ids that n uniform draws from 1..max_id hit on average.
expected_distinct() { awk -v n="$1" -v m="$max_id" 'BEGIN { printf "%d\n", m * (1 - exp(n * log(1 - 1 / m))) + 0.5 }'; }

# ---- results -------------------------------------------------------------------------------------------
r_mode=() r_name=() r_tool=() r_rps=() r_p50=() r_p99=() r_max=() r_bad=() r_rss=() r_cpu=() r_cpu100k=()
r_cs=() r_instr=() r_pgcpu=() r_rows=()
failures=()
declare -A baseline_tps=()
curve_rows=()

us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

# add_row MODE NAME TOOL RPS P50_US P99_US MAX_US BAD RSS CPU CPU100K CS INSTR PGCPU ROWS
add_row() {
  r_mode+=("$1") r_name+=("$2") r_tool+=("$3") r_rps+=("$4") r_p50+=("$5") r_p99+=("$6")
  r_max+=("$7") r_bad+=("$8") r_rss+=("$9") r_cpu+=("${10}") r_cpu100k+=("${11}") r_cs+=("${12}")
  r_instr+=("${13}") r_pgcpu+=("${14}") r_rows+=("${15}")
}

# check_rows NAME T0 OK_REQUESTS IN_FLIGHT_BOUND: counts the rows updated since T0, compares them
# with the distinct ids that many successful requests should hit, sets rows_result to
# "updated (expected)" and records a failure when they disagree. (Not in $(...): it must be able
# to append to failures.)
rows_result=
check_rows() {
  local name=$1 t0=$2 ok=$3 slack=$4 got lo hi
  got=$(rows_updated_since "$t0")
  lo=$(expected_distinct "$ok")
  hi=$(expected_distinct $((ok + slack)))
  # Requests still in flight when the load generator stopped may have been saved too (slack).
  # 1% + 5 rows either way is several standard deviations of the distinct count.
  if ((got * 100 < lo * 99 - 500 || got * 100 > hi * 101 + 500)); then
    failures+=("$name: $got rows updated, expected about $lo for $ok successful requests")
  fi
  rows_result="$got ($lo)"
}

# ---- pgbench --------------------------------------------------------------------------------------------
# run_pgbench MODE NAME CLIENTS TAG [RATE]: a row, or with RATE a point of pgbench's curve.
run_pgbench() {
  local mode=$1 name=$2 clients=$3 tag=$4 rate=${5:-0} jobs=2 out t0 pg0 pg1 tps processed failed lat
  ((clients < jobs)) && jobs=$clients
  out=$tmp/$tag.out
  local seconds=$pgbench_s
  local -a rate_args=()
  if ((rate > 0)); then seconds=$curve_s; rate_args=(--rate "$rate"); fi
  say "$name: pgbench -c $clients -j $jobs -T $seconds ${rate_args[*]}"
  t0=$(db_now)
  pg0=$(pg_cpu_ticks)
  if ! run_bounded $((seconds + 60)) "$out" \
    "$PG_BIN/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -n -M prepared \
    -c "$clients" -j "$jobs" -T "$seconds" "${rate_args[@]}" -D "body=$body_wire" \
    -f "$repo/sql/pgbench/update.sql" -l --log-prefix="$tmp/$tag-txlog" attempts; then
    cat "$out" >&2
    failures+=("$name: pgbench failed")
    ((rate > 0)) || add_row "$mode" "$name" pgbench "failed" "" "" "" "" "—" "—" "—" "—" "—" "" ""
    return 0
  fi
  sleep 0.3 # let the postmaster reap the exiting backends, so their CPU is counted
  pg1=$(pg_cpu_ticks)
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | tail -n 1)
  processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
  # Per-transaction log: client tx_no latency_us script epoch epoch_us [schedule_lag_us]. With
  # --rate the latency counts from the scheduled start (lag included): open-loop, like wrk2.
  lat=$(cat "$tmp/$tag-txlog".* | awk '{ print $3 }' | sort -n | awk '
    { v[NR] = $1 }
    END { if (NR == 0) { print "0 0 0"; exit }
          i50 = int((NR * 50 + 99) / 100); i99 = int((NR * 99 + 99) / 100)
          print v[i50], v[i99], v[NR] }')
  rm -f "$tmp/$tag-txlog".*
  read -r p50 p99 pmax <<<"$lat"
  if ((rate > 0)); then
    curve_rows+=("pgbench $rate $tps $p50 $p99")
    say "$name: $tps tps"
    return 0
  fi
  check_rows "$name" "$t0" "${processed:-0}" "$clients"
  add_row "$mode" "$name" pgbench "$tps" "$p50" "$p99" "$pmax" "${failed:-0} failed" "—" "—" "—" "—" "—" \
    "$(ticks_to_s $((pg1 - pg0)))" "$rows_result"
  if ((${failed:-0} > 0)); then failures+=("$name: $failed failed transactions"); fi
  say "$name: $tps tps"
  if [[ -z ${baseline_tps[$mode]:-} ]]; then baseline_tps[$mode]=$tps; fi
}

# ---- the service ----------------------------------------------------------------------------------------
server_config=
# With cors_on=1 the server allows bench_origin; with send_origin=1 every request comes from it,
# as from a page.
cors_on=0
send_origin=0
readonly bench_origin=http://127.0.0.1:18700

# start_server LOG MODE AUTH
start_server() {
  local log=$1 mode=$2 auth_mode=$3 port i code
  local -a flags=("${server_flags[@]}")
  if ((server_has_auth)); then
    if [[ $auth_mode == off ]]; then
      flags+=(--auth none)
    else
      # Each event loop keeps every student's token: the load sends each from every connection.
      flags+=(--jwks "$keys/jwks.json" --token-cache-size "$students")
    fi
  fi
  if ((server_has_durability)); then flags+=(--durability "$mode"); fi
  if ((cors_on)); then flags+=(--cors-origin "$bench_origin"); fi
  port=$(pg_free_port)
  "$server_bin" --listen "127.0.0.1:$port" --database-url "$url" "${flags[@]}" >>"$log" 2>&1 &
  server_pid=$!
  server_url=http://127.0.0.1:$port
  for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      server_pid=
      tail -n 20 "$log" >&2
      die "attempts-server exited during start-up (log above)"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "$server_url/readyz" 2>/dev/null) || code=000
    [[ $code == 200 ]] && break
    sleep 0.1
  done
  [[ $code == 200 ]] || die "attempts-server on $server_url not ready after 20 s (log: $log)"
  # One request end to end before measuring: the same PATCH wrk sends.
  local -a auth_header=()
  if [[ $auth_mode != off ]]; then
    auth_header=(-H "Authorization: Bearer $(sed -n "$((1 + (max_id - 1) % students))p" "${tokens_file[$auth_mode]}")")
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    "${auth_header[@]}" --data '{"answers": {"1": [1], "2": [2], "3": [3], "4": [4]}}' \
    "$server_url/attempts/$max_id")
  [[ $code == 204 ]] || die "PATCH $server_url/attempts/$max_id answered $code, not 204"
}

# The load generator's command for one workload, in `load_cmd`.
# load_command TOOL CONNECTIONS THREADS RATE SECONDS
load_command() {
  local tool=$1 conns=$2 wthreads=$3 rate=$4 seconds=$5
  case $tool in
    wrk2) load_cmd=("$wrk2_bin" -t"$wthreads" -c"$conns" -d"${seconds}s" -R"$rate" --timeout 10s
      -s "$repo/bench/patch.lua" "$server_url") ;;
    k6) load_cmd=("$k6_bin" run --no-usage-report --quiet -e BASE_URL="$server_url" -e RATE="$rate"
      -e DURATION="${seconds}s" -e P99_MS=100000 -e PRE_ALLOCATED_VUS="$conns" -e MAX_VUS="$conns"
      --summary-export "$tmp/k6-summary.json" "$repo/k6/attempts.js") ;;
    *) load_cmd=(wrk -t"$wthreads" -c"$conns" -d"${seconds}s" --timeout 10s -s "$repo/bench/patch.lua" "$server_url") ;;
  esac
}

# The bench: line of patch.lua, or the same fields from k6's summary.
load_result() {
  local tool=$1 out=$2
  if [[ $tool == k6 ]]; then
    python3 - "$tmp/k6-summary.json" <<'PY' 2>/dev/null || true
import json, sys
s = json.load(open(sys.argv[1]))["metrics"]
d = s["http_req_duration"]
reqs = s["http_reqs"]["count"]
failed = int(round(s["http_req_failed"]["value"] * reqs))
print("bench: requests=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d non2xx=%d connect_errors=0 read_errors=0 write_errors=0 timeout_errors=0"
      % (reqs, s["http_reqs"]["rate"], d["med"] * 1000, d["p(99)"] * 1000, d["max"] * 1000, failed))
PY
  else
    grep '^bench: ' "$out" | tail -n 1 || true
  fi
}

cache_counts() { curl -s "$server_url/metrics" | awk '/^attempts_auth_token_cache_(hits|misses)_total / { printf "%s ", $2 } END { print "" }'; }

# run_service MODE NAME TAG CONNECTIONS WRK_THREADS RATE(0 = closed loop) AUTH TOOL [SECONDS] [CURVE]
run_service() {
  local mode=$1 name=$2 tag=$3 conns=$4 wthreads=$5 rate=$6 auth_mode=$7 tool=$8 seconds=${9:-$duration_s}
  local curve=${10:-0} out log t0 pg0 pg1 cpu0 cpu1 cs0 cs1 hwm line perf_out=
  ((wthreads > conns)) && wthreads=$conns
  out=$tmp/$tag.out
  log=$tmp/server-$tag.log
  start_server "$log" "$mode" "$auth_mode"
  if [[ -z $server_config ]]; then
    # Its effective configuration, without what changes per run.
    server_config=$(sed -n 's/.*attempts-server starting: //p' "$log" | sed -n 1p |
      sed -E 's/(^| )(listen|database-url|jwks|auth|durability|cors-origin)=[^ ]*//g; s/^ //')
  fi
  local -a env_args=(-u RATE -u PACING -u THREADS -u CONNECTIONS -u TOKENS -u ORIGIN
    MAX_ID="$max_id" STUDENTS="$students")
  [[ $auth_mode != off ]] && env_args+=(TOKENS="${tokens_file[$auth_mode]}")
  ((send_origin)) && env_args+=(ORIGIN="$bench_origin")
  if [[ $auth_mode != off ]]; then
    # A student sends the same token for an hour: the rows measure the cache's steady state, so
    # the server verifies each student's token once before the measurement starts.
    say "$name: warming the token cache"
    load_command wrk "$conns" "$wthreads" 0 5
    run_bounded 70 "$tmp/$tag-warmup.out" env "${env_args[@]}" "${load_cmd[@]}" || true
  fi
  local hits0 misses0 hits1 misses1
  read -r hits0 misses0 <<<"$(cache_counts)"
  if [[ $tool == wrk && $rate -gt 0 ]]; then
    env_args+=(RATE="$rate" THREADS="$wthreads" CONNECTIONS="$conns" PACING=schedule)
  fi
  if [[ $tool == k6 && $auth_mode != off ]]; then env_args+=(TOKENS="${tokens_file[$auth_mode]}"); fi
  load_command "$tool" "$conns" "$wthreads" "$rate" "$seconds"
  say "$name: ${load_cmd[*]:0:6}"
  t0=$(db_now)
  pg0=$(pg_cpu_ticks)
  cpu0=$(proc_cpu_ticks "$server_pid")
  cs0=$(proc_switches "$server_pid")
  local perf_pid=
  if ((perf_ok)); then
    perf_out=$tmp/$tag-perf.out
    perf stat -x, -e instructions -p "$server_pid" -o "$perf_out" -- sleep "$seconds" &
    perf_pid=$!
  fi
  local status=0
  run_bounded $((seconds + 60)) "$out" env "${env_args[@]}" "${load_cmd[@]}" || status=$?
  if [[ -n $perf_pid ]]; then wait "$perf_pid" 2>/dev/null || true; fi
  cpu1=$(proc_cpu_ticks "$server_pid")
  cs1=$(proc_switches "$server_pid")
  hwm=$(proc_hwm_kb "$server_pid")
  read -r hits1 misses1 <<<"$(cache_counts)"
  if ! stop_server; then failures+=("$name: attempts-server did not exit cleanly (log: latest-logs/server-$tag.log)"); fi
  sleep 0.3
  pg1=$(pg_cpu_ticks)
  line=$(load_result "$tool" "$out")
  # k6 exits 99 when a threshold is crossed, which is measured here, not judged by it.
  if { ((status != 0)) && ! [[ $tool == k6 && $status == 99 ]]; } || [[ -z $line ]]; then
    cat "$out" >&2
    failures+=("$name: $tool failed (status $status)")
    ((curve)) || add_row "$mode" "$name" "$tool" "failed" "" "" "" "" "" "" "" "" "" "" ""
    return 0
  fi
  local -A m=()
  local kv
  # shellcheck disable=SC2086 # split the key=value words
  for kv in ${line#bench: }; do m[${kv%%=*}]=${kv#*=}; done
  local requests=${m[requests]} non2xx=${m[non2xx]} errors cpu_s per100k cs instr=—
  errors=$((m[connect_errors] + m[read_errors] + m[write_errors] + m[timeout_errors]))
  if ((curve)); then
    curve_rows+=("service $rate ${m[rps]} ${m[p50_us]} ${m[p99_us]}")
    say "$name: ${m[rps]} requests/s"
    return 0
  fi
  cpu_s=$(ticks_to_s $((cpu1 - cpu0)))
  per100k=$(awk -v c="$cpu_s" -v n="$requests" 'BEGIN { printf "%.2f", (n > 0 ? c * 100000 / n : 0) }')
  cs=$(awk -v c=$((cs1 - cs0)) -v n="$requests" 'BEGIN { printf "%.3f", (n > 0 ? c / n : 0) }')
  if [[ -n $perf_out && -s $perf_out ]]; then
    instr=$(awk -F, -v n="$requests" '$3 ~ /instructions/ && $1 ~ /^[0-9]+$/ { printf "%d", (n > 0 ? $1 / n : 0) }' "$perf_out")
    instr=${instr:-—}
  fi
  local hit_note=""
  if [[ -n $hits1 && -n $hits0 && $auth_mode != off ]]; then
    hit_note=$(awk -v h=$((hits1 - hits0)) -v m=$((misses1 - misses0)) 'BEGIN { if (h + m > 0) printf ", cache hits %.2f%%", 100 * h / (h + m) }')
  fi
  check_rows "$name" "$t0" $((requests - non2xx)) "$conns"
  last_rps=${m[rps]}
  last_cpu100k=$per100k
  add_row "$mode" "$name$hit_note" "$tool" "${m[rps]}" "${m[p50_us]}" "${m[p99_us]}" "${m[max_us]}" \
    "$non2xx / $errors" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')" "$cpu_s" "$per100k" "$cs" \
    "$instr" "$(ticks_to_s $((pg1 - pg0)))" "$rows_result"
  if ((non2xx > 0 || errors > 0)); then failures+=("$name: $non2xx non-2xx responses, $errors socket errors"); fi
  say "$name: ${m[rps]} requests/s"
}

auth_label() { case $1 in off) printf 'auth off' ;; hs256) printf 'HS256' ;; es256) printf 'ES256' ;; esac; }

# ---- the run --------------------------------------------------------------------------------------------
run_start=$(db_now)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A persistence_of=()
# "MODE off|origin|on" -> sums over the rounds' rows of each --cors-compare variant: requests/s,
# server CPU s / 100k requests
declare -A cors_rps=() cors_cpu=()
last_rps=0 last_cpu100k=0

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
        last_rps=0 last_cpu100k=0
        run_service "$mode" "service, wrk 64 connections, $label, $cors_label ($round)" \
          "$mode-wrk-c64-cors-$variant-$round" 64 "$wrk_threads" 0 "$auth" wrk
        cors_rps["$mode $variant"]=$(awk -v a="${cors_rps["$mode $variant"]:-0}" -v b="$last_rps" 'BEGIN { print a + b }')
        cors_cpu["$mode $variant"]=$(awk -v a="${cors_cpu["$mode $variant"]:-0}" -v b="$last_cpu100k" 'BEGIN { print a + b }')
      done
    done
    send_origin=0
    cors_on=0
  fi
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

fmt_int() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%d", v + 0.5; else printf "%s", v }'; }
ratio() { awk -v v="$1" -v b="$2" 'BEGIN { if (v ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", v / b; else printf "—" }'; }
ms() { if [[ $1 =~ ^[0-9]+$ ]]; then us_to_ms "$1"; else printf '%s' "${1:-—}"; fi; }

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
    printf '| workload | tool | requests/s | vs pgbench %s clients | p50 ms | p99 ms | max ms | non-2xx / errors | server peak RSS MiB | server CPU s | server CPU s / 100k req | server context switches / req | server instructions / req | PostgreSQL CPU s | rows updated (expected) |\n' "$pgbench_clients"
    printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    for i in "${!r_name[@]}"; do
      [[ ${r_mode[i]} == "$mode" ]] || continue
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "${r_name[i]}" "${r_tool[i]}" "$(fmt_int "${r_rps[i]}")" "$(ratio "${r_rps[i]}" "${baseline_tps[$mode]:-0}")" \
        "$(ms "${r_p50[i]}")" "$(ms "${r_p99[i]}")" "$(ms "${r_max[i]}")" "${r_bad[i]:-—}" \
        "${r_rss[i]:-—}" "${r_cpu[i]:-—}" "${r_cpu100k[i]:-—}" "${r_cs[i]:-—}" "${r_instr[i]:-—}" \
        "${r_pgcpu[i]:-—}" "${r_rows[i]:-—}"
    done
    printf '\n'
    if [[ -n ${cors_rps["$mode on"]:-} ]]; then
      mean() { awk -v v="$1" -v n="$cors_rounds" 'BEGIN { printf "%.2f", v / n }'; }
      printf 'CORS at 64 connections (%s; means of %s rows each, run in turn): requests/s %s with CORS off, %s off with an Origin sent, %s on with the Origin allowed: on / off with Origin = %s, on / off = %s. Server CPU s per 100k requests %s, %s, %s: on / off with Origin = %s, on / off = %s.\n\n' \
        "$(auth_label "$auth")" "$cors_rounds" \
        "$(fmt_int "$(mean "${cors_rps["$mode off"]}")")" "$(fmt_int "$(mean "${cors_rps["$mode origin"]}")")" \
        "$(fmt_int "$(mean "${cors_rps["$mode on"]}")")" \
        "$(ratio "${cors_rps["$mode on"]}" "${cors_rps["$mode origin"]}")" \
        "$(ratio "${cors_rps["$mode on"]}" "${cors_rps["$mode off"]}")" \
        "$(mean "${cors_cpu["$mode off"]}")" "$(mean "${cors_cpu["$mode origin"]}")" "$(mean "${cors_cpu["$mode on"]}")" \
        "$(ratio "${cors_cpu["$mode on"]}" "${cors_cpu["$mode origin"]}")" \
        "$(ratio "${cors_cpu["$mode on"]}" "${cors_cpu["$mode off"]}")"
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
