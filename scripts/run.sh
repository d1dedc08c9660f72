#!/usr/bin/env bash
# Runs the attempts service locally, from a fresh clone, in one command:
#   installs dependencies, builds the server and the token tool (release preset, not the
#   tests), creates (once) a local PostgreSQL 15 cluster in .local/pgdata with the schema and
#   seed data and a development key set in .local/keys, starts PostgreSQL if needed, serves
#   the demo pages (clients/js/demo: exam, teacher, proctor) on a second port, prints a ready
#   curl command and the pages' URLs with valid tokens, and runs build/release/attempts-server in the foreground,
#   verifying tokens against .local/keys/jwks.json and allowing the page's origin
#   (--cors-origin).
#
#   scripts/run.sh                 # serves on 0.0.0.0:8000
#   scripts/run.sh --some-flag     # extra arguments go to attempts-server
#
# Environment:
#   ATTEMPTS_LISTEN       address for --listen (default 0.0.0.0:8000)
#   ATTEMPTS_DEMO_PORT    port of the demo exam page on 127.0.0.1 (default 18700; 0: no page)
#   ATTEMPTS_PG_PORT      port of a NEW local cluster (default 55432); an existing
#                         cluster keeps the port it was created with
#   ATTEMPTS_PG_DATA      cluster directory (default .local/pgdata)
#
# On exit (Ctrl-C) it stops the page's server and PostgreSQL if it started it, and
# leaves alone a cluster that was already running. Delete .local/ to start over with fresh data.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

listen=${ATTEMPTS_LISTEN:-0.0.0.0:8000}
demo_port=${ATTEMPTS_DEMO_PORT:-18700}
datadir=$(pg_abspath "${ATTEMPTS_PG_DATA:-$repo/.local/pgdata}")
logfile=$(dirname "$datadir")/postgres.log
seeded_marker=$datadir/attempts-seeded
db=attempts
server=$repo/build/release/attempts-server
token_tool=$repo/build/release/tools/attempts-token
keys=$repo/.local/keys

say() { printf '==> run.sh: %s\n' "$*"; }

say "installing dependencies"
bash scripts/install-deps.sh

# Only what this script runs: the server and the token tool, not the tests (scripts/test.sh
# builds those).
say "building the release preset (attempts-server, attempts-token)"
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target attempts-server attempts-token
if [[ ! -x $server ]]; then
  say "error: the build did not produce $server" >&2
  exit 1
fi

pg_require_bin
if ((demo_port)) && ! command -v node >/dev/null 2>&1; then
  say "installing Node.js for the demo page's server"
  bash scripts/install-deps.sh nodejs
fi

mkdir -p "$(dirname "$datadir")"
if [[ ! -e $datadir/PG_VERSION ]]; then
  port=${ATTEMPTS_PG_PORT:-55432}
  say "creating a local PostgreSQL cluster in $datadir (port $port)"
  pg_init_cluster "$datadir" "$port"
else
  port=$(pg_cluster_port "$datadir")
  if [[ -z $port ]]; then
    say "error: cannot read the port of the cluster in $datadir; delete it to start over" >&2
    exit 1
  fi
  if [[ -n ${ATTEMPTS_PG_PORT:-} && $ATTEMPTS_PG_PORT != "$port" ]]; then
    say "note: the existing cluster in $datadir uses port $port, not ATTEMPTS_PG_PORT=$ATTEMPTS_PG_PORT"
  fi
fi

started_pg=0
server_pid=
demo_pid=
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  if [[ -n $demo_pid ]] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null
    wait "$demo_pid" 2>/dev/null
  fi
  if ((started_pg)); then
    say "stopping the PostgreSQL this script started"
    pg_stop "$datadir" fast
  fi
  exit "$status"
}
trap cleanup EXIT

if pg_is_running "$datadir"; then
  say "PostgreSQL already running on 127.0.0.1:$port; leaving it running on exit"
else
  if pg_port_in_use "$port"; then
    say "error: port $port on 127.0.0.1 is taken by another program; free it or delete $datadir and set ATTEMPTS_PG_PORT" >&2
    exit 1
  fi
  started_pg=1
  pg_start "$datadir" "$logfile"
fi
pg_wait_ready "$port"

url=$(pg_url "$port" "$db")
# Schema and seed are loaded once per cluster; the marker is written after they
# succeed, so an interrupted first load is redone on the next run.
if [[ ! -e $seeded_marker ]]; then
  say "creating database $db with the schema and seed data"
  PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/dropdb" -h 127.0.0.1 -p "$port" -U postgres --if-exists "$db"
  pg_create_database "$port" "$db"
  pg_load_schema_and_seed "$url"
  date -u +%FT%TZ >"$seeded_marker"
