# shellcheck shell=bash
# The pieces of scripts/bench.sh: measuring one workload (pgbench, or the server under a load
# generator), the rows it adds to the report, and the checks made after it. Sourced by
# bench.sh; the functions use its globals, set before they are called (repo, tmp, url,
# server_bin, server_flags, keys, tokens_file, students, max_id, ...), and fill the result
# arrays below and bench.sh's `failures`.
# shellcheck disable=SC2154,SC2034 # those globals are bench.sh's, and it reads these

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
is_auth() { [[ $1 == off || $1 == hs256 || $1 == es256 || $1 == rs256 ]]; }

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
r_mode=() r_name=() r_tool=() r_rps=() r_p50=() r_p99=() r_max=() r_bad=() r_rss=() r_cpu=() r_cpu_us=()
r_cs=() r_instr=() r_pgcpu=() r_rows=()
failures=()
declare -A baseline_tps=()
declare -A tag_rps=() tag_cpu_us=() tag_p99_us=() tag_bad=() tag_rss_kib=()
curve_rows=()

us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

# add_row MODE NAME TOOL RPS P50_US P99_US MAX_US BAD RSS CPU CPU_US_PER_REQUEST CS INSTR PGCPU ROWS
add_row() {
  r_mode+=("$1") r_name+=("$2") r_tool+=("$3") r_rps+=("$4") r_p50+=("$5") r_p99+=("$6")
  r_max+=("$7") r_bad+=("$8") r_rss+=("$9") r_cpu+=("${10}") r_cpu_us+=("${11}") r_cs+=("${12}")
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
# --history-compare: the server with --history off.
history_off=0
# --history-read: its result, by mode, one line for the report.
declare -A history_read_line=() history_p99=()
# With floor_row=1 the load is GET /healthz with the same header fields: the HTTP floor.
floor_row=0
readonly bench_origin=http://127.0.0.1:18700

# ---- keys from a URL (--keys-compare) -------------------------------------------------------------------
# With keys_url set, start_server gives the server --jwks-url keys_url instead of --jwks FILE.
keys_url=
# The static HTTP server that serves the JWKS file on 127.0.0.1; bench.sh's cleanup stops it.
keys_http_pid=
keys_http_tool=

# start_keys_http DIR FILE LOG: serves DIR on a free port of 127.0.0.1 (python3's http.server, else
# node:http), waits until FILE answers 200 and sets keys_http_url to FILE's URL.
start_keys_http() {
  local dir=$1 file=$2 log=$3 port py i code=000
  port=$(pg_free_port)
  # The interpreter itself, not a wrapper (pyenv's shims): its pid is the one cleanup stops.
  if command -v python3 >/dev/null 2>&1 && py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) &&
    [[ -x $py ]]; then
    keys_http_tool="python3 -m http.server"
    "$py" -m http.server --bind 127.0.0.1 --directory "$dir" "$port" >>"$log" 2>&1 &
  elif command -v node >/dev/null 2>&1; then
    keys_http_tool="node:http"
    # shellcheck disable=SC2016 # JavaScript, not shell
    node -e 'const http = require("node:http"), fs = require("node:fs"), path = require("node:path");
      const [dir, port] = process.argv.slice(1);
      http.createServer((req, res) => {
        const name = path.basename(decodeURIComponent(req.url.split("?")[0]));
        fs.readFile(path.join(dir, name), (err, data) => {
          console.log(req.method, req.url, err ? 404 : 200);
          if (err) { res.writeHead(404); res.end(); return; }
          res.writeHead(200, { "Content-Type": "application/json" }); res.end(data);
        });
      }).listen(Number(port), "127.0.0.1");' "$dir" "$port" >>"$log" 2>&1 &
  else
    die "--keys-compare serves the JWKS with python3 or node: neither found"
  fi
  keys_http_pid=$!
  keys_http_url=http://127.0.0.1:$port/$file
  for ((i = 0; i < 100; i++)); do
    kill -0 "$keys_http_pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "the key server ($keys_http_tool) exited during start-up (log above)"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "$keys_http_url" 2>/dev/null) || code=000
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  die "the key server ($keys_http_tool) does not serve $keys_http_url after 10 s (status $code; log: $log)"
}

