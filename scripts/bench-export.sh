#!/usr/bin/env bash
# The export benchmark (issue 30): GET /exams/{id}/attempts of one exam of 100,000 attempts,
# alone and beside saves to the other exams, on a private PostgreSQL, in one run. Prints a
# Markdown report on stdout (progress on stderr):
#   1. the export alone, NDJSON and CSV, --rounds times each: attempts/s streamed to curl on
#      loopback (into /dev/null), and the server's RSS growth during it (the peak, VmHWM, reset
#      before each export through /proc/PID/clear_refs, against VmRSS before it);
#   2. saves paced at --rate (HS256 tokens, bench/patch.lua under wrk2) to the seeded exams for
#      --paced-duration, without an export and then with exports back to back: errors, the rate
#      achieved, p99;
#   3. saves at full speed (wrk, closed loop, --connections) for --duration, without and with
#      exports back to back, in turn, --rounds times: the mean save rate of each, and their ratio.
#
#   BENCH_WRK2=/opt/tools/bin/wrk2-lj21 scripts/bench-export.sh
#   scripts/bench-export.sh --attempts 20000 --rounds 1 --duration 5s --paced-duration 5s
#   scripts/bench-export.sh --export-rate 0     # exports unpaced (the server's --export-rate)
#
# Everything listens on 127.0.0.1; only processes this script started are stopped, by pid; every
# wait is bounded. Timing belongs here, not in the tests. The machine's load average at the start
# and the end is printed with the figures: ratios measured in one run are what compares.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

attempts=100000
rounds=3
rate=10000
duration=15
paced_duration=20
connections=64
paced_connections=256
do_build=1
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '==> bench-export: %s\n' "$*" >&2; }
die() {
  say "error: $1"
  exit "${2:-1}"
}
server_extra=()
while (($#)); do
  case $1 in
    --export-rate) server_extra+=(--export-rate "$2"); shift 2 ;;
    --attempts) attempts=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --duration) duration=${2%s}; shift 2 ;;
    --paced-duration) paced_duration=${2%s}; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" 2 ;;
  esac
done
for value in "$attempts" "$rounds" "$rate" "$duration" "$paced_duration" "$connections"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || die "'$value' is not a positive integer" 2
done

wrk2_bin=${BENCH_WRK2:-$(command -v wrk2 || true)}
[[ -n $wrk2_bin && -x $wrk2_bin ]] || die "needs wrk2 for the paced saves (BENCH_WRK2 or wrk2 on PATH)"
command -v wrk >/dev/null || die "needs wrk (scripts/install-deps.sh)"
if ((do_build)); then
  say "building the release preset"
  cmake --preset release >/dev/null
  cmake --build --preset release -j"$(nproc)" --target attempts-server attempts-token >/dev/null
fi
server_bin=$repo/build/release/attempts-server
token_bin=$repo/build/release/tools/attempts-token

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-bench-export.XXXXXX")
chmod 755 "$tmp" # the postgres OS user enters it
datadir=$tmp/pgdata
server_pid=
export_loop_pid=
child_pid=
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$? pid
  set +e
  trap - EXIT INT TERM
  for pid in "$export_loop_pid" "$child_pid" "$server_pid"; do
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  pg_stop "$datadir" fast >/dev/null 2>&1
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

# ---- PostgreSQL, keys, the exam ------------------------------------------------------------------
pg_port=$(pg_free_port)
say "private PostgreSQL on 127.0.0.1:$pg_port"
pg_init_cluster "$datadir" "$pg_port" >/dev/null
pg_start "$datadir" "$tmp/postgres.log" >/dev/null
pg_wait_ready "$pg_port"
pg_create_database "$pg_port" attempts >/dev/null
url=$(pg_url "$pg_port" attempts)
pg_load_schema_and_seed "$url" >/dev/null
sql() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$url" -c "$1"; }

say "one exam of $attempts attempts (4 questions answered, saved 12 times, a third submitted)"
exam=$(sql "INSERT INTO exams (title) VALUES ('bench: export') RETURNING id")
sql "INSERT INTO attempts (exam_id, student_id, answers, revision, updated_at, submitted_at, saves)
     SELECT $exam, 1000000 + g,
            jsonb_build_object('1', jsonb_build_array(g % 4), '2', jsonb_build_array(1, 3),
                               '3', jsonb_build_array(2), '4', jsonb_build_array(g % 3)),
            12, now(), CASE WHEN g % 3 = 0 THEN now() END, 12
       FROM generate_series(1, $attempts) g"
sql "INSERT INTO exam_staff (exam_id, staff_id) VALUES ($exam, 'bench-teacher')"
sql "VACUUM ANALYZE attempts"

