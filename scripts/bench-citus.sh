#!/usr/bin/env bash
# The service on a local Citus cluster, in one run: pgbench's one-row UPDATE through the
# coordinator, the service with shard-aware batches entering at the shards' nodes (--citus-entry
# nodes, the default) and through the coordinator (--citus-entry coordinator), and with naive
# batches (--citus off), each against the same three nodes. For each: requests/s, statements/s
# and the CPU each node spent per row written (its postmaster and backends, from /proc). Prints a
# Markdown table (progress on stderr); docs/scaling.md quotes its figures.
#
#   scripts/bench-citus.sh                       # 10 s per workload, about 2 minutes
#   scripts/bench-citus.sh --duration 20s --connections "64 256" --pool-size 4
#
# Needs Citus built into the local PostgreSQL 15 (not packaged in Debian 12; docs/scaling.md
# says how to build it): exits 2 saying so when citus.so is missing. Everything runs on
# 127.0.0.1: a coordinator and two workers, each a throwaway cluster (scripts/lib/pg.sh) in a
# mktemp dir on a free port, with sql/schema.sql, sql/citus.sql and sql/seed.sql loaded through
# the coordinator. The server runs with --auth none: the figures are about the database side.
# Citus's own counters (citus_stat_counters, on the node where a statement enters) say how many
# statements ran on one shard and how many on several. Stops what it started and removes the
# clusters, also on Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

say() { printf '[bench-citus] %s\n' "$*" >&2; }
die() {
  printf 'bench-citus.sh: error: %s\n' "$1" >&2
  exit "${2:-1}"
}

duration=10s
connections="64 256"
pool_size=
build=1
while (($# > 0)); do
  case $1 in
    --duration) duration=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --pool-size) pool_size=${2:?}; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" 2 ;;
  esac
done
[[ $duration =~ ^[0-9]+s$ ]] || die "--duration: '$duration' is not like 10s" 2
[[ -z $pool_size || $pool_size =~ ^[1-9][0-9]*$ ]] ||
  die "--pool-size: '$pool_size' is not a positive integer" 2
pool_flags=()
[[ -n $pool_size ]] && pool_flags=(--pool-size "$pool_size")
read -ra conn_list <<<"$connections"
for c in "${conn_list[@]}"; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "--connections: '$c' is not a positive integer" 2
done

pg_require_bin || die "PostgreSQL 15 is not installed (scripts/install-deps.sh)" 2
[[ -e $PG_BIN/../lib/citus.so ]] ||
  die "Citus is not installed in $PG_BIN/.. (no citus.so); build it from source, see docs/scaling.md" 2
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)" 2

if ((build)); then
  say "building the release preset"
  cmake --preset release >/dev/null && cmake --build --preset release --target attempts-server >/dev/null
fi
server_bin=$repo/build/release/attempts-server
[[ -x $server_bin ]] || die "$server_bin not built" 2

tmp=$(mktemp -d /tmp/bench-citus.XXXXXX)
chmod 755 "$tmp"
server_pid=
nodes=()
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  for dir in "${nodes[@]}"; do pg_stop "$dir" fast 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the cluster ---------------------------------------------------------------------------------
ports=()
for name in coordinator worker1 worker2; do
  port=$(pg_free_port)
  # A third of the reference box's shared_buffers each; Citus's coordinator opens connections
  # to the workers for every backend of its own, hence the larger max_connections.
  pg_init_cluster "$tmp/$name" "$port" "shared_preload_libraries = 'citus'" \
    "shared_buffers = 1GB" "max_connections = 300" >/dev/null
  pg_start "$tmp/$name" "$tmp/$name.log" >/dev/null
  nodes+=("$tmp/$name")
  ports+=("$port")
done
for port in "${ports[@]}"; do
  pg_wait_ready "$port"
  pg_create_database "$port" attempts
  psql -qX -v ON_ERROR_STOP=1 "$(pg_url "$port" attempts)" -c "CREATE EXTENSION citus" >/dev/null