stop_keys_http() {
  local pid=$keys_http_pid
  [[ -n $pid ]] || return 0
  keys_http_pid=
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# start_server LOG MODE AUTH: starts the server and waits until /readyz answers 200; with keys
# from a URL (keys_url) a server that is not ready after 30 s, or that did not take its keys from
# that URL, is stopped and the reason left in server_start_error for the row to fail with.
server_start_error=
start_server() {
  local log=$1 mode=$2 auth_mode=$3 port code=000 wait_s=20 from_url=0 deadline
  local -a flags=("${server_flags[@]}")
  server_start_error=
  if ((server_has_auth)); then
    if [[ $auth_mode == off ]]; then
      flags+=(--auth none)
    elif [[ -n $keys_url ]]; then
      # Fetched by a background thread at start: 503 until the first fetch succeeds.
      flags+=(--jwks-url "$keys_url")
      from_url=1 wait_s=30
    else
      # The server's own token cache, at its default size (it holds an exam's students).
      flags+=(--jwks "$keys/jwks.json")
    fi
  fi
  if ((server_has_durability)); then flags+=(--durability "$mode"); fi
  if ((cors_on)); then flags+=(--cors-origin "$bench_origin"); fi
  if ((history_off)); then flags+=(--history off); fi
  port=$(pg_free_port)
  "$server_bin" --listen "127.0.0.1:$port" --database-url "$url" "${flags[@]}" >>"$log" 2>&1 &
  server_pid=$!
  server_url=http://127.0.0.1:$port
  deadline=$((SECONDS + wait_s))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      server_pid=
      tail -n 20 "$log" >&2
      die "attempts-server exited during start-up (log above)"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "$server_url/readyz" 2>/dev/null) || code=000
    [[ $code == 200 ]] && break
    sleep 0.1
  done
  if ((from_url)); then
    local ready
    ready=$(curl -s "$server_url/readyz" 2>/dev/null) || ready=
    printf 'bench.sh: GET /readyz answered %s: %s\n' "$code" "$ready" >>"$log"
    if [[ $code != 200 ]]; then
      server_start_error="attempts-server not ready after $wait_s s with --jwks-url $keys_url (/readyz $code: ${ready:-no answer}; log: latest-logs/${log##*/})"
    elif [[ $ready != *'"source":"'"$keys_url"'"'* ]]; then
      server_start_error="attempts-server's /readyz does not name $keys_url as its key source: $ready"
    fi
    if [[ -n $server_start_error ]]; then
      stop_server || true
      return 0
    fi
    say "keys from $keys_url: /readyz $ready"
  fi
  [[ $code == 200 ]] || die "attempts-server on $server_url not ready after $wait_s s (log: $log)"
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
  if [[ -n $server_start_error ]]; then
    say "$name: $server_start_error"
    failures+=("$name: $server_start_error")
    ((curve)) || add_row "$mode" "$name" "$tool" "failed" "" "" "" "" "" "" "" "" "" "" ""
    return 0
  fi
  if [[ -z $server_config ]]; then
    # Its effective configuration, without what changes per run.
    server_config=$(sed -n 's/.*attempts-server starting: //p' "$log" | sed -n 1p |
      sed -E 's/(^| )(listen|database-url|jwks-url|jwks-ca|jwks-refresh|jwks-min-refresh|jwks|auth|durability|cors-origin)=[^ ]*//g; s/^ //')
  fi
  local -a env_args=(-u RATE -u PACING -u THREADS -u CONNECTIONS -u TOKENS -u ORIGIN -u FLOOR
    MAX_ID="$max_id" STUDENTS="$students")
  # With authentication off the requests still carry the HS256 tokens (ignored by the server),
  # so that rows with and without it send the same bytes and compare the server alone.
  local token_alg=$auth_mode
  [[ $auth_mode == off ]] && token_alg=hs256
  [[ -n ${tokens_file[$token_alg]:-} ]] && env_args+=(TOKENS="${tokens_file[$token_alg]}")
  ((send_origin)) && env_args+=(ORIGIN="$bench_origin")
  ((floor_row)) && env_args+=(FLOOR=1)
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
  # k6 reads the same variable (k6/attempts.js): passed above when there are tokens.
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
  local requests=${m[requests]} non2xx=${m[non2xx]} errors cpu_s cpu_us cs instr=—
  errors=$((m[connect_errors] + m[read_errors] + m[write_errors] + m[timeout_errors]))
  if ((curve)); then
    curve_rows+=("service $rate ${m[rps]} ${m[p50_us]} ${m[p99_us]}")
    say "$name: ${m[rps]} requests/s"
    return 0
  fi
  cpu_s=$(ticks_to_s $((cpu1 - cpu0)))
  cpu_us=$(awk -v c=$((cpu1 - cpu0)) -v hz="$clk_tck" -v n="$requests" \
    'BEGIN { printf "%.2f", (n > 0 ? c / hz * 1000000 / n : 0) }')
  cs=$(awk -v c=$((cs1 - cs0)) -v n="$requests" 'BEGIN { printf "%.3f", (n > 0 ? c / n : 0) }')
  if [[ -n $perf_out && -s $perf_out ]]; then
    instr=$(awk -F, -v n="$requests" '$3 ~ /instructions/ && $1 ~ /^[0-9]+$/ { printf "%d", (n > 0 ? $1 / n : 0) }' "$perf_out")
    instr=${instr:-—}
  fi
  local hit_note=""
  if [[ -n $hits1 && -n $hits0 && $auth_mode != off ]]; then
    hit_note=$(awk -v h=$((hits1 - hits0)) -v m=$((misses1 - misses0)) 'BEGIN { if (h + m > 0) printf ", cache hits %.2f%%", 100 * h / (h + m) }')
  fi
  rows_result=—
  ((floor_row)) || check_rows "$name" "$t0" $((requests - non2xx)) "$conns"
  last_rps=${m[rps]}
  last_cpu_us=$cpu_us
  # What the targets (bench.sh's report) are judged on, by the workload's tag.
  tag_rps[$tag]=${m[rps]} tag_cpu_us[$tag]=$cpu_us tag_p99_us[$tag]=${m[p99_us]}
  tag_bad[$tag]=$((non2xx + errors)) tag_rss_kib[$tag]=$hwm
  add_row "$mode" "$name$hit_note" "$tool" "${m[rps]}" "${m[p50_us]}" "${m[p99_us]}" "${m[max_us]}" \
    "$non2xx / $errors" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')" "$cpu_s" "$cpu_us" "$cs" \
    "$instr" "$(ticks_to_s $((pg1 - pg0)))" "$rows_result"
  if ((non2xx > 0 || errors > 0)); then failures+=("$name: $non2xx non-2xx responses, $errors socket errors"); fi
  say "$name: ${m[rps]} requests/s"
}