keys=$tmp/keys
"$token_bin" keygen "$keys" >/dev/null
tokens=$tmp/tokens-hs256.txt
"$token_bin" sign-range --keys "$keys" --kid dev-hs256 --first 1 --last 20000 --ttl 86400 >"$tokens"
staff_token=$("$token_bin" sign --keys "$keys" --kid dev-hs256 --sub 1 --ttl 86400 \
  --claims '{"sub":"bench-teacher","roles":["teacher"]}')

port=$(pg_free_port)
server_url=http://127.0.0.1:$port
"$server_bin" --listen "127.0.0.1:$port" --database-url "$url" --jwks "$keys/jwks.json" \
  --staff-claim roles --staff-role teacher "${server_extra[@]}" >"$tmp/server.log" 2>&1 &
server_pid=$!
for ((i = 0; i < 200; i++)); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$server_url/readyz" 2>/dev/null) == 200 ]] && break
  kill -0 "$server_pid" 2>/dev/null || die "attempts-server exited: $(tail -n 5 "$tmp/server.log")"
  sleep 0.1
done
say "attempts-server $server_pid on $server_url ($(grep -o 'threads=[0-9]* pool-size=[0-9]*' "$tmp/server.log" | head -n 1))"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status"; }

# One export into /dev/null: "seconds bytes http_code".
export_once() {
  local accept=$1
  curl -s -o /dev/null --max-time 120 -w '%{time_total} %{size_download} %{http_code}' \
    -H "Authorization: Bearer $staff_token" -H "Accept: $accept" "$server_url/exams/$exam/attempts"
}

# ---- 1. the export alone -------------------------------------------------------------------------
# The server's resident memory before any export: what every export's peak is compared with.
rss_start=$(rss_kib)
declare -a alone_rows=()
for format in ndjson csv; do
  accept=application/x-ndjson
  [[ $format == csv ]] && accept=text/csv
  for ((r = 1; r <= rounds; r++)); do
    before=$(rss_kib)
    echo 5 >"/proc/$server_pid/clear_refs" # VmHWM := VmRSS
    read -r seconds bytes code <<<"$(export_once "$accept")"
    [[ $code == 200 ]] || die "export answered $code"
    peak=$(hwm_kib)
    over_start=$(awk -v p="$peak" -v b="$rss_start" 'BEGIN { printf "%.2f", (p - b) / 1024 }')
    per_second=$(awk -v n="$attempts" -v s="$seconds" 'BEGIN { printf "%d", n / s }')
    mib_s=$(awk -v b="$bytes" -v s="$seconds" 'BEGIN { printf "%.1f", b / s / 1048576 }')
    growth=$(awk -v p="$peak" -v b="$before" 'BEGIN { printf "%.2f", (p - b) / 1024 }')
    alone_rows+=("| $format | $r | $seconds | $per_second | $mib_s | $((bytes / 1048576)) | $((before / 1024)) | $growth | $over_start |")
    say "export alone, $format, round $r: ${seconds}s, $per_second attempts/s, RSS growth $growth MiB"
  done
done
# Checked once: every attempt is in the export.
rows=$(curl -s --max-time 120 -H "Authorization: Bearer $staff_token" "$server_url/exams/$exam/attempts" | wc -l)
((rows == attempts)) || die "the export has $rows rows, not $attempts"

# ---- saves, with or without exports back to back ---------------------------------------------------
# Exports in a loop until the stop file appears; their count and rows/s in $1.
start_export_loop() {
  local out=$1
  rm -f "$tmp/stop-exports"
  (
    n=0 total=0
    while [[ ! -e $tmp/stop-exports ]]; do
      read -r s _ c <<<"$(export_once application/x-ndjson)"
      [[ $c == 200 ]] || { echo "failed $c" >>"$out.errors"; sleep 0.2; continue; }
      n=$((n + 1))
      total=$(awk -v t="$total" -v s="$s" 'BEGIN { print t + s }')
    done
    echo "$n $total" >"$out"
  ) &
  export_loop_pid=$!
}
stop_export_loop() {
  touch "$tmp/stop-exports"
  wait "$export_loop_pid" 2>/dev/null || true
  export_loop_pid=
}
# The bench: line of patch.lua's done(); fields as name=value.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
run_saves() {
  local out=$1
  shift
  MAX_ID=100000 STUDENTS=20000 TOKENS=$tokens timeout --kill-after=10 $((duration + paced_duration + 60)) \
    "$@" -s "$repo/bench/patch.lua" "$server_url" >"$out" 2>&1 &
  child_pid=$!
  wait "$child_pid" || true
  child_pid=
  grep '^bench: ' "$out" | tail -n 1
}

