#!/usr/bin/env bash
# Checks the API contract docs/openapi.yaml against the real server:
#   1. lints it with Redocly CLI (redocly.yaml: the recommended rules and a few more); any error
#      or warning fails;
#   2. starts three attempts-server processes on 127.0.0.1, with keys made by attempts-token: one
#      on the test database, allowing one browser origin (CORS), one on a port where no database
#      listens (for the 503s) with CORS off and --history off (the history's 404, which needs no
#      database either), and one that fetches its keys from a URL (the public ones, served on
#      127.0.0.1), for the 401 that carries Retry-After while new keys are fetched;
#   3. starts Stoplight Prism's validating proxy (`prism proxy`) in front of each, on 127.0.0.1;
#   4. replays a fixed list of requests through the proxies (scripts/lib/contract-replay.mjs says
#      which and how each is judged) and fails on any violation Prism finds in a response,
#      whatever its severity, on an unexpected status, and on a request violation the case did
#      not expect;
#   5. prints "contract: N requests, M distinct statuses, V violations".
#
# ctest runs it (label contract) from scripts/test.sh, which provides the database:
#   scripts/test.sh -L contract
# By hand, against a database loaded with sql/schema.sql and sql/seed.sql:
#   ATTEMPTS_TEST_DATABASE_URL=postgresql://... scripts/contract.sh \
#     [--server BIN] [--token-tool BIN]
# (default: the binaries of build/${PRESET:-debug}).
#
# The test adds rows: one timed exam and a few attempts of a student new to the database; it
# changes no seeded attempt. Everything listens on 127.0.0.1 only, every step is bounded in time,
# and only the processes this script started are stopped, by their pid.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/under-test.sh
source scripts/lib/under-test.sh
under_test_init contract contract "$@"

# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
pg_require_bin

bash scripts/install-node-tools.sh
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
started=$SECONDS

# ---- 1. lint -------------------------------------------------------------------------------------
say "redocly lint docs/openapi.yaml ($(node_modules/.bin/redocly --version))"
if ! lint=$(timeout 120 node_modules/.bin/redocly lint --format=stylish 2>&1); then
  printf '%s\n' "$lint"
  fail "redocly lint found errors"
fi
printf '%s\n' "$lint"
if grep -qiE '\bwarning' <<<"$lint"; then
  fail "redocly lint found warnings (fix them, or turn the rule off in redocly.yaml and say why)"
fi

