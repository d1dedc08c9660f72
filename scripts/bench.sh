#!/usr/bin/env bash
# One-command benchmark: the service against pgbench running the service's own UPDATE, on the
# same private PostgreSQL, in one run. Prints one Markdown table (stdout) and writes it to
# bench/results/latest.md; progress goes to stderr.
#
#   scripts/bench.sh                                  # defaults: 15 s per workload, ~3 min in all
#   scripts/bench.sh --duration 5s --pgbench-duration 5s
#   scripts/bench.sh --pool-size 8 --threads 2 --connections "64 256 512" --rates "10000 15000"
#
# Steps: install deps (scripts/install-deps.sh), build the release preset's server, start a
# throwaway PostgreSQL (scripts/lib/pg.sh, config/postgresql.conf) in a mktemp dir on 127.0.0.1,
# load sql/schema.sql + sql/seed.sql, then run
#   1. pgbench -n -M prepared -f sql/pgbench/update.sql, N clients (-j 2), then 1 client
#   2. attempts-server under wrk, closed loop, at each --connections count
#   3. paced wrk runs (bench/patch.lua, delay()) at each --rates rate
#   4. one connection, one request at a time (wrk -c1 -t1)
#   5. pgbench with N clients again, to show how much the machine drifted during the run
# The server is restarted before each service workload, so its peak RSS and CPU are per workload.
# After each workload the rows it updated are counted (updated_at >= its start) and compared with
# the number of distinct ids that many uniform random requests should hit; at the end every row
# updated during the run must hold exactly the body that was sent.
#
# Options (environment variable in brackets; a flag beats the environment):
#   --duration D            each service workload, e.g. 15s, 1m [BENCH_DURATION, default 15s]
#   --pgbench-duration D    each pgbench run [BENCH_PGBENCH_DURATION, default 15s]
#   --pgbench-clients N     clients of the baseline pgbench [BENCH_PGBENCH_CLIENTS, default 16]
#   --connections "A B"     closed-loop wrk connection counts [BENCH_CONNECTIONS, default "64 256"]
#   --rates "A B"           paced total requests/s [BENCH_RATES, default "10000 15000"]; "" skips
#   --paced-connections N   wrk connections of the paced runs [BENCH_PACED_CONNECTIONS, default 256]
#   --wrk-threads N         wrk -t (capped at the connection count) [BENCH_WRK_THREADS, default 2]
#   --pool-size N           attempts-server --pool-size [BENCH_POOL_SIZE, default: the server's]
#   --threads N             attempts-server --threads [BENCH_THREADS, default: the server's]
#   --max-batch N           attempts-server --max-batch [BENCH_MAX_BATCH, default: the server's]
#   --durable               reserved: applies sql/durable.sql after the seed and runs with
#                           synchronous_commit = on; exits 2 while that file does not exist
#   --no-build              use the existing build/release/attempts-server
#   --no-install            do not run scripts/install-deps.sh
#   -h, --help              this text
#
# Exit status: 0 when every check passed, 1 when a workload or a check failed (the table is
# still written), 2 for a usage error or an unavailable mode.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
say() { printf '==> bench.sh: %s\n' "$*" >&2; }
die() { printf 'bench.sh: error: %s\n' "$1" >&2; exit "${2:-1}"; }

# ---- options -------------------------------------------------------------------------------------
duration=${BENCH_DURATION:-15s}
pgbench_duration=${BENCH_PGBENCH_DURATION:-15s}
pgbench_clients=${BENCH_PGBENCH_CLIENTS:-16}
connections=${BENCH_CONNECTIONS:-64 256}
rates=${BENCH_RATES-10000 15000}
paced_connections=${BENCH_PACED_CONNECTIONS:-256}
wrk_threads=${BENCH_WRK_THREADS:-2}
pool_size=${BENCH_POOL_SIZE:-}
threads=${BENCH_THREADS:-}
max_batch=${BENCH_MAX_BATCH:-}
durable=${BENCH_DURABLE:-0}
do_build=1
do_install=1

