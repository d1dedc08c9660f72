// The machinery of the contract replay (scripts/lib/contract-replay.mjs says what it checks and
// why): sending a request, reading Prism's sl-violations header, the tally of what was checked,
// and the small checks a case's expectation is made of. Shared by the replay's case files
// (contract-replay.mjs, contract-staff.mjs). Node 18 or later, no packages.
import http from 'node:http';

const kRequestTimeoutMs = 10000;

export const bearer = (token) => ({ Authorization: `Bearer ${token}` });
export const json = (token) => ({ ...bearer(token), 'Content-Type': 'application/json' });

// --- HTTP -----------------------------------------------------------------------------------

// One request on a fresh connection; resolves with the status, headers (lower-case names) and
// body as text.
export function send(base, { method, path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const allHeaders = { ...headers };
    if (body !== undefined) allHeaders['Content-Length'] = Buffer.byteLength(body);
    const request = http.request(url, { method, headers: allHeaders, agent: false });
    request.setTimeout(kRequestTimeoutMs, () =>
      request.destroy(new Error(`no answer within ${kRequestTimeoutMs} ms`)),
    );
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () =>
        resolve({
          status: response.statusCode,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    request.end(body);
  });
}

// --- Bookkeeping ----------------------------------------------------------------------------

export const tally = { prism: 0, direct: 0, responseViolations: 0, failures: 0 };
export const statuses = new Set();
export const unroutedStatuses = new Set();

export function report(ok, label, status, problems) {
  console.log(`${ok ? '  ok  ' : 'FAIL  '}${String(status).padEnd(4)}${label}`);
  for (const problem of problems) console.log(`        ${problem}`);
  if (!ok) tally.failures += 1;
}

export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function isErrorBody(response) {
  const body = parseJson(response.body);
  return (
    (response.headers['content-type'] ?? '') === 'application/json' &&
    body !== null &&
    typeof body === 'object' &&
    !Array.isArray(body) &&
    typeof body.error === 'string' &&
    Object.keys(body).length === 1
  );
}

// Sends `request` through the proxy of `target` and checks the exchange:
//   status   the status the server must answer
//   request  'valid', 'invalid' or 'unrouted' (see the top of this file)
//   allow    for 405: the Allow header expected
//   then     (response, body) => a problem as a string, or nothing: checks of this case
// Returns the response, with `json` set to its parsed body.
export async function exchange(label, target, request, expect) {
  const name = `${request.method} ${request.path}  ${label}`;
  let response;
  try {
    response = await send(target.proxy, request);
  } catch (error) {
    tally.prism += 1;
    report(false, name, '---', [`no response: ${error.message}`]);
    return { status: 0, headers: {}, body: '', json: undefined };
  }
  tally.prism += 1;
  response.json = parseJson(response.body);
  statuses.add(response.status);
  const problems = [];
  if (response.status !== expect.status) problems.push(`expected status ${expect.status}`);
  if ((response.headers['content-type'] ?? '').startsWith('application/problem+json')) {
    problems.push(`Prism answered itself instead of the server: ${response.body}`);
  }

  let violations = [];
  const header = response.headers['sl-violations'];
  if (header !== undefined) {
    violations = parseJson(header);
    if (!Array.isArray(violations)) {
      problems.push(`unreadable sl-violations header: ${header}`);
      violations = [];
    }
  }
  const where = (v) => (Array.isArray(v.location) ? v.location : []);
  const describe = (v) => `${where(v).join('.')}: ${v.message} (${v.severity})`;
  const inResponse = violations.filter((v) => where(v)[0] === 'response');
  const inRequest = violations.filter((v) => where(v)[0] === 'request');
  const routeNotFound = (v) => /route not found/i.test(v.message ?? '');
  tally.responseViolations += inResponse.length;
  for (const v of inResponse) problems.push(`response violation ${describe(v)}`);
  if (violations.length !== inResponse.length + inRequest.length) {
    problems.push(`violation without a location: ${header}`);
  }

  switch (expect.request) {
    case 'valid':
      for (const v of inRequest) problems.push(`request violation, unexpected: ${describe(v)}`);
      break;
    case 'invalid':
      if (inRequest.length === 0 || inRequest.some(routeNotFound)) {
        problems.push('the document does not reject this request, yet the server does');
      }
      break;
    case 'unrouted':
      unroutedStatuses.add(response.status);
      if (inRequest.length !== 1 || !routeNotFound(inRequest[0])) {
        problems.push(`expected Prism to find no operation; it reported ${header ?? 'nothing'}`);
      }
      if (!isErrorBody(response)) problems.push(`not an {"error": "..."} body: ${response.body}`);
      if (expect.allow !== undefined && response.headers.allow !== expect.allow) {
        problems.push(`Allow is "${response.headers.allow}", expected "${expect.allow}"`);
      }
      break;
    default:
      throw new Error(`unknown request class ${expect.request}`);
  }
  if (expect.then && problems.length === 0) {
    const problem = expect.then(response, response.json);
    if (problem) problems.push(problem);
  }
  report(problems.length === 0, name, response.status, problems);
  return response;
}

// HEAD of a JSON resource: the GET goes through Prism (validated), then GET and HEAD go to the
// server directly and must agree on the status and headers; the HEAD has no body.
export async function headLikeGet(label, target, request, status) {
  const get = { ...request, method: 'GET' };
  await exchange(`${label} (the GET of a HEAD)`, target, get, { status, request: request.class });
  const name = `HEAD ${request.path}  ${label} (direct, compared with a direct GET)`;
  const problems = [];
  let direct;
  let head;
  try {
    direct = await send(target.server, { ...get });
    head = await send(target.server, { ...request, method: 'HEAD' });
  } catch (error) {
    tally.direct += 2;
    report(false, name, '---', [`no response: ${error.message}`]);
    return;
  }
  tally.direct += 2;
  statuses.add(head.status);
  if (head.status !== status) problems.push(`expected status ${status}`);
  if (direct.status !== head.status) problems.push(`GET answered ${direct.status}`);
  if (head.body !== '') problems.push(`HEAD has a body: ${head.body}`);
  const compared = ['content-type', 'content-length', 'www-authenticate', 'retry-after', 'allow'];
  for (const field of compared) {
    if (direct.headers[field] !== head.headers[field]) {
      problems.push(`${field}: GET "${direct.headers[field]}", HEAD "${head.headers[field]}"`);
    }
  }
  if (String(Buffer.byteLength(direct.body)) !== head.headers['content-length']) {
    problems.push(`Content-Length ${head.headers['content-length']} is not the GET's body length`);
  }
  report(problems.length === 0, name, head.status, problems);
}

// --- Requests and expectations --------------------------------------------------------------

export const GET = (path, headers) => ({ method: 'GET', path, headers });
export const OPTIONS = (path, headers) => ({ method: 'OPTIONS', path, headers });
export const HEAD = (path, headers) => ({ method: 'HEAD', path, headers });
export const POST = (path, headers, body) => ({ method: 'POST', path, headers, body });
export const PATCH = (path, headers, body) => ({ method: 'PATCH', path, headers, body });
// What the server must answer, for a request that follows the document or breaks it on purpose.
export const valid = (status, then) => ({ status, request: 'valid', then });
export const invalid = (status, then) => ({ status, request: 'invalid', then });

// Checks of a response: each returns a problem, or nothing.
export const challenge = (expected) => (response) => {
  const value = response.headers['www-authenticate'] ?? '';
  const wanted =
    expected === 'missing'
      ? /^Bearer$/
      : new RegExp(`^Bearer error="invalid_token", error_description="[^"]*${expected}`);
  return wanted.test(value) ? undefined : `WWW-Authenticate "${value}"`;
};
export const retryAfter = (response) =>
  /^[1-9][0-9]*$/.test(response.headers['retry-after'] ?? '')
    ? undefined
    : `Retry-After "${response.headers['retry-after']}"`;
// The body has these fields; a function value is a predicate.
export const fields = (wanted) => (response, body) => {
  for (const [key, value] of Object.entries(wanted)) {
    const actual = body?.[key];
    const same =
      typeof value === 'function'
        ? value(actual)
        : JSON.stringify(actual) === JSON.stringify(value);
    if (!same) return `${key} is ${JSON.stringify(actual)}`;
  }
  return undefined;
};
export const noBody = (response) => (response.body === '' ? undefined : `a body: ${response.body}`);
export const isTime = (value) => typeof value === 'string';
export const all =
  (...checks) =>
  (response, body) => {
    for (const check of checks) {
      const problem = check(response, body);
      if (problem) return problem;
    }
    return undefined;
  };

