#!/usr/bin/env bash
# The progress stream benchmark (issue 31): one exam of --attempts attempts (20,000), --streams
# proctors (200) on GET /exams/{id}/progress, on a private PostgreSQL, in one run. Prints a
# Markdown report on stdout (progress on stderr):
#   1. saves to that exam paced at --rate (5,000/s; wrk2, bench/patch.lua, each with its owner's
#      token, attempts in random order) for --paced-duration with the streams open: the reads of
#      the exam per interval (the server's counter), the save-to-stream lag (receive time minus
#      the attempt's updated_at, over every changed attempt of the first few streams' changes
#      events: bench/progress-streams.mjs), p50/p99/max, and the server's RSS growth (peak VmHWM
#      during the run minus VmRSS before the streams opened);
#   2. saves at full speed (wrk, closed loop, --connections) for --duration, without and with the
#      streams open, in turn, --rounds times: the mean save rate of each, and their ratio.
#
# The readers ask for gzip as browsers do (--encoding identity: they do not).
#
#   BENCH_WRK2=/opt/tools/bin/wrk2-lj21 scripts/bench-progress.sh
#   scripts/bench-progress.sh --streams 50 --rounds 1 --duration 5s --paced-duration 10s --no-build
#
# Everything listens on 127.0.0.1; only processes this script started are stopped, by pid; every
# wait is bounded. Timing belongs here, not in the tests. The load average at the start and the
# end is printed with the figures: ratios measured in one run are what compares.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

attempts=20000
streams=200
rounds=2
rate=5000
duration=10
paced_duration=20
connections=64
paced_connections=256
interval_ms=2000
encoding=gzip
do_build=1
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '==> bench-progress: %s\n' "$*" >&2; }
die() {
  say "error: $1"
  exit "${2:-1}"
}
while (($#)); do
  case $1 in
    --attempts) attempts=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --duration) duration=${2%s}; shift 2 ;;
    --paced-duration) paced_duration=${2%s}; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --interval-ms) interval_ms=$2; shift 2 ;;
    --encoding) encoding=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" 2 ;;
  esac
done
for value in "$attempts" "$streams" "$rounds" "$rate" "$duration" "$paced_duration" "$connections" "$interval_ms"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || die "'$value' is not a positive integer" 2
done
[[ $encoding == gzip || $encoding == identity ]] || die "--encoding is gzip or identity" 2
((attempts <= 20000)) || die "--attempts is at most 20000 (the seed's students, one attempt each)" 2

wrk2_bin=${BENCH_WRK2:-$(command -v wrk2 || true)}
[[ -n $wrk2_bin && -x $wrk2_bin ]] || die "needs wrk2 for the paced saves (BENCH_WRK2 or wrk2 on PATH)"
command -v wrk >/dev/null || die "needs wrk (scripts/install-deps.sh)"
command -v node >/dev/null || die "needs node for the streams' readers"
if ((do_build)); then
  say "building the release preset"
  cmake --preset release >/dev/null
  cmake --build --preset release -j"$(nproc)" --target attempts-server attempts-token attempts-progress-readers >/dev/null
fi
server_bin=$repo/build/release/attempts-server
token_bin=$repo/build/release/tools/attempts-token
silent_readers_bin=$repo/build/release/tools/attempts-progress-readers

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-bench-progress.XXXXXX")
chmod 755 "$tmp" # the postgres OS user enters it
datadir=$tmp/pgdata
server_pid=
readers_pid=
silent_readers_pid=
child_pid=
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$? pid
  set +e
  trap - EXIT INT TERM
  for pid in "$readers_pid" "$silent_readers_pid" "$child_pid" "$server_pid"; do
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

# The seed's attempts 1..N (student s owns attempt s, as patch.lua's owner rule says) become one
# exam, each with 40 answered questions (~1.5 KB of answers, as the lead's measurements).
say "one exam of $attempts attempts (the seed's 1..$attempts, 40 questions answered each)"
exam=$(sql "INSERT INTO exams (title) VALUES ('bench: progress') RETURNING id")
sql "UPDATE attempts SET exam_id = $exam, answered = 40,
            answers = (SELECT jsonb_object_agg(q::text, jsonb_build_array(q * 10 + id % 4, q * 10 + 1))
                         FROM generate_series(1, 40) q),
            updated_at = now() - interval '10 minutes'
      WHERE id <= $attempts"
sql "INSERT INTO exam_staff (exam_id, staff_id) VALUES ($exam, 'bench-proctor')"
sql "VACUUM ANALYZE attempts"