# ---- 2. servers ----------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-contract.XXXXXX")
pids=()
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$? pid
  set +e
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do stop_process "$pid"; done
  if ((status != 0)); then
    for log in "$tmp"/*.log; do
      [[ -s $log ]] || continue
      printf -- '---- last lines of %s ----\n' "$(basename "$log")"
      tail -n 25 "$log"
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_process PID: SIGTERM, up to 10 s to exit, then SIGKILL; returns the exit status. Only
# ever a pid started here.
stop_process() {
  local pid=$1 i status=0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || status=$?
  return "$status"
}

# wait_for_line PID LOG REGEX SECONDS: prints the first line of LOG matching REGEX, once it is
# there; fails if PID exits first or SECONDS pass.
wait_for_line() {
  local pid=$1 log=$2 regex=$3 deadline=$((SECONDS + $4)) line
  while :; do
    if line=$(grep -m1 -E "$regex" "$log" 2>/dev/null); then
      printf '%s\n' "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || fail "$(basename "$log" .log) exited before it was ready"
    ((SECONDS < deadline)) || fail "$(basename "$log" .log) not ready after $4 s"
    sleep 0.1
  done
}

# The keys the servers trust, and another set that they do not (for a forged token).
"$token_tool" keygen "$tmp/keys" >/dev/null 2>&1 || fail "attempts-token keygen failed"
"$token_tool" keygen "$tmp/other-keys" >/dev/null 2>&1 || fail "attempts-token keygen failed"
# A student no test uses (microseconds since the epoch, like the integration tests' fresh ids).
student=$(($(date +%s%N) / 1000))
sign() { "$token_tool" sign --keys "$1" --kid dev-hs256 --sub "$2" "${@:3}"; }
token_owner=$(sign "$tmp/keys" 1)
token=$(sign "$tmp/keys" "$student")
token_expired=$(sign "$tmp/keys" "$student" --now $(($(date +%s) - 7200)) --ttl 3600)
token_forged=$(sign "$tmp/other-keys" "$student")
# Staff (--staff-claim roles --staff-role teacher): sub is the staff id exam_staff lists.
staff_claims() { printf '{"sub":"%s","roles":["teacher"]}' "$1"; }
token_staff=$(sign "$tmp/keys" 1 --claims "$(staff_claims "contract-teacher-$student")")
token_other_staff=$(sign "$tmp/keys" 1 --claims "$(staff_claims "contract-other-$student")")
token_staff_expired=$(sign "$tmp/keys" 1 --claims "$(staff_claims "contract-teacher-$student")" \
  --now $(($(date +%s) - 7200)) --ttl 3600)
# Signed by another key under a kid the servers know: as if the provider had rotated that key.
token_rotated=$("$token_tool" sign --keys "$tmp/other-keys" --kid dev-es256 --sub "$student")

# An exam with a one-second time limit, for a deadline that passes during the replay.
timed_exam=$("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$ATTEMPTS_TEST_DATABASE_URL" \
  -c "INSERT INTO exams (title, duration_seconds) VALUES ('contract: timed', 1) RETURNING id")
[[ $timed_exam =~ ^[0-9]+$ ]] || fail "could not add a timed exam: $timed_exam"

# Exams for the staff cases: one with three attempts (one submitted) whose staff is the staff
# token's subject, one the other staff token's, and a large one (5,000 attempts of about 1 KB)
# whose export the replay holds open to reach --max-exports.
staff_setup=$("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$ATTEMPTS_TEST_DATABASE_URL" \
  -v teacher="contract-teacher-$student" -v other="contract-other-$student" <<'SQL'
WITH exam AS (INSERT INTO exams (title) VALUES ('contract: staff') RETURNING id),
     other AS (INSERT INTO exams (title) VALUES ('contract: other staff') RETURNING id),
     big AS (INSERT INTO exams (title) VALUES ('contract: large export') RETURNING id),
     staff AS (INSERT INTO exam_staff (exam_id, staff_id)
               SELECT id, :'teacher' FROM exam UNION ALL SELECT id, :'teacher' FROM big
               UNION ALL SELECT id, :'other' FROM other),
     attempts AS (INSERT INTO attempts (exam_id, student_id, answers, updated_at, submitted_at)
                  SELECT exam.id, 900000000 + g, '{"1": [2]}', now(),
                         CASE WHEN g = 3 THEN now() END
                    FROM exam, generate_series(1, 3) g RETURNING id),
     padding AS (INSERT INTO attempts (exam_id, student_id, answers)
                 SELECT big.id, 900000100 + g,
                        jsonb_build_object('1', (SELECT jsonb_agg(100000 + o)
                                                   FROM generate_series(1, 140) o))
                   FROM big, generate_series(1, 5000) g)
SELECT (SELECT id FROM exam) || ' ' || (SELECT id FROM other) || ' ' ||
       (SELECT min(id) FROM attempts) || ' ' || (SELECT id FROM big)
SQL
)
read -r staff_exam other_exam staff_attempt big_exam <<<"$staff_setup"
[[ $big_exam =~ ^[0-9]+$ ]] || fail "could not add the staff exams: $staff_setup"

# start_server NAME DATABASE_URL [FLAG...]: starts attempts-server on a free port of 127.0.0.1.
start_server() {
  "$server" --listen 127.0.0.1:0 --database-url "$2" --staff-claim roles --staff-role teacher \
    --max-exports 1 "${@:3}" >"$tmp/$1.log" 2>&1 &
  pids+=($!)
}
# The public keys (a fetched JWKS carries no HS256 secret), served over http on 127.0.0.1.
mkdir "$tmp/remote-keys"
node -e 'const fs = require("fs"); const jwks = JSON.parse(fs.readFileSync(process.argv[1]));
  jwks.keys = jwks.keys.filter((key) => key.kty !== "oct");
  fs.writeFileSync(process.argv[2], JSON.stringify(jwks));' \
  "$tmp/keys/jwks.json" "$tmp/remote-keys/jwks.json"
node clients/js/demo/serve.mjs --root "$tmp/remote-keys" --listen 127.0.0.1:0 \
  >"$tmp/keys-server.log" 2>&1 &
pids+=($!)
keys_server_pid=${pids[-1]}
# The origin of a page that the live server allows (nothing is served there: the replay sends
# the Origin fields a browser on it would).
page_origin=http://127.0.0.1:18700
# Nothing listens on this port: the server answers 503 to everything that needs the database.
no_database_port=$(pg_free_port)
start_server server "$ATTEMPTS_TEST_DATABASE_URL" --jwks "$tmp/keys/jwks.json" \
  --cors-origin "$page_origin"
server_pid=${pids[-1]}
start_server server-no-database "postgresql://postgres@127.0.0.1:$no_database_port/attempts_test" \
  --jwks "$tmp/keys/jwks.json" --history off
server_down_pid=${pids[-1]}
port_of() { sed -E 's/.*:([0-9]+).*/\1/'; }
keys_port=$(wait_for_line "$keys_server_pid" "$tmp/keys-server.log" 'serving .* on http' 30 |
  port_of)
