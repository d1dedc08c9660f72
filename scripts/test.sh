#!/usr/bin/env bash
# Builds a CMake preset and runs its tests (ctest) against a throwaway
# PostgreSQL 15 cluster, which is always stopped and deleted afterwards.
#
#   scripts/test.sh              # preset debug
#   PRESET=asan scripts/test.sh  # another preset (build dir build/$PRESET)
#   scripts/test.sh -L unit      # extra arguments go to ctest
#
# The tests get the cluster through these variables:
#   ATTEMPTS_TEST_DATABASE_URL  postgresql://postgres@127.0.0.1:PORT/attempts_test (schema + seed loaded)
#   ATTEMPTS_TEST_PG_BIN        directory with pg_ctl, psql, ...
#   ATTEMPTS_TEST_PG_DATA       the cluster's data directory
#   ATTEMPTS_TEST_PG_LOG        its log file (writable by the run-as user)
#   ATTEMPTS_TEST_PG_PORT       its port on 127.0.0.1
#   ATTEMPTS_TEST_PG_RUN_AS     "postgres" when running as root, else empty: run pg_ctl as
#                               runuser -u "$ATTEMPTS_TEST_PG_RUN_AS" -- "$ATTEMPTS_TEST_PG_BIN/pg_ctl" -D "$ATTEMPTS_TEST_PG_DATA" ...
#   ATTEMPTS_TEST_SQL_DIR       <repo>/sql (schema.sql, seed.sql; seed.sql is re-runnable and resets the data)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
PRESET=${PRESET:-debug}
build_dir=$repo/build/$PRESET

echo "==> test.sh: installing dependencies"
bash scripts/install-deps.sh
# The npm tools of the contract and browser tests (Redocly, Prism, playwright-core), with npm ci
# as package-lock.json pins them. The browser test installs Debian's chromium itself when it runs.
bash scripts/install-node-tools.sh

# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
pg_require_bin

echo "==> test.sh: building preset $PRESET"
cmake --preset "$PRESET"
cmake --build --preset "$PRESET" -j"$(nproc)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-test.XXXXXX")
chmod 755 "$tmp" # the postgres OS user must be able to enter it
datadir=$tmp/pgdata
logfile=$tmp/postgres.log

# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  pg_stop "$datadir" fast
  if [[ -s $logfile && -d $build_dir ]]; then
    cp "$logfile" "$build_dir/postgres-test.log" && echo "==> test.sh: PostgreSQL log kept in $build_dir/postgres-test.log"
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(pg_free_port)
echo "==> test.sh: throwaway PostgreSQL cluster in $datadir on 127.0.0.1:$port"
# The repo's settings, with a small memory footprint: tests run beside ASan builds.
pg_init_cluster "$datadir" "$port" \
  'shared_buffers = 256MB' \
  'effective_cache_size = 2GB' \
  'maintenance_work_mem = 128MB' \
  'autovacuum_work_mem = 64MB' \
  'huge_pages = off'
pg_start "$datadir" "$logfile"
pg_wait_ready "$port"
pg_create_database "$port" attempts_test
url=$(pg_url "$port" attempts_test)
pg_load_schema_and_seed "$url"

export ATTEMPTS_TEST_DATABASE_URL=$url
export ATTEMPTS_TEST_PG_BIN=$PG_BIN
export ATTEMPTS_TEST_PG_DATA=$datadir
export ATTEMPTS_TEST_PG_LOG=$logfile
export ATTEMPTS_TEST_PG_PORT=$port
if pg_is_root; then
  export ATTEMPTS_TEST_PG_RUN_AS=$PG_OS_USER
else
  export ATTEMPTS_TEST_PG_RUN_AS=
fi
export ATTEMPTS_TEST_SQL_DIR=$repo/sql
# ThreadSanitizer (PRESET=tsan): the server and the tests report every race with both stacks and
# go on; a report in the server's log fails the test that started it (ServerProcess reads the
# log), one in a test binary makes it exit 66. Full histories, so that old accesses get a stack;
# tests/tsan.supp says why libpqxx's own memory accesses are not checked.
if [[ $PRESET == tsan ]]; then
  tsan_defaults="suppressions=$repo/tests/tsan.supp history_size=7 second_deadlock_stack=1"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-$tsan_defaults}
fi

# Unit tests run in parallel; integration tests are RUN_SERIAL (they share the database and
# some stop it), so ctest runs each of them alone.
echo "==> test.sh: ctest --test-dir $build_dir $*"
set +e
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$(nproc)" "$@"
status=$?
set -e
echo "==> test.sh: ctest exited with $status"
exit "$status"