else
  # This checkout's schema on a database made by an older one (idempotent: new tables such as
  # exam_staff, new functions; the data stays).
  PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" \
    -f sql/schema.sql >/dev/null
fi

# Development keys, made once: the server verifies tokens against keys/jwks.json; the private
# keys sign tokens for local use. Not for production (there the identity provider signs).
if [[ ! -s $keys/jwks.json ]]; then
  say "creating development keys in $keys"
  "$token_tool" keygen "$keys" >/dev/null
fi
# Attempt 42 belongs to student 42 (sql/seed.sql: 1 + (id - 1) % 20000).
token=$("$token_tool" sign --keys "$keys" --kid dev-hs256 --sub 42 --ttl 43200)
# A staff member of exam 1 (--staff-claim roles --staff-role teacher, exam_staff below).
staff_token=$("$token_tool" sign --keys "$keys" --kid dev-hs256 --sub 1 --ttl 43200 \
  --claims '{"sub":"demo-teacher","roles":["teacher"]}')
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" \
  -c "INSERT INTO exam_staff (exam_id, staff_id) VALUES (1, 'demo-teacher') ON CONFLICT DO NOTHING"
listen_port=${listen##*:}
say "try it (a token for student 42, who owns attempts 42, 20042, 40042, ...; valid 12 hours):"
cat <<TRY
  TOKEN='$token'
  curl -i -X PATCH localhost:$listen_port/attempts/42 -H "Authorization: Bearer \$TOKEN" \\
       -H 'Content-Type: application/json' -d '{"answers": {"1": [2], "2": [1, 3]}}'
  curl -s localhost:$listen_port/attempts/42 -H "Authorization: Bearer \$TOKEN"
  # more tokens: $token_tool sign --keys $keys --kid dev-hs256 --sub <student>
  # exam 1's answers, as its staff (demo-teacher):
  curl -s localhost:$listen_port/exams/1/attempts -H "Authorization: Bearer $staff_token" -H 'Accept: text/csv' | head
TRY

# The demo exam page on its own origin; the server allows that origin (CORS), under both names
# a browser may use for it.
cors_flags=()
if ((demo_port)); then
  if pg_port_in_use "$demo_port"; then
    say "error: port $demo_port on 127.0.0.1 is taken; set ATTEMPTS_DEMO_PORT to another (0: no page)" >&2
    exit 1
  fi
  node clients/js/demo/serve.mjs --listen "127.0.0.1:$demo_port" &
  demo_pid=$!
  cors_flags=(--cors-origin "http://127.0.0.1:$demo_port" --cors-origin "http://localhost:$demo_port")
  say "the demo exam page, as student 42 (a new attempt of exam 1; reload keeps it):"
  echo "  http://127.0.0.1:$demo_port/demo/?api=http://127.0.0.1:$listen_port&exam=1#token=$token"
  say "the demo teacher page, as demo-teacher (staff of exam 1): downloads exam 1's answers as CSV"
  echo "  http://127.0.0.1:$demo_port/demo/teacher.html?api=http://127.0.0.1:$listen_port&exam=1#token=$staff_token"
  say "the demo proctor page, as demo-teacher: exam 1's attempts live (saves, quiet, submitted)"
  echo "  http://127.0.0.1:$demo_port/demo/proctor.html?api=http://127.0.0.1:$listen_port&exam=1#token=$staff_token"
fi

say "PostgreSQL: $url (log $logfile)"
staff_flags=(--staff-claim roles --staff-role teacher)
say "starting $server --listen $listen --database-url $url --jwks $keys/jwks.json ${staff_flags[*]} ${cors_flags[*]} $*"
say "press Ctrl-C to stop"
# In the background so that INT/TERM reach this script, which forwards TERM to
# the server, waits for it and then stops PostgreSQL.
"$server" --listen "$listen" --database-url "$url" --jwks "$keys/jwks.json" "${staff_flags[@]}" \
  "${cors_flags[@]}" "$@" &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null' INT TERM
status=0
while :; do
  wait "$server_pid" && status=0 || status=$?
  # wait returns >128 early when a trapped signal arrives; keep waiting until the server has exited.
  kill -0 "$server_pid" 2>/dev/null || break
done
server_pid=
say "attempts-server exited with status $status"
exit "$status"