need_arg() { (($# >= 2)) || die "$1 needs a value" 2; }
while (($#)); do
  case $1 in
    --duration) need_arg "$@"; duration=$2; shift 2 ;;
    --pgbench-duration) need_arg "$@"; pgbench_duration=$2; shift 2 ;;
    --pgbench-clients) need_arg "$@"; pgbench_clients=$2; shift 2 ;;
    --connections) need_arg "$@"; connections=$2; shift 2 ;;
    --rates) need_arg "$@"; rates=$2; shift 2 ;;
    --paced-connections) need_arg "$@"; paced_connections=$2; shift 2 ;;
    --wrk-threads) need_arg "$@"; wrk_threads=$2; shift 2 ;;
    --pool-size) need_arg "$@"; pool_size=$2; shift 2 ;;
    --threads) need_arg "$@"; threads=$2; shift 2 ;;
    --max-batch) need_arg "$@"; max_batch=$2; shift 2 ;;
    --durable) durable=1; shift ;;
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

duration_s=$(to_seconds "$duration") || die "--duration: '$duration' is not a duration like 15s or 1m" 2
pgbench_s=$(to_seconds "$pgbench_duration") || die "--pgbench-duration: '$pgbench_duration' is not a duration like 15s or 1m" 2
is_count "$pgbench_clients" || die "--pgbench-clients: '$pgbench_clients' is not a positive integer" 2
is_count "$paced_connections" || die "--paced-connections: '$paced_connections' is not a positive integer" 2
is_count "$wrk_threads" || die "--wrk-threads: '$wrk_threads' is not a positive integer" 2
read -r -a conn_list <<<"$connections"
read -r -a rate_list <<<"$rates"
for c in "${conn_list[@]}"; do is_count "$c" || die "--connections: '$c' is not a positive integer" 2; done
for r in "${rate_list[@]}"; do is_count "$r" || die "--rates: '$r' is not a positive integer" 2; done
server_flags=()
if [[ -n $pool_size ]]; then is_count "$pool_size" || die "--pool-size: '$pool_size' is not a positive integer" 2; server_flags+=(--pool-size "$pool_size"); fi
if [[ -n $threads ]]; then is_count "$threads" || die "--threads: '$threads' is not a positive integer" 2; server_flags+=(--threads "$threads"); fi
if [[ -n $max_batch ]]; then is_count "$max_batch" || die "--max-batch: '$max_batch' is not a positive integer" 2; server_flags+=(--max-batch "$max_batch"); fi

if [[ $durable == 1 ]]; then
  if [[ ! -f $repo/sql/durable.sql ]]; then
    printf 'bench.sh: durable mode is not available yet: sql/durable.sql does not exist\n' >&2
    exit 2
  fi
  mode="durable (sql/durable.sql applied)"
else
  mode="default"
fi

readonly max_id=100000 # sql/seed.sql: attempts 1..100000
readonly body_sql='{"1":[1],"2":[2],"3":[3],"4":[4]}' # what bench/patch.lua and pgbench store
readonly body_wire='{"1": [1], "2": [2], "3": [3], "4": [4]}' # the answers object as patch.lua sends it
server_bin=$repo/build/release/attempts-server
results_dir=$repo/bench/results
clk_tck=$(getconf CLK_TCK)

# ---- dependencies and build ------------------------------------------------------------------------
if ((do_install)); then
  say "installing dependencies"
  bash scripts/install-deps.sh >&2
fi
for tool in wrk curl awk sort timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run scripts/install-deps.sh"
done

# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
pg_require_bin
[[ -x $PG_BIN/pgbench ]] || die "$PG_BIN/pgbench not found"

if ((do_build)); then
  say "building the release preset (target attempts-server)"
  cmake --preset release >&2
  cmake --build --preset release --target attempts-server -j"$(nproc)" >&2
fi
[[ -x $server_bin ]] || die "$server_bin does not exist (build it, or drop --no-build)"

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

