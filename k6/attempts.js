// k6 load script: PATCH random attempts at a constant arrival rate, as in the reference story.
//
//   k6 run k6/attempts.js                                  # 10k requests/s for 1 minute
//   RATE=15000 DURATION=2m BASE_URL=http://host:8000 k6 run k6/attempts.js
//
// Environment: RATE (requests/s, default 10000), DURATION (default 1m), BASE_URL
// (default http://localhost:8000), MAX_ID (ids 1..MAX_ID, default 100000), P99_MS (p99
// bound in ms, default 50), EXPECTED_LATENCY_MS (default 10), PRE_ALLOCATED_VUS, MAX_VUS.
import http from 'k6/http';
import { check } from 'k6';

const RATE = parseInt(__ENV.RATE || '10000', 10);
const DURATION = __ENV.DURATION || '1m';
const BASE_URL = (__ENV.BASE_URL || 'http://localhost:8000').replace(/\/+$/, '');
const MAX_ID = parseInt(__ENV.MAX_ID || '100000', 10);
const P99_MS = parseInt(__ENV.P99_MS || '50', 10);
const EXPECTED_LATENCY_MS = parseInt(__ENV.EXPECTED_LATENCY_MS || '10', 10);

// k6's guidance for constant-arrival-rate: VUs needed = rate x iteration time (in seconds);
// pre-allocate that with 2x headroom so k6 does not allocate VUs mid-test, and allow 10x
// before iterations are dropped (which the threshold below turns into a failed run).
const NEEDED_VUS = Math.ceil((RATE * EXPECTED_LATENCY_MS) / 1000);
const PRE_ALLOCATED_VUS = parseInt(__ENV.PRE_ALLOCATED_VUS || String(Math.max(50, 2 * NEEDED_VUS)), 10);
const MAX_VUS = parseInt(__ENV.MAX_VUS || String(Math.max(PRE_ALLOCATED_VUS, 10 * NEEDED_VUS)), 10);

const BODY = JSON.stringify({ answers: { 1: [1], 2: [2], 3: [3], 4: [4] } });
const PARAMS = { headers: { 'Content-Type': 'application/json' }, tags: { name: 'PATCH /attempts/{id}' } };

export const options = {
  discardResponseBodies: true,
  scenarios: {
    constant_request_rate: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: PRE_ALLOCATED_VUS,
      maxVUs: MAX_VUS,
    },
  },
  // Any breach fails the run (k6 exits 99). The p99 bound of 50 ms is ten times the service's
  // measured p99 at 15k requests/s on a 2-core box: loose enough for a shared load generator,
  // tight enough that queueing (the failure mode that matters) trips it.
  thresholds: {
    http_req_failed: ['rate<0.001'],
    http_req_duration: [`p(99)<${P99_MS}`],
    dropped_iterations: ['count<1'],
    checks: ['rate==1'],
  },
};

export default function () {
  const id = 1 + Math.floor(Math.random() * MAX_ID);
  const response = http.patch(`${BASE_URL}/attempts/${id}`, BODY, PARAMS);
  check(response, { 'status is 204': (r) => r.status === 204 });
}