start_server server-remote-keys "$ATTEMPTS_TEST_DATABASE_URL" \
  --jwks-url "http://127.0.0.1:$keys_port/jwks.json"
server_remote_pid=${pids[-1]}
listening='listening on 127\.0\.0\.1:[0-9]+'
server_port=$(wait_for_line "$server_pid" "$tmp/server.log" "$listening" 30 | port_of)
server_down_port=$(wait_for_line "$server_down_pid" "$tmp/server-no-database.log" "$listening" 30 |
  port_of)
server_remote_port=$(wait_for_line "$server_remote_pid" "$tmp/server-remote-keys.log" \
  "$listening" 30 | port_of)
# Its keys fetched: until then it answers 503 to every token.
wait_for_line "$server_remote_pid" "$tmp/server-remote-keys.log" 'verification keys' 30 >/dev/null
say "attempts-server on 127.0.0.1:$server_port, without a database on 127.0.0.1:$server_down_port," \
  "with keys from a URL on 127.0.0.1:$server_remote_port"

# ---- 3. proxies ----------------------------------------------------------------------------------
# start_proxy NAME UPSTREAM_PORT: prism proxy on a free port of 127.0.0.1 (-p 0), without
# --errors (contract-replay.mjs says why) and without CORS headers.
start_proxy() {
  node_modules/.bin/prism proxy docs/openapi.yaml "http://127.0.0.1:$2" \
    --host 127.0.0.1 --port 0 --cors=false --errors=false --validate-request=true \
    >"$tmp/$1.log" 2>&1 &
  pids+=($!)
}
start_proxy prism "$server_port"
prism_pid=${pids[-1]}
start_proxy prism-no-database "$server_down_port"
prism_down_pid=${pids[-1]}
start_proxy prism-remote-keys "$server_remote_port"
prism_remote_pid=${pids[-1]}
prism_listening='Prism is listening on http://127\.0\.0\.1:[0-9]+'
prism_port=$(wait_for_line "$prism_pid" "$tmp/prism.log" "$prism_listening" 60 | port_of)
prism_down_port=$(wait_for_line "$prism_down_pid" "$tmp/prism-no-database.log" "$prism_listening" 60 |
  port_of)