done
coordinator=$(pg_url "${ports[0]}" attempts)
sql() { psql -qXAt -v ON_ERROR_STOP=1 "$coordinator" -c "$1"; }
sql "SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]})" >/dev/null
sql "SELECT citus_add_node('127.0.0.1', ${ports[1]})" >/dev/null
sql "SELECT citus_add_node('127.0.0.1', ${ports[2]})" >/dev/null
say "loading schema.sql, citus.sql and seed.sql through the coordinator (127.0.0.1:${ports[0]})"
for file in schema citus seed; do
  PGOPTIONS="-c client_min_messages=error" psql -qX -v ON_ERROR_STOP=1 "$coordinator" \
    -f "sql/$file.sql" >/dev/null
done
sql "ALTER DATABASE attempts SET citus.enable_stat_counters = on" >/dev/null
shards=$(sql "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'attempts'::regclass")
citus_version=$(sql "SELECT extversion FROM pg_extension WHERE extname = 'citus'")

# ---- workloads -----------------------------------------------------------------------------------
rows=()
# Statements that ran on one shard and on several, summed over the nodes: with --citus-entry
# nodes they enter (and are counted) at the workers.
counters() {
  local port single=0 multi=0 s m
  for port in "${ports[@]}"; do
    read -r s m <<<"$(psql -qXAt -F' ' -v ON_ERROR_STOP=1 "$(pg_url "$port" attempts)" -c \
      "SELECT query_execution_single_shard, query_execution_multi_shard
         FROM citus_stat_counters WHERE name = current_database()")"
    single=$((single + s))
    multi=$((multi + m))
  done
  echo "$single $multi"
}
reset_counters() {
  local port
  for port in "${ports[@]}"; do
    psql -qXAt -v ON_ERROR_STOP=1 "$(pg_url "$port" attempts)" \
      -c "SELECT citus_stat_counters_reset()" >/dev/null
  done
}
# CPU ticks of one node: its postmaster and every process it started, those that ended included
# (their time is added to the postmaster's when it reaps them).
node_ticks() {
  local pid
  pid=$(head -n 1 "$1/postmaster.pid")
  cat /proc/[0-9]*/stat 2>/dev/null |
    awk -v p="$pid" '$1 == p || $4 == p { s += $14 + $15 + $16 + $17 } END { print s + 0 }'
}
all_ticks() {
  local dir ticks=()
  for dir in "${nodes[@]}"; do ticks+=("$(node_ticks "$dir")"); done
  echo "${ticks[*]}"
}
clk_tck=$(getconf CLK_TCK)
# "c / w1 / w2": microseconds of CPU per row on each node between two all_ticks readings.
cpu_per_row() {
  local -a before after
  read -ra before <<<"$1"
  read -ra after <<<"$2"
  local written=$3 i cells=()
  for i in 0 1 2; do
    cells+=("$(awk -v a="${before[i]}" -v b="${after[i]}" -v r="$written" -v t="$clk_tck" \
      'BEGIN { printf "%.0f", (r > 0 ? (b - a) / t * 1e6 / r : 0) }')")
  done
  echo "${cells[0]} / ${cells[1]} / ${cells[2]}"
}

run_pgbench() {
  local name=$1 out=$tmp/pgbench.out
  say "$name"
  reset_counters
  local ticks_before
  ticks_before=$(all_ticks)
  "$PG_BIN/pgbench" -h 127.0.0.1 -p "${ports[0]}" -U postgres -n -M prepared -c 16 -j 2 \
    -T "${duration%s}" -D "body={\"1\": [1], \"2\": [2], \"3\": [3], \"4\": [4]}" \
    -f sql/pgbench/update-citus.sql attempts >"$out" 2>&1 || { cat "$out" >&2; die "pgbench failed"; }
  local tps lat failed single multi done_tx cpu
  cpu=$(all_ticks)
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | tail -n 1)
  done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
  cpu=$(cpu_per_row "$ticks_before" "$cpu" "${done_tx:-0}")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
  read -r single multi <<<"$(counters)"
  rows+=("| $name | $(printf '%.0f' "$tps") | $(printf '%.0f' "$tps") | 1.0 | avg $lat | ${failed:-0} failed | $cpu | $single | $multi |")
}