# ---- 2. paced saves ----------------------------------------------------------------------------------
declare -a paced_rows=()
for with in without with; do
  if [[ $with == with ]]; then start_export_loop "$tmp/paced-exports"; fi
  line=$(RATE=$rate THREADS=2 run_saves "$tmp/paced-$with.out" "$wrk2_bin" -t2 -c"$paced_connections" \
    -d"${paced_duration}s" -R"$rate" --timeout 10s)
  exports_note=-
  if [[ $with == with ]]; then
    stop_export_loop
    read -r n secs <"$tmp/paced-exports"
    exports_note="$n exports, $(awk -v n="$n" -v a="$attempts" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? n * a / s : 0) }') attempts/s each"
  fi
  errors=$(($(field non2xx "$line") + $(field connect_errors "$line") + $(field read_errors "$line") + $(field write_errors "$line") + $(field timeout_errors "$line")))
  paced_rows+=("| $with | $(field rps "$line") | $(awk -v u="$(field p50_us "$line")" 'BEGIN { printf "%.1f", u / 1000 }') | $(awk -v u="$(field p99_us "$line")" 'BEGIN { printf "%.1f", u / 1000 }') | $errors | $exports_note |")
  say "paced saves $with exports: $line"
done

# ---- 3. saturated saves ------------------------------------------------------------------------------
declare -a saturated_rows=()
sum_without=0 sum_with=0
for ((r = 1; r <= rounds; r++)); do
  for with in without with; do
    if [[ $with == with ]]; then start_export_loop "$tmp/saturated-exports"; fi
    line=$(run_saves "$tmp/saturated-$with-$r.out" wrk -t2 -c"$connections" -d"${duration}s" --timeout 10s)
    exports_note=-
    if [[ $with == with ]]; then
      stop_export_loop
      read -r n secs <"$tmp/saturated-exports"
      exports_note="$n exports, $(awk -v n="$n" -v a="$attempts" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? n * a / s : 0) }') attempts/s each"
    fi
    rps=$(field rps "$line")
    if [[ $with == with ]]; then sum_with=$(awk -v a="$sum_with" -v b="$rps" 'BEGIN { print a + b }'); else sum_without=$(awk -v a="$sum_without" -v b="$rps" 'BEGIN { print a + b }'); fi
    saturated_rows+=("| $r | $with | $rps | $(awk -v u="$(field p99_us "$line")" 'BEGIN { printf "%.1f", u / 1000 }') | $(field non2xx "$line") | $exports_note |")
    say "saturated saves $with exports, round $r: $line"
  done
done
ratio=$(awk -v w="$sum_with" -v o="$sum_without" 'BEGIN { printf "%.3f", (o > 0 ? w / o : 0) }')

load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)
metrics=$(curl -s "$server_url/metrics" | grep -E '^attempts_(exports_(finished|aborted|failed|refused)_total|export_rows_total) ')

# ---- the report -------------------------------------------------------------------------------------
cat <<REPORT
## Export benchmark ($started_at)

$(nproc) cores, load average $load_at_start at the start and $load_at_end at the end (1, 5, 15 min);
attempts-server $(grep -o 'threads=[0-9]* pool-size=[0-9]*' "$tmp/server.log" | head -n 1) $(grep -o 'staff-connections=[0-9]* max-exports=[0-9]* export-rate=[0-9]*' "$tmp/server.log" | head -n 1),
HS256 tokens; one exam of $attempts attempts; PostgreSQL 15 private cluster (config/postgresql.conf).
Command: BENCH_WRK2=$wrk2_bin scripts/bench-export.sh ${server_extra[*]} --attempts $attempts --rounds $rounds --rate $rate --duration ${duration}s --paced-duration ${paced_duration}s --connections $connections

### 1. The export alone (curl into /dev/null on loopback)

Peak RSS (VmHWM, reset before each export) minus the RSS before that export, and minus the RSS
before the first export of the run ($((rss_start / 1024)) MiB, the server started, idle).

| format | round | seconds | attempts/s | MiB/s | MiB | RSS before (MiB) | growth during it (MiB) | peak over the first RSS (MiB) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${alone_rows[@]}")

### 2. Saves paced at $rate/s to the other exams (wrk2, $paced_connections connections, ${paced_duration} s), without and with exports back to back

| exports | saves/s achieved | p50 ms | p99 ms | errors (non-2xx + socket) | exports meanwhile |
|---|---:|---:|---:|---:|---|
$(printf '%s\n' "${paced_rows[@]}")

### 3. Saves at full speed (wrk, $connections connections, ${duration} s each, in turn)

| round | exports | saves/s | p99 ms | non-2xx | exports meanwhile |
|---|---|---:|---:|---:|---|
$(printf '%s\n' "${saturated_rows[@]}")

Mean saves/s with exports running ÷ without: **$ratio**.

Server counters at the end: $(tr '\n' ' ' <<<"$metrics")
REPORT