# ---- PostgreSQL ----------------------------------------------------------------------------------------
pg_port=$(pg_free_port)
say "private PostgreSQL in $datadir on 127.0.0.1:$pg_port"
conf_lines=()
if [[ $durable == 1 ]]; then conf_lines+=('synchronous_commit = on'); fi
pg_init_cluster "$datadir" "$pg_port" "${conf_lines[@]}"
pg_start "$datadir" "$pglog"
pg_wait_ready "$pg_port"
pg_create_database "$pg_port" attempts
url=$(pg_url "$pg_port" attempts)
pg_load_schema_and_seed "$url"
if [[ $durable == 1 ]]; then
  say "applying sql/durable.sql"
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" -f "$repo/sql/durable.sql" >/dev/null
fi

sql() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$url" -c "$1"; }

# What the database really runs with, for the report.
persistence=$(sql "SELECT CASE relpersistence WHEN 'u' THEN 'UNLOGGED' WHEN 'p' THEN 'LOGGED' ELSE relpersistence::text END
                     FROM pg_class WHERE oid = 'attempts'::regclass")
sync_commit=$(sql "SHOW synchronous_commit")

# CPU ticks (utime+stime) of PostgreSQL: the postmaster, its live children, and the children it
# has already reaped (cutime+cstime), so backends that exited in between still count.
pg_cpu_ticks() {
  local pm
  pm=$(head -n 1 "$datadir/postmaster.pid")
  # Fields after "(comm) ": state=1 ppid=2 ... utime=12 stime=13 cutime=14 cstime=15.
  # cat goes on past processes that exit meanwhile; each line starts with its pid.
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
proc_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
ticks_to_s() { awk -v t="$1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }'; }
db_now() { sql "SELECT clock_timestamp()"; }
rows_updated_since() { sql "SELECT count(*) FROM attempts WHERE updated_at >= '$1'"; }
# Distinct ids that n uniform draws from 1..max_id hit on average.
expected_distinct() { awk -v n="$1" -v m="$max_id" 'BEGIN { printf "%d\n", m * (1 - exp(n * log(1 - 1 / m))) + 0.5 }'; }

# ---- results -------------------------------------------------------------------------------------------
r_name=() r_rps=() r_p50=() r_p99=() r_max=() r_bad=() r_rss=() r_cpu=() r_cpu100k=() r_pgcpu=() r_rows=()
failures=()
baseline_tps=

us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

# add_row NAME RPS P50_US P99_US MAX_US BAD RSS CPU CPU100K PGCPU ROWS
add_row() {
  r_name+=("$1") r_rps+=("$2") r_p50+=("$3") r_p99+=("$4") r_max+=("$5") r_bad+=("$6")
  r_rss+=("$7") r_cpu+=("$8") r_cpu100k+=("$9") r_pgcpu+=("${10}") r_rows+=("${11}")
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
run_pgbench() {
  local name=$1 clients=$2 tag=$3 jobs=2 out t0 pg0 pg1 tps processed failed lat
  ((clients < jobs)) && jobs=$clients
  out=$tmp/$tag.out
  say "$name: pgbench -c $clients -j $jobs -T $pgbench_s"
  t0=$(db_now)
  pg0=$(pg_cpu_ticks)
  if ! run_bounded $((pgbench_s + 60)) "$out" \
    "$PG_BIN/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -n -M prepared \
    -c "$clients" -j "$jobs" -T "$pgbench_s" -D "body=$body_wire" -f "$repo/sql/pgbench/update.sql" \
    -l --log-prefix="$tmp/$tag-txlog" attempts; then
    cat "$out" >&2
    failures+=("$name: pgbench failed")
    add_row "$name" "failed" "" "" "" "" "—" "—" "—" "" ""
    return 0
  fi
  sleep 0.3 # let the postmaster reap the exiting backends, so their CPU is counted
  pg1=$(pg_cpu_ticks)
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | tail -n 1)
  processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
  # Per-transaction log: client tx_no latency_us script epoch epoch_us.
  lat=$(cat "$tmp/$tag-txlog".* | awk '{ print $3 }' | sort -n | awk '
    { v[NR] = $1 }
    END { if (NR == 0) { print "0 0 0"; exit }
          i50 = int((NR * 50 + 99) / 100); i99 = int((NR * 99 + 99) / 100)
          print v[i50], v[i99], v[NR] }')
  rm -f "$tmp/$tag-txlog".*
  read -r p50 p99 pmax <<<"$lat"
  check_rows "$name" "$t0" "${processed:-0}" "$clients"
  add_row "$name" "$tps" "$p50" "$p99" "$pmax" "${failed:-0} failed" "—" "—" "—" \
    "$(ticks_to_s $((pg1 - pg0)))" "$rows_result"
  if ((${failed:-0} > 0)); then failures+=("$name: $failed failed transactions"); fi
  say "$name: $tps tps"
  if [[ -z $baseline_tps ]]; then baseline_tps=$tps; fi
}

# ---- the service under wrk ------------------------------------------------------------------------------
server_config=

start_server() {
  local port log=$1 i code
  port=$(pg_free_port)
  "$server_bin" --listen "127.0.0.1:$port" --database-url "$url" "${server_flags[@]}" >>"$log" 2>&1 &
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
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    --data '{"answers": {"1": [1], "2": [2], "3": [3], "4": [4]}}' "$server_url/attempts/$max_id")
  [[ $code == 204 ]] || die "PATCH $server_url/attempts/$max_id answered $code, not 204"
}

# run_wrk NAME TAG CONNECTIONS WRK_THREADS RATE(0 = closed loop)
run_wrk() {
  local name=$1 tag=$2 conns=$3 wthreads=$4 rate=$5 out log t0 pg0 pg1 cpu0 cpu1 hwm line
  ((wthreads > conns)) && wthreads=$conns
  out=$tmp/$tag.out
  log=$tmp/server-$tag.log
  if ((rate > 0)); then
    say "$name: wrk -t$wthreads -c$conns -d${duration_s}s, RATE=$rate"
  else
    say "$name: wrk -t$wthreads -c$conns -d${duration_s}s"
  fi
  start_server "$log"
  if [[ -z $server_config ]]; then
    # Its effective configuration, without the address and database URL that change per run.
    server_config=$(sed -n 's/.*attempts-server starting: //p' "$log" | sed -n 1p |
      sed -E 's/(^| )(listen|database-url)=[^ ]*//g; s/^ //')
  fi
  t0=$(db_now)
  pg0=$(pg_cpu_ticks)
  cpu0=$(proc_cpu_ticks "$server_pid")
  # Only what this workload sets: a RATE exported for k6 must not pace the closed-loop runs.
  local -a env_args=(-u RATE -u PACING -u THREADS -u CONNECTIONS MAX_ID="$max_id")
  if ((rate > 0)); then env_args+=(RATE="$rate" THREADS="$wthreads" CONNECTIONS="$conns" PACING=schedule); fi
  local status=0
  run_bounded $((duration_s + 60)) "$out" env "${env_args[@]}" \
    wrk -t"$wthreads" -c"$conns" -d"${duration_s}s" --timeout 10s -s "$repo/bench/patch.lua" "$server_url" ||
    status=$?
  cpu1=$(proc_cpu_ticks "$server_pid")
  hwm=$(proc_hwm_kb "$server_pid")
  if ! stop_server; then failures+=("$name: attempts-server did not exit cleanly (log: latest-logs/server-$tag.log)"); fi
  sleep 0.3
  pg1=$(pg_cpu_ticks)
  line=$(grep '^bench: ' "$out" | tail -n 1) || line=
  if ((status != 0)) || [[ -z $line ]]; then
    cat "$out" >&2
    failures+=("$name: wrk failed (status $status)")
    add_row "$name" "failed" "" "" "" "" "" "" "" "" ""
    return 0
  fi
  local -A m=()
  local kv
  # shellcheck disable=SC2086 # split the key=value words
  for kv in ${line#bench: }; do m[${kv%%=*}]=${kv#*=}; done
  local requests=${m[requests]} non2xx=${m[non2xx]} errors cpu_s per100k
  errors=$((m[connect_errors] + m[read_errors] + m[write_errors] + m[timeout_errors]))
  cpu_s=$(ticks_to_s $((cpu1 - cpu0)))
  per100k=$(awk -v c="$cpu_s" -v n="$requests" 'BEGIN { printf "%.2f", (n > 0 ? c * 100000 / n : 0) }')
  check_rows "$name" "$t0" $((requests - non2xx)) "$conns"
  add_row "$name" "${m[rps]}" "${m[p50_us]}" "${m[p99_us]}" "${m[max_us]}" "$non2xx / $errors" \
    "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')" "$cpu_s" "$per100k" \
    "$(ticks_to_s $((pg1 - pg0)))" "$rows_result"
  if ((non2xx > 0 || errors > 0)); then failures+=("$name: $non2xx non-2xx responses, $errors socket errors"); fi
  say "$name: ${m[rps]} requests/s"
}

# ---- the run --------------------------------------------------------------------------------------------
run_start=$(db_now)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

run_pgbench "pgbench, $pgbench_clients clients" "$pgbench_clients" pgbench-c"$pgbench_clients"
run_pgbench "pgbench, 1 client" 1 pgbench-c1
for c in "${conn_list[@]}"; do
  run_wrk "service, wrk $c connections" wrk-c"$c" "$c" "$wrk_threads" 0
done
for r in "${rate_list[@]}"; do
  run_wrk "service, paced $r req/s ($paced_connections conns)" wrk-rate"$r" "$paced_connections" "$wrk_threads" "$r"
done
run_wrk "service, 1 connection (wrk -c1 -t1)" wrk-c1 1 1 0
run_pgbench "pgbench, $pgbench_clients clients (again, at the end)" "$pgbench_clients" pgbench-c"$pgbench_clients"-end

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

fmt_int() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%d", v + 0.5; else printf "%s", v }'; }
ratio() { awk -v v="$1" -v b="$baseline_tps" 'BEGIN { if (v ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", v / b; else printf "—" }'; }
ms() { if [[ $1 =~ ^[0-9]+$ ]]; then us_to_ms "$1"; else printf '%s' "${1:-—}"; fi; }

report=$tmp/report.md
{
  printf '## attempts-server vs pgbench — %s\n\n' "$started_at"
  printf -- '- machine: %s cores (nproc), %s GiB RAM, %s; kernel %s; load average at start %s\n' \
    "$(nproc)" "$mem_gib" "${cpu_model:-unknown CPU}" "$(uname -r)" "$load_at_start"
  printf -- '- commit %s; PostgreSQL %s (config/postgresql.conf, private cluster on 127.0.0.1); wrk %s\n' \
    "$commit" "$pg_version" "$wrk_version"
  printf -- '- mode: %s; attempts table %s, synchronous_commit = %s\n' "$mode" "$persistence" "$sync_commit"
  printf -- '- server: %s\n' "${server_config:-flags ${server_flags[*]:-server defaults}}"
  printf -- '- each service workload: %ss, server restarted before it; pgbench: %ss, -n -M prepared, sql/pgbench/update.sql; ids uniform in 1..%s\n' \
    "$duration_s" "$pgbench_s" "$max_id"
  printf -- '- wrk is closed-loop (a connection sends its next request after the previous response); paced rows use bench/patch.lua delay() and approximate, not guarantee, the rate\n\n'
  printf '| workload | requests/s | vs pgbench %s clients | p50 ms | p99 ms | max ms | non-2xx / errors | server peak RSS MiB | server CPU s | server CPU s / 100k req | PostgreSQL CPU s | rows updated (expected) |\n' "$pgbench_clients"
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
  for i in "${!r_name[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
      "${r_name[i]}" "$(fmt_int "${r_rps[i]}")" "$(ratio "${r_rps[i]}")" \
      "$(ms "${r_p50[i]}")" "$(ms "${r_p99[i]}")" "$(ms "${r_max[i]}")" "${r_bad[i]:-—}" \
      "${r_rss[i]:-—}" "${r_cpu[i]:-—}" "${r_cpu100k[i]:-—}" "${r_pgcpu[i]:-—}" "${r_rows[i]:-—}"
  done
  # shellcheck disable=SC2016 # backquotes are Markdown
  printf '\nVerification: %s attempts updated since the run started; %s of them differ from the body sent (`%s`); %s attempts changed without a new `updated_at`. Sample: %s.\n' \
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
cat "$report"
say "table written to bench/results/latest.md (logs in bench/results/latest-logs/)"
if ((${#failures[@]})); then exit 1; fi
exit 0
