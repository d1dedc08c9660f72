#!/usr/bin/env bash
# Static checks that need neither a build nor PostgreSQL; .ci/run calls this before scripts/test.sh.
#
#   1. k6/attempts.js: `node --check`, then imported by node with the k6 modules replaced by local
#      stubs, asserting its options (scenario, executor, rate/duration from the environment,
#      thresholds) and calling its default function once (no network: the stub records the call).
#   2. bench/patch.lua: run by the real wrk (its LuaJIT) against a stub HTTP server on 127.0.0.1:
#      the script loads, counts non-2xx responses, prints its `bench:` line, and paced mode
#      delivers about the requested rate.
#   3. docker-compose.yml and docker-compose.citus.yml: `docker-compose config -q`; every file or
#      folder they bind-mount exists; the monitoring services (prometheus, grafana) are there with
#      pinned images, and what deploy/ configures for them (scrape target, data source, dashboard
#      folder) names the services and paths the compose file gives them. promtool and the
#      dashboard's metric names are checked by scripts/test.sh -L operations.
#   4. sql/pgbench/update.sql: the same statement as kSaveOne in src/db/sql.hpp (pgbench must
#      measure what the service runs), and sql/pgbench/update-citus.sql as kSaveOneShard.
#   5. Shell scripts: `bash -n` on each; shellcheck too when it is installed.
#
# Missing tools come from Debian packages (nodejs, wrk, docker-compose) through apt-get.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '==> check-static: %s\n' "$*"; }
fail() { printf 'check-static: FAILED: %s\n' "$*" >&2; exit 1; }

