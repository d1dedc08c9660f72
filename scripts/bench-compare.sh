#!/usr/bin/env bash
# Before/after in one run: two builds of attempts-server under the same load, taking turns, on
# the same private PostgreSQL, with pgbench on the same table as the yardstick. The machine is
# shared and noisy, so the builds alternate (the order flips every round) and the table gives
# medians and the candidate's ratio to the baseline. Prints a Markdown table (stdout); progress
# goes to stderr.
#
#   scripts/bench-compare.sh --baseline /tmp/old/attempts-server
#   scripts/bench-compare.sh --baseline OLD --candidate NEW --rounds 5 --duration 10s
#
# Each row: wrk -t2 -c<connections> -s bench/patch.lua against the server (PATCH of a random
# seeded attempt, with the token of its owner among 20000 students when authentication is on),
# requests/s, and the server's CPU (user + system, from /proc) per request.
#
# Options:
#   --baseline PATH     the build to compare against (required)
#   --candidate PATH    the build measured [default build/release/attempts-server]
#   --rounds N          turns of each build per row [default 3]
#   --duration D        each turn, e.g. 10s [default 10s]
#   --connections N     wrk's connections [default 64]
#   --auth "M ..."      rows: off and/or hs256 [default "off hs256"]
#   --server-flag F     a flag for both servers, repeatable (e.g. --server-flag --threads=2)
#
# Needs wrk, pgbench and build/release/tools/attempts-token (scripts/bench.sh builds it).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '==> bench-compare: %s\n' "$*" >&2; }
die() { printf 'bench-compare: error: %s\n' "$1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

baseline=
candidate=$repo/build/release/attempts-server
rounds=3
duration=10s
connections=64
auths="off hs256"
extra_flags=()
while (($#)); do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --candidate) candidate=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --auth) auths=$2; shift 2 ;;
    --server-flag) extra_flags+=("$2"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" 2 ;;
  esac
done
[[ -n $baseline ]] || die "--baseline PATH is required" 2
for bin in "$baseline" "$candidate"; do [[ -x $bin ]] || die "$bin is not an executable"; done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds: '$rounds' is not a positive integer" 2
[[ $connections =~ ^[1-9][0-9]*$ ]] || die "--connections: '$connections' is not a positive integer" 2
[[ $duration =~ ^[1-9][0-9]*s$ ]] || die "--duration: '$duration' is not a number of seconds like 10s" 2
read -r -a auth_list <<<"$auths"
for auth in "${auth_list[@]}"; do
  [[ $auth == off || $auth == hs256 ]] || die "--auth: '$auth' is not off or hs256" 2
done
token_bin=$repo/build/release/tools/attempts-token
[[ -x $token_bin ]] || die "$token_bin is missing: cmake --build --preset release --target attempts-token"
command -v wrk >/dev/null || die "wrk not found (scripts/install-deps.sh)"

# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
pg_require_bin

readonly students=20000  # sql/seed.sql: attempt i belongs to student 1 + (i - 1) % 20000
readonly body='{"1": [1], "2": [2], "3": [3], "4": [4]}'
clk_tck=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-bench-compare.XXXXXX")
chmod 755 "$tmp"
datadir=$tmp/pgdata
server_pid=

stop_server() {
  local pid=$server_pid i
  [[ -n $pid ]] || return 0
  server_pid=
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  stop_server
  pg_stop "$datadir" fast
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "development keys and one HS256 token per student"
"$token_bin" keygen "$tmp/keys" >/dev/null
"$token_bin" sign-range --keys "$tmp/keys" --kid dev-hs256 --first 1 --last "$students" \
  --ttl 86400 >"$tmp/tokens.txt"

pg_port=$(pg_free_port)
say "private PostgreSQL on 127.0.0.1:$pg_port"
pg_init_cluster "$datadir" "$pg_port"
pg_start "$datadir" "$tmp/postgres.log"
pg_wait_ready "$pg_port"
pg_create_database "$pg_port" attempts
url=$(pg_url "$pg_port" attempts)
pg_load_schema_and_seed "$url"

pgbench_tps() {
  "$PG_BIN/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -n -M prepared -c 16 -j 2 \
    -T "${duration%s}" -D "body=$body" -f sql/pgbench/update.sql attempts 2>/dev/null |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

# measure BINARY AUTH: prints "requests/s cpu_us_per_request non2xx"
measure() {
  local bin=$1 auth=$2 port log i ticks0 ticks1 line
  port=$(pg_free_port)
  log=$tmp/server.log
  local -a flags=(--listen "127.0.0.1:$port" --database-url "$url" "${extra_flags[@]}")
  # As scripts/bench.sh runs it: a token cache that holds every student.
  if [[ $auth == off ]]; then flags+=(--auth none); else flags+=(--auth jwt --jwks "$tmp/keys/jwks.json" --token-cache-size "$students"); fi
  "$bin" "${flags[@]}" >"$log" 2>&1 &
  server_pid=$!
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local -a env_args=(MAX_ID=100000 STUDENTS="$students")
  [[ $auth != off ]] && env_args+=(TOKENS="$tmp/tokens.txt")
  # A second of warm-up (connections, caches), not measured.
  env "${env_args[@]}" wrk -t2 -c"$connections" -d1s -s bench/patch.lua "http://127.0.0.1:$port" >/dev/null 2>&1
  ticks0=$(awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$server_pid/stat")
  line=$(env "${env_args[@]}" timeout 120 wrk -t2 -c"$connections" -d"$duration" --timeout 10s \
    -s bench/patch.lua "http://127.0.0.1:$port" 2>&1 | grep '^bench:')
  ticks1=$(awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$server_pid/stat")
  stop_server
  awk -v line="$line" -v t="$((ticks1 - ticks0))" -v hz="$clk_tck" 'BEGIN {
    n = split(line, kv, " ")
    for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    printf "%.0f %.2f %d\n", v["rps"], (v["requests"] > 0 ? t / hz * 1e6 / v["requests"] : 0), v["non2xx"] }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

say "pgbench, 16 clients"
pg_before=$(pgbench_tps)
declare -A rps=() cpu=()
bad=0
for ((round = 1; round <= rounds; round++)); do
  for auth in "${auth_list[@]}"; do
    order=(baseline candidate)
    ((round % 2 == 0)) && order=(candidate baseline)
    for which in "${order[@]}"; do
      bin=$baseline
      [[ $which == candidate ]] && bin=$candidate
      read -r r c n < <(measure "$bin" "$auth")
      say "round $round, auth $auth, $which: $r requests/s, $c µs CPU per request, $n non-2xx"
      rps[$which.$auth]+="$r "
      cpu[$which.$auth]+="$c "
      ((n == 0)) || bad=1
    done
  done
done
pg_after=$(pgbench_tps)

printf '| auth | baseline requests/s | candidate requests/s | ratio | baseline CPU µs/request | candidate CPU µs/request | ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
for auth in "${auth_list[@]}"; do
  br=$(tr ' ' '\n' <<<"${rps[baseline.$auth]}" | grep . | median)
  cr=$(tr ' ' '\n' <<<"${rps[candidate.$auth]}" | grep . | median)
  bc=$(tr ' ' '\n' <<<"${cpu[baseline.$auth]}" | grep . | median)
  cc=$(tr ' ' '\n' <<<"${cpu[candidate.$auth]}" | grep . | median)
  awk -v a="$auth" -v br="$br" -v cr="$cr" -v bc="$bc" -v cc="$cc" 'BEGIN {
    printf "| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", a, br, cr, cr / br, bc, cc, cc / bc }'
done
printf '\npgbench (16 clients, the same UPDATE) before and after: %s and %s tps; %d rounds of %s, wrk -t2 -c%s.\n' \
  "$pg_before" "$pg_after" "$rounds" "$duration" "$connections"
((bad == 0)) || die "some requests were not answered 2xx (see the progress lines)"