prism_remote_port=$(wait_for_line "$prism_remote_pid" "$tmp/prism-remote-keys.log" \
  "$prism_listening" 60 | port_of)
say "prism proxy $(node_modules/.bin/prism --version) in front of each: 127.0.0.1:$prism_port," \
  "127.0.0.1:$prism_down_port, 127.0.0.1:$prism_remote_port"

# ---- 4. replay -----------------------------------------------------------------------------------
replay_status=0
CONTRACT_PROXY=http://127.0.0.1:$prism_port \
  CONTRACT_SERVER=http://127.0.0.1:$server_port \
  CONTRACT_PROXY_DOWN=http://127.0.0.1:$prism_down_port \
  CONTRACT_SERVER_DOWN=http://127.0.0.1:$server_down_port \
  CONTRACT_PROXY_REMOTE_KEYS=http://127.0.0.1:$prism_remote_port \
  CONTRACT_SERVER_REMOTE_KEYS=http://127.0.0.1:$server_remote_port \
  CONTRACT_PAGE_ORIGIN=$page_origin \
  CONTRACT_STUDENT=$student \
  CONTRACT_TIMED_EXAM=$timed_exam \
  CONTRACT_TOKEN_OWNER=$token_owner \
  CONTRACT_TOKEN=$token \
  CONTRACT_TOKEN_EXPIRED=$token_expired \
  CONTRACT_TOKEN_FORGED=$token_forged \
  CONTRACT_TOKEN_STAFF=$token_staff \
  CONTRACT_TOKEN_OTHER_STAFF=$token_other_staff \
  CONTRACT_TOKEN_STAFF_EXPIRED=$token_staff_expired \
  CONTRACT_STAFF_EXAM=$staff_exam \
  CONTRACT_OTHER_EXAM=$other_exam \
  CONTRACT_STAFF_ATTEMPT=$staff_attempt \
  CONTRACT_BIG_EXAM=$big_exam \
  CONTRACT_TOKEN_ROTATED=$token_rotated \
  timeout 180 node scripts/lib/contract-replay.mjs >"$tmp/replay.out" 2>&1 || replay_status=$?
cat "$tmp/replay.out"

# ---- 5. what the processes said ------------------------------------------------------------------
stop_process "$prism_pid" || true
stop_process "$prism_down_pid" || true
stop_process "$prism_remote_pid" || true
server_status=0
stop_process "$server_pid" || server_status=$?
server_down_status=0
stop_process "$server_down_pid" || server_down_status=$?
server_remote_status=0
stop_process "$server_remote_pid" || server_remote_status=$?
stop_process "$keys_server_pid" || true
pids=()
# Prism logs every violation it finds; none may be in a response, whatever the replay counted.
prism_logs=("$tmp/prism.log" "$tmp/prism-no-database.log" "$tmp/prism-remote-keys.log")
logged=$(cat "${prism_logs[@]}" | grep -c 'Violation: response' || true)
if ((logged > 0)); then
  grep -h 'Violation: response' "${prism_logs[@]}" | head -n 20
  fail "Prism logged $logged response violations"
fi
# A sanitizer report in a server's log fails the test, as in the integration tests.
for log in "$tmp/server.log" "$tmp/server-no-database.log" "$tmp/server-remote-keys.log"; do
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$log"; then
    cat "$log"
    fail "sanitizer report in $(basename "$log")"
  fi
done
((server_status == 0 && server_down_status == 0 && server_remote_status == 0)) ||
  fail "the servers exited with $server_status, $server_down_status and $server_remote_status" \
    "after SIGTERM, not 0"
((replay_status == 0)) || fail "the replay failed (status $replay_status)"
grep -qE '^contract: [0-9]+ requests, [0-9]+ distinct statuses, 0 violations$' "$tmp/replay.out" ||
  fail "the replay printed no summary"
say "passed in $((SECONDS - started)) s (lint, servers, proxies and replay)"