run_service() {
  local name=$1 mode=$2 entry=$3 conns=$4 out=$tmp/wrk.out port
  port=$(pg_free_port)
  say "$name"
  reset_counters
  "$server_bin" --listen "127.0.0.1:$port" --database-url "$coordinator" --auth none \
    --citus "$mode" --citus-entry "$entry" "${pool_flags[@]}" >"$tmp/server.log" 2>&1 &
  server_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$tmp/server.log" >&2; die "server not ready"; }
  local ticks_before
  ticks_before=$(all_ticks)
  wrk -t2 -c"$conns" -d"$duration" --timeout 10s -s bench/patch.lua "http://127.0.0.1:$port" >"$out" 2>&1
  local metrics rps p50 p99 non2xx errors statements rows_sum single multi
  metrics=$(curl -s "http://127.0.0.1:$port/metrics")
  kill "$server_pid"
  wait "$server_pid" || true
  server_pid=
  sleep 0.5 # the server's backends end and are reaped: their CPU moves to the postmaster's
  local ticks_after
  ticks_after=$(all_ticks)
  local line
  line=$(grep '^bench:' "$out") || { cat "$out" >&2; die "wrk printed no result"; }
  rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line")
  non2xx=$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<"$line")
  errors=$(grep -o '_errors=[0-9]*' <<<"$line" | awk -F= '{ s += $2 } END { print s + 0 }')
  statements=$(awk '/^attempts_db_batch_rows_count / { print $2 }' <<<"$metrics")
  rows_sum=$(awk '/^attempts_db_batch_rows_sum / { print $2 }' <<<"$metrics")
  read -r single multi <<<"$(counters)"
  local cpu
  cpu=$(cpu_per_row "$ticks_before" "$ticks_after" "${rows_sum:-0}")
  rows+=("| $name | $(printf '%.0f' "$rps") | $(awk -v s="$statements" -v d="${duration%s}" 'BEGIN { printf "%.0f", s / d }') | $(awk -v r="$rows_sum" -v s="$statements" 'BEGIN { printf "%.1f", (s > 0 ? r / s : 0) }') | $(awk -v a="$p50" -v b="$p99" 'BEGIN { printf "%.2f / %.2f", a / 1000, b / 1000 }') | $non2xx / $errors | $cpu | $single | $multi |")
}

run_pgbench "pgbench one-row UPDATE, 16 clients, through the coordinator"
for c in "${conn_list[@]}"; do
  run_service "service, shard-aware batches at the nodes (--citus-entry nodes), wrk $c connections" \
    auto nodes "$c"
  run_service "service, shard-aware batches through the coordinator (--citus-entry coordinator), wrk $c connections" \
    auto coordinator "$c"
done
run_service "service, naive batches (--citus off), wrk ${conn_list[0]} connections" off coordinator \
  "${conn_list[0]}"
run_pgbench "pgbench one-row UPDATE, 16 clients (again, at the end)"

lost=$(sql "SELECT 100000 - count(*) FROM attempts")
printf '## attempts-server on Citus %s: a coordinator and two workers on one host — %s\n\n' \
  "$citus_version" "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf -- '- machine: %s cores, load average at the end %s; %s shards of attempts (sql/citus.sql), UNLOGGED\n' \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$shards"
printf -- '- server: %s --auth none, defaults otherwise; wrk -t2 with bench/patch.lua, %s per workload; ids uniform in 1..100000\n' \
  "${pool_flags[*]:-the default pool size (one connection per event loop)}" "$duration"
printf -- '- statements single-shard / multi-shard: citus_stat_counters summed over the nodes, reset before each workload\n'
printf -- '- CPU per row: each node'"'"'s postmaster and its processes (/proc), divided by the rows written (pgbench: transactions)\n\n'
printf '| workload | requests/s (rows/s) | statements/s | rows per statement | p50 / p99 ms | non-2xx / errors | CPU µs per row: coordinator / worker1 / worker2 | single-shard statements | multi-shard statements |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${rows[@]}"
printf '\nAttempts missing after the run: %s (of 100000).\n' "$lost"