auth_label() { case $1 in off) printf 'auth off' ;; hs256) printf 'HS256' ;; es256) printf 'ES256' ;; rs256) printf 'RS256' ;; esac; }

fmt_int() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%d", v + 0.5; else printf "%s", v }'; }
ratio() { awk -v v="$1" -v b="$2" 'BEGIN { if (v ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", v / b; else printf "—" }'; }
ms() { if [[ $1 =~ ^[0-9]+$ ]]; then us_to_ms "$1"; else printf '%s' "${1:-—}"; fi; }

# run_history_read MODE RATE (--history-read): GET /attempts/{id}/history of an attempt with 1,000
# saves on record, the first page (50 entries), paced at 100/s over 4 connections by wrk2, while
# wrk2 paces saves (bench/patch.lua, the other rows' requests) at RATE over 128 connections.
# Leaves its result in history_read_line[MODE].
run_history_read() {
  local mode=$1 rate=$2 id=$max_id seconds=$duration_s log=$tmp/server-$1-history-read.log
  local token read_out=$tmp/$1-history-read.out save_out=$tmp/$1-history-read-saves.out
  if [[ -z $wrk2_bin ]]; then
    failures+=("history read: needs wrk2 (BENCH_WRK2 or wrk2 on PATH)")
    return 0
  fi
  # The attempt's 1,000 saves, written directly within the last hour (after its start).
  sql "UPDATE attempts SET started_at = now() - interval '1 hour', saves = 1000 WHERE id = $id"
  sql "DELETE FROM answer_history WHERE attempt_id = $id"
  sql "INSERT INTO answer_history (attempt_id, seq, written_at, kind, student_id, revision, writes, answers)
       SELECT id, s, now() - make_interval(secs => (1000 - s) * 3), 's', student_id, s, 1,
              '{\"1\": [1], \"2\": [2], \"3\": [3], \"4\": [4]}'
         FROM attempts, generate_series(1, 1000) AS s WHERE id = $id"
  token=$(sed -n "$((1 + (id - 1) % students))p" "${tokens_file[hs256]}")
  start_server "$log" "$mode" hs256
  say "history read: warming the token cache"
  load_command wrk 64 "$wrk_threads" 0 5
  run_bounded 70 "$tmp/$1-history-read-warmup.out" env MAX_ID="$max_id" STUDENTS="$students" \
    TOKENS="${tokens_file[hs256]}" "${load_cmd[@]}" || true
  load_command wrk2 128 "$wrk_threads" "$rate" "$seconds"
  say "history read: saves at $rate/s and GET /attempts/$id/history at 100/s for ${seconds}s"
  env MAX_ID="$max_id" STUDENTS="$students" TOKENS="${tokens_file[hs256]}" "${load_cmd[@]}" \
    >"$save_out" 2>&1 &
  local saves_pid=$!
  run_bounded $((seconds + 60)) "$read_out" "$wrk2_bin" -t1 -c4 -d"${seconds}s" -R100 --latency \
    --timeout 10s -H "Authorization: Bearer $token" "$server_url/attempts/$id/history" || true
  wait "$saves_pid" || true
  stop_server || true
  local p50 p99 non2xx save_line
  p50=$(awk '$1 == "50.000%" { print $2 }' "$read_out" | head -n 1)
  p99=$(awk '$1 == "99.000%" { print $2 }' "$read_out" | head -n 1)
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$read_out")
  save_line=$(grep '^bench: ' "$save_out" | tail -n 1)
  local -A m=()
  local kv
  # shellcheck disable=SC2086 # split the key=value words
  for kv in ${save_line#bench: }; do m[${kv%%=*}]=${kv#*=}; done
  if [[ -z $p99 || -z $save_line ]]; then
    failures+=("history read: a load generator failed (latest-logs/${read_out##*/}, ${save_out##*/})")
    return 0
  fi
  history_p99[$mode]=$p99
  history_read_line[$mode]="History read beside saves: GET /attempts/$id/history (1,000 saves on record, the first page of 50), wrk2 paced at 100/s over 4 connections: p50 $p50, p99 $p99, ${non2xx:-0} non-2xx; meanwhile saves paced at $rate/s over 128 connections: achieved $(fmt_int "${m[rps]}")/s, p99 $(ms "${m[p99_us]}") ms, ${m[non2xx]} non-2xx, $((m[connect_errors] + m[read_errors] + m[write_errors] + m[timeout_errors])) socket errors."
  say "${history_read_line[$mode]}"
}