# apt_install_missing COMMAND PACKAGE ...: installs PACKAGE when COMMAND is not on PATH.
apt_install_missing() {
  local missing=() sudo_cmd=()
  while (($# >= 2)); do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]} (Debian packages)"
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
apt_install_missing node nodejs wrk wrk docker-compose docker-compose

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-check-static.XXXXXX")
stub_pid=
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  if [[ -n $stub_pid ]]; then
    kill -TERM "$stub_pid" 2>/dev/null
    wait "$stub_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. k6/attempts.js ------------------------------------------------------------------------------
say "k6/attempts.js: node --check and options, with k6 modules stubbed ($(node --version))"
imports=$(grep -E "^[[:space:]]*import[[:space:]]" k6/attempts.js | sed -E "s/.*from[[:space:]]+'([^']+)'.*/\1/" | sort | tr '\n' ' ')
[[ $imports == "k6 k6/data k6/http " ]] ||
  fail "k6/attempts.js imports '$imports'; this check stubs exactly 'k6', 'k6/data' and 'k6/http'"
sed -e "s#from 'k6/http';#from './k6-http.mjs';#" -e "s#from 'k6/data';#from './k6-data.mjs';#" \
  -e "s#from 'k6';#from './k6.mjs';#" k6/attempts.js >"$tmp/attempts.mjs"
cat >"$tmp/k6-data.mjs" <<'EOF'
// Stub of k6/data: a SharedArray is the array its function returns.
export class SharedArray extends Array {
  constructor(name, make) {
    super();
    this.push(...make());
  }
}
EOF
cat >"$tmp/k6-http.mjs" <<'EOF'
// Stub of k6/http: records calls instead of sending them.
export const calls = [];
export default {
  patch(url, body, params) {
    calls.push({ url, body, params });
    return { status: 204 };
  },
};
EOF
cat >"$tmp/k6.mjs" <<'EOF'
// Stub of k6: check() runs every predicate, as k6 does, and records the results.
export const results = [];
export function check(value, sets) {
  let all = true;
  for (const [name, predicate] of Object.entries(sets)) {
    const ok = Boolean(predicate(value));
    results.push({ name, ok });
    all = all && ok;
  }
  return all;
}
EOF
cat >"$tmp/run.mjs" <<'EOF'
import assert from 'node:assert/strict';
import { calls } from './k6-http.mjs';
import { results } from './k6.mjs';

let generation = 0;
async function load(env) {
  globalThis.__ENV = env;
  return import(`./attempts.mjs?env=${generation++}`); // a fresh module per environment
}

// Defaults.
const mod = await load({});
const { options } = mod;
assert.equal(typeof mod.default, 'function', 'default export is the iteration function');
assert.deepEqual(Object.keys(options.scenarios), ['constant_request_rate']);
const sc = options.scenarios.constant_request_rate;
assert.equal(sc.executor, 'constant-arrival-rate');
assert.equal(sc.rate, 10000);
assert.equal(sc.timeUnit, '1s');
assert.equal(sc.duration, '1m');
assert.ok(Number.isInteger(sc.preAllocatedVUs) && sc.preAllocatedVUs >= 1, 'preAllocatedVUs');
assert.ok(Number.isInteger(sc.maxVUs) && sc.maxVUs >= sc.preAllocatedVUs, 'maxVUs >= preAllocatedVUs');
const th = options.thresholds;
assert.ok(th, 'thresholds present');
assert.deepEqual(th.http_req_failed, ['rate<0.001']);
assert.deepEqual(th.http_req_duration, ['p(99)<50']);
assert.deepEqual(th.dropped_iterations, ['count<1']);
assert.ok(Array.isArray(th.checks) && th.checks.length === 1, 'a threshold on checks');

// One iteration: the request it would send.
mod.default();
assert.equal(calls.length, 1);
const call = calls[0];
const m = /^http:\/\/localhost:8000\/attempts\/([0-9]+)$/.exec(call.url);
assert.ok(m, `URL ${call.url}`);
const id = Number(m[1]);
assert.ok(id >= 1 && id <= 100000, `id ${id} in 1..100000`);
assert.deepEqual(JSON.parse(call.body), { answers: { 1: [1], 2: [2], 3: [3], 4: [4] } });
assert.equal(call.params.headers['Content-Type'], 'application/json');
assert.deepEqual(results, [{ name: 'status is 204', ok: true }]);

// The environment overrides.
const mod2 = await load({ RATE: '15000', DURATION: '2m', BASE_URL: 'http://server:8000/', MAX_ID: '1', P99_MS: '20' });
const sc2 = mod2.options.scenarios.constant_request_rate;
assert.equal(sc2.rate, 15000);
assert.equal(sc2.duration, '2m');
assert.deepEqual(mod2.options.thresholds.http_req_duration, ['p(99)<20']);
assert.ok(sc2.preAllocatedVUs >= Math.ceil(15000 * 10 / 1000), 'VUs sized from the rate');
mod2.default();
assert.equal(calls[1].url, 'http://server:8000/attempts/1');

// With TOKENS, each request carries the token of its attempt's owner (student 1 + (id - 1) % 20000;
// line s of the file is student s). k6's open() reads the file at init; here, a stub.
globalThis.open = (path) => {
  assert.equal(path, '/keys/tokens.txt');
  return Array.from({ length: 20000 }, (_, i) => `token-${i + 1}`).join('\n') + '\n';
};
const mod3 = await load({ TOKENS: '/keys/tokens.txt', MAX_ID: '1' });
mod3.default();
assert.equal(calls[2].params.headers.Authorization, 'Bearer token-1');
const mod4 = await load({ TOKENS: '/keys/tokens.txt', STUDENTS: '20000' });
for (let i = 0; i < 20; ++i) mod4.default();
for (const call of calls.slice(3)) {
  const id = Number(/\/attempts\/([0-9]+)$/.exec(call.url)[1]);
  assert.equal(call.params.headers.Authorization, `Bearer token-${1 + ((id - 1) % 20000)}`);
}
await assert.rejects(load({ TOKENS: '/keys/tokens.txt', STUDENTS: '30000' }), /fewer than STUDENTS/);

// Invalid values stop the script at load time.
await assert.rejects(load({ RATE: 'lots' }), /RATE must be a positive integer/);
await assert.rejects(load({ MAX_ID: '0' }), /MAX_ID must be a positive integer/);
console.log('k6/attempts.js: options and one iteration as expected');
EOF
node --check "$tmp/attempts.mjs" || fail "node --check k6/attempts.js"
(cd "$tmp" && node run.mjs) || fail "k6/attempts.js options or iteration (see above)"

# ---- 2. bench/patch.lua under the real wrk -------------------------------------------------------------
say "bench/patch.lua: wrk against a stub server on 127.0.0.1"
cat >"$tmp/stub-server.mjs" <<'EOF'
// 204 for PATCH /attempts/1..50000 with the expected body and content type, 404 for other ids,
// 400 for anything else. Prints its port, then serves until killed.
import http from 'node:http';
const expected = JSON.stringify({ answers: { 1: [1], 2: [2], 3: [3], 4: [4] } });
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const m = /^\/attempts\/([0-9]+)$/.exec(req.url);
    let status = 400;
    if (req.method === 'PATCH' && m && req.headers['content-type'] === 'application/json'
        && JSON.stringify(JSON.parse(body || 'null')) === expected) {
      status = Number(m[1]) <= 50000 ? 204 : 404;
    }
    res.writeHead(status, { 'Content-Length': '0' });
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
EOF
node "$tmp/stub-server.mjs" >"$tmp/stub.port" 2>"$tmp/stub.err" &
stub_pid=$!
for ((i = 0; i < 50; i++)); do
  [[ -s $tmp/stub.port ]] && break
  kill -0 "$stub_pid" 2>/dev/null || fail "stub server: $(cat "$tmp/stub.err")"
  sleep 0.1
done
port=$(head -n 1 "$tmp/stub.port")
[[ $port =~ ^[0-9]+$ ]] || fail "stub server did not print its port"

# wrk_field OUTPUT KEY: the value of KEY= in the bench: line.
wrk_field() { sed -n 's/^bench:.*[[:space:]]'"$2"'=\([^[:space:]]*\).*/\1/p' <<<"$1"; }

out=$(MAX_ID=100000 timeout 30 wrk -t1 -c4 -d1s -s bench/patch.lua "http://127.0.0.1:$port" 2>&1) ||
  fail "wrk with bench/patch.lua: $out"
grep -q '^non2xx=[0-9]*$' <<<"$out" || fail "no non2xx= line: $out"
requests=$(wrk_field "$out" requests)
non2xx=$(wrk_field "$out" non2xx)
[[ $requests =~ ^[0-9]+$ && $requests -ge 100 ]] || fail "too few requests ($requests): $out"
for key in p50_us p99_us max_us; do
  [[ $(wrk_field "$out" "$key") =~ ^[0-9]+$ ]] || fail "no $key in the bench: line: $out"
done
# Half the ids are 404 (and none is 400, or the request itself was wrong).
if ((non2xx * 10 < requests * 4 || non2xx * 10 > requests * 6)); then
  fail "non2xx=$non2xx of $requests requests; expected about half (a wrong request gets 400 from the stub): $out"
fi
say "patch.lua closed loop: $requests requests, non2xx=$non2xx (about half, as the stub answers)"

for pacing in schedule fixed; do
  out=$(MAX_ID=50000 RATE=200 THREADS=2 CONNECTIONS=8 PACING=$pacing \
    timeout 30 wrk -t2 -c8 -d3s -s bench/patch.lua "http://127.0.0.1:$port" 2>&1) ||
    fail "paced wrk ($pacing): $out"
  rps=$(wrk_field "$out" rps)
  non2xx=$(wrk_field "$out" non2xx)
  # 200 requests/s asked; the stub answers in well under a millisecond.
  awk -v r="$rps" 'BEGIN { exit !(r >= 160 && r <= 220) }' || fail "paced ($pacing) at RATE=200 gave $rps requests/s: $out"
  [[ $non2xx == 0 ]] || fail "paced ($pacing): non2xx=$non2xx, expected 0: $out"
  say "patch.lua paced ($pacing), RATE=200: $rps requests/s"
done
kill -TERM "$stub_pid" 2>/dev/null || true
wait "$stub_pid" 2>/dev/null || true
stub_pid=

# ---- 3. docker-compose.yml -------------------------------------------------------------------------------
say "docker-compose.yml: docker-compose config -q ($(docker-compose version --short 2>/dev/null || echo '?'))"
docker-compose -f docker-compose.yml config -q || fail "docker-compose config -q"
docker-compose -f docker-compose.yml --profile load config --services | grep -qx k6 || fail "no k6 service in the load profile"
say "docker-compose.citus.yml: docker-compose config -q"
docker-compose -f docker-compose.citus.yml config -q || fail "docker-compose -f docker-compose.citus.yml config -q"
docker-compose -f docker-compose.citus.yml --profile load config --services | grep -qx k6 ||
  fail "no k6 service in the load profile of docker-compose.citus.yml"

# bind_sources FILE: the host paths FILE bind-mounts (`config` resolves them to absolute paths).
bind_sources() {
  docker-compose -f "$1" --profile load config | sed -n 's#^ *- \(/[^:]*\):.*#\1#p'
}
for file in docker-compose.yml docker-compose.citus.yml; do
  while read -r source; do
    [[ -e $source ]] || fail "$file mounts $source, which does not exist"
  done < <(bind_sources "$file")
done

say "docker-compose.yml: prometheus and grafana, pinned, wired to deploy/"
compose=$(docker-compose -f docker-compose.yml config)
services=$(docker-compose -f docker-compose.yml config --services)
for service in prometheus grafana; do
  grep -qx "$service" <<<"$services" || fail "no $service service in docker-compose.yml"
done
# Pinned: a version tag, never latest or none.
while read -r image; do
  [[ $image =~ :v?[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "image $image is not pinned to a version"
done < <(sed -n 's/^ *image: \(\(prom\|grafana\/grafana\).*\)/\1/p' <<<"$compose")
grep -q "$repo/deploy/prometheus:/etc/prometheus:ro" <<<"$compose" ||
  fail "prometheus does not mount deploy/prometheus as /etc/prometheus"
grep -qx '      - targets: \["server:8000"\]' deploy/prometheus/prometheus.yml ||
  fail "deploy/prometheus/prometheus.yml does not scrape server:8000"
grep -q 'LISTEN: 0.0.0.0:8000' docker-compose.yml || fail "the server no longer listens on :8000"
grep -qx '    url: http://prometheus:9090' deploy/grafana/provisioning/datasources/prometheus.yml ||
  fail "the Grafana data source is not http://prometheus:9090"
grep -q "$repo/deploy/grafana/dashboards:/etc/grafana/dashboards:ro" <<<"$compose" ||
  fail "grafana does not mount deploy/grafana/dashboards as /etc/grafana/dashboards"
grep -qx '      path: /etc/grafana/dashboards' deploy/grafana/provisioning/dashboards/attempts.yml ||
  fail "the dashboard provider does not read /etc/grafana/dashboards"
node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!d.uid || !Array.isArray(d.panels) || d.panels.length === 0) throw new Error("no uid or panels");' \
  deploy/grafana/dashboards/attempts.json || fail "deploy/grafana/dashboards/attempts.json"

# ---- 4. sql/pgbench/update.sql is still the service's statement -----------------------------------------
say "sql/pgbench/update.sql: the same UPDATE as kSaveOne in src/db/sql.hpp"
normalize() { tr -s '[:space:]' ' ' | sed -e 's/^ //' -e 's/ *;* *$//'; }
service_sql=$(sed -n '/kSaveOne = R"sql(/,/)sql"/p' src/db/sql.hpp | sed -e 's/.*R"sql(//' -e 's/)sql".*//' | normalize)
# Comments and pgbench meta-commands (\set) dropped; pgbench's variables become the service's $n.
# shellcheck disable=SC1003,SC2016 # literal backslash and $1/$2
# The NULL revision literal stands for the service's $3 (pgbench cannot bind a NULL), and
# pgbench's :student needs the type the service gives its $2 when it prepares the statement.
bench_sql=$(grep -v -e '^--' -e '^\\' sql/pgbench/update.sql |
  sed -e 's/:id\b/$1/g' -e 's/:student::bigint\b/$2/g' -e 's/:student\b/$2/g' \
    -e 's/NULL::bigint/$3/g' -e 's/:body\b/$4/g' -e 's/:answered\b/$5/g' | normalize)
[[ -n $service_sql ]] || fail "kSaveOne not found in src/db/sql.hpp"
[[ $service_sql == "$bench_sql" ]] ||
  fail "sql/pgbench/update.sql no longer matches kSaveOne (update it so pgbench measures the service's statement):
  service: $service_sql
  pgbench: $bench_sql"
# The same for Citus: sql/pgbench/update-citus.sql is kSaveOneShard (scripts/bench-citus.sh).
say "sql/pgbench/update-citus.sql: the same UPDATE as kSaveOneShard in src/db/sql.hpp"
service_sql=$(sed -n '/kSaveOneShard = R"sql(/,/)sql"/p' src/db/sql.hpp | sed -e 's/.*R"sql(//' -e 's/)sql".*//' | normalize)
# shellcheck disable=SC1003,SC2016 # literal backslash and $1/$2
bench_sql=$(grep -v -e '^--' -e '^\\' sql/pgbench/update-citus.sql |
  sed -e 's/:id\b/$1/g' -e 's/:student::bigint\b/$2/g' -e 's/:student\b/$2/g' \
    -e 's/NULL::bigint/$3/g' -e 's/:body\b/$4/g' -e 's/:answered\b/$5/g' | normalize)
[[ -n $service_sql ]] || fail "kSaveOneShard not found in src/db/sql.hpp"
[[ $service_sql == "$bench_sql" ]] ||
  fail "sql/pgbench/update-citus.sql no longer matches kSaveOneShard:
  service: $service_sql
  pgbench: $bench_sql"

# ---- 5. shell scripts -----------------------------------------------------------------------------------
scripts=(.ci/run scripts/*.sh scripts/lib/*.sh)
say "bash -n on ${#scripts[@]} scripts"
for f in "${scripts[@]}"; do
  bash -n "$f" || fail "bash -n $f"
done
if command -v shellcheck >/dev/null 2>&1; then
  say "shellcheck ($(shellcheck --version | sed -n 's/^version: //p'))"
  shellcheck -x "${scripts[@]}" || fail "shellcheck"
else
  say "shellcheck not installed; skipped"
fi

say "all static checks passed"