keys=$tmp/keys
"$token_bin" keygen "$keys" >/dev/null
tokens=$tmp/tokens-hs256.txt
"$token_bin" sign-range --keys "$keys" --kid dev-hs256 --first 1 --last 20000 --ttl 86400 >"$tokens"
staff_token=$("$token_bin" sign --keys "$keys" --kid dev-hs256 --sub 1 --ttl 86400 \
  --claims '{"sub":"bench-proctor","roles":["teacher"]}')

port=$(pg_free_port)
server_url=http://127.0.0.1:$port
"$server_bin" --listen "127.0.0.1:$port" --database-url "$url" --jwks "$keys/jwks.json" \
  --staff-claim roles --staff-role teacher --progress-interval "$interval_ms" \
  --staff-connections 2 >"$tmp/server.log" 2>&1 &
server_pid=$!
for ((i = 0; i < 200; i++)); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$server_url/readyz" 2>/dev/null) == 200 ]] && break
  kill -0 "$server_pid" 2>/dev/null || die "attempts-server exited: $(tail -n 5 "$tmp/server.log")"
  sleep 0.1
done
say "attempts-server $server_pid on $server_url ($(grep -o 'threads=[0-9]* pool-size=[0-9]*' "$tmp/server.log" | head -n 1))"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status"; }
metric() { curl -s "$server_url/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
# CPU seconds (user + system) a process has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# The proctors: $1 streams, $2 of them parsed and timed (node, bench/progress-streams.mjs), the
# others read and discarded by one epoll loop (tools/progress_readers.cpp, as wrk is for the
# saves); waits (bounded) until every stream is open.
start_readers() {
  URL=$server_url EXAM=$exam TOKEN=$staff_token STREAMS=$2 PARSED=$2 ENCODING=$encoding \
    node "$repo/bench/progress-streams.mjs" >"$tmp/readers.out" 2>&1 &
  readers_pid=$!
  PORT=${server_url##*:} EXAM=$exam TOKEN=$staff_token STREAMS=$(($1 - $2)) ENCODING=$encoding \
    "$silent_readers_bin" >"$tmp/silent-readers.out" 2>&1 &
  silent_readers_pid=$!
  for ((i = 0; i < 300; i++)); do
    [[ $(metric attempts_progress_streams_open) == "$1" ]] && return 0
    sleep 0.1
  done
  die "only $(metric attempts_progress_streams_open) of $1 streams opened"
}
# Ends the readers (in this shell, which waits for them): their line is in $readers. Then waits
# (bounded) for the server to see their streams closed (at its next write to them).
stop_readers() {
  readers_cpu=$(awk -v a="$(cpu_seconds "$readers_pid")" -v b="$(cpu_seconds "$silent_readers_pid")" 'BEGIN { printf "%.2f", a + b }')
  kill -TERM "$readers_pid" "$silent_readers_pid" 2>/dev/null || true
  wait "$readers_pid" 2>/dev/null || true
  wait "$silent_readers_pid" 2>/dev/null || true
  readers_pid=
  silent_readers_pid=
  readers="$(grep '^progress: ' "$tmp/readers.out" | tail -n 1 || true) ; $(grep '^readers: ' "$tmp/silent-readers.out" | tail -n 1 || true)"
  for ((i = 0; i < 300; i++)); do
    [[ $(metric attempts_progress_streams_open) == 0 ]] && return 0
    sleep 0.1
  done
  die "$(metric attempts_progress_streams_open) streams still open 30 s after their readers ended"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
run_saves() {
  local out=$1
  shift
  MAX_ID=$attempts STUDENTS=20000 TOKENS=$tokens timeout --kill-after=10 $((duration + paced_duration + 60)) \
    "$@" -s "$repo/bench/patch.lua" "$server_url" >"$out" 2>&1 &
  child_pid=$!
  wait "$child_pid" || true
  child_pid=
  grep '^bench: ' "$out" | tail -n 1
}

# ---- 1. paced saves with the streams open -------------------------------------------------------
rss_before=$(rss_kib)
echo 5 >"/proc/$server_pid/clear_refs" # VmHWM := VmRSS
start_readers "$streams" 4
sleep 1
kill -USR1 "$readers_pid" # the lag counts from here: the snapshots are in
queries_before=$(metric attempts_progress_queries_total)
query_seconds_before=$(metric attempts_progress_query_seconds_total)
paced_started=$(date +%s.%N)
paced=$(RATE=$rate THREADS=2 run_saves "$tmp/paced.out" "$wrk2_bin" -t2 -c"$paced_connections" \
  -d"${paced_duration}s" -R"$rate" --timeout 10s)
sleep $(((interval_ms * 2 + 999) / 1000)) # the last saves reach the streams
paced_seconds=$(awk -v s="$paced_started" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
queries=$(($(metric attempts_progress_queries_total) - queries_before))
query_seconds=$(awk -v a="$(metric attempts_progress_query_seconds_total)" -v b="$query_seconds_before" 'BEGIN { print a - b }')
stop_readers
rss_peak=$(hwm_kib)
say "paced saves with $streams streams: $paced"
say "readers: $readers"
per_interval=$(awk -v q="$queries" -v s="$paced_seconds" -v i="$interval_ms" 'BEGIN { printf "%.2f", q / (s * 1000 / i) }')
query_ms=$(awk -v t="$query_seconds" -v q="$queries" 'BEGIN { printf "%.1f", (q > 0 ? t * 1000 / q : 0) }')
growth=$(awk -v p="$rss_peak" -v b="$rss_before" 'BEGIN { printf "%.1f", (p - b) / 1024 }')

# ---- 2. saturated saves, without and with the streams, in turn ----------------------------------
declare -a saturated_rows=()
sum_without=0 sum_with=0
for ((r = 1; r <= rounds; r++)); do
  for with in without with; do
    if [[ $with == with ]]; then start_readers "$streams" 1; fi
    server_cpu_before=$(cpu_seconds "$server_pid")
    line=$(run_saves "$tmp/saturated-$with-$r.out" wrk -t2 -c"$connections" -d"${duration}s" --timeout 10s)
    readers_cpu=-
    if [[ $with == with ]]; then
      paced_readers=$readers
      stop_readers
      say "readers: $readers"
      readers=$paced_readers
    fi
    server_cpu=$(awk -v a="$(cpu_seconds "$server_pid")" -v b="$server_cpu_before" 'BEGIN { printf "%.1f", a - b }')
    rps=$(field rps "$line")
    if [[ $with == with ]]; then sum_with=$(awk -v a="$sum_with" -v b="$rps" 'BEGIN { print a + b }'); else sum_without=$(awk -v a="$sum_without" -v b="$rps" 'BEGIN { print a + b }'); fi
    saturated_rows+=("| $r | $with | $rps | $(awk -v u="$(field p99_us "$line")" 'BEGIN { printf "%.1f", u / 1000 }') | $(field non2xx "$line") | $server_cpu | $readers_cpu |")
    say "saturated saves $with streams, round $r: $line"
  done
done
ratio=$(awk -v w="$sum_with" -v o="$sum_without" 'BEGIN { printf "%.3f", (o > 0 ? w / o : 0) }')
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report -------------------------------------------------------------------------------------
errors=$(($(field non2xx "$paced") + $(field connect_errors "$paced") + $(field read_errors "$paced") + $(field timeout_errors "$paced")))
cat <<REPORT
## Progress stream benchmark ($started_at)

$(nproc) cores, load average $load_at_start at the start and $load_at_end at the end (1, 5, 15 min);
attempts-server $(grep -o 'threads=[0-9]* pool-size=[0-9]*' "$tmp/server.log" | head -n 1), --progress-interval $interval_ms ms, --staff-connections 2;
one exam of $attempts attempts (40 questions answered each); $streams streams, Accept-Encoding: $encoding; PostgreSQL 15 private cluster.
Command: BENCH_WRK2=$wrk2_bin scripts/bench-progress.sh --attempts $attempts --streams $streams --rounds $rounds --rate $rate --duration ${duration}s --paced-duration ${paced_duration}s --interval-ms $interval_ms --encoding $encoding

### 1. Saves paced at $rate/s to the watched exam (wrk2, $paced_connections connections, ${paced_duration} s), $streams streams open

| saves/s achieved | save p99 ms | errors | reads of the exam per interval | mean read ms | save-to-stream lag p50 / p99 / max ms | RSS before streams (MiB) | peak growth (MiB) |
|---:|---:|---:|---:|---:|---|---:|---:|
| $(field rps "$paced") | $(awk -v u="$(field p99_us "$paced")" 'BEGIN { printf "%.1f", u / 1000 }') | $errors | $per_interval | $query_ms | $(field p50_ms "$readers") / $(field p99_ms "$readers") / $(field max_ms "$readers") | $((rss_before / 1024)) | $growth |

Readers: $readers

### 2. Saves at full speed to the watched exam (wrk, $connections connections, ${duration} s each, in turn)

CPU seconds of the server during each run, and of the streams' readers (node and
attempts-progress-readers, from their start to their end: the run and a second or two around it)
in the runs with streams: the two cores are shared by the saves' client, PostgreSQL, the server
and the readers.

| round | streams | saves/s | p99 ms | non-2xx | server CPU s | readers CPU s |
|---|---|---:|---:|---:|---:|---:|
$(printf '%s\n' "${saturated_rows[@]}")

Mean saves/s with the $streams streams open ÷ without: **$ratio**.
REPORT
