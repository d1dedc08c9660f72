// Replays a fixed list of requests through Stoplight Prism's validating proxy (`prism proxy`) in
// front of the real attempts-server, and checks what Prism says about every exchange. Run by
// scripts/contract.sh, which starts the servers and the proxies and passes their addresses (and
// tokens, a timed exam, ...) in CONTRACT_* environment variables. Node 18 or later, no packages.
//
// Prism adds an `sl-violations` header to a response when the request or the response breaks
// docs/openapi.yaml. It runs without --errors: with it, Prism would answer a request that breaks
// the document itself (422, 401) instead of forwarding it, so the server's answers to the
// negative cases below would never be checked; and it would still let an undocumented 4xx or 5xx
// status through, which Prism reports only as a warning. Instead, this script counts every
// violation located in the response, whatever its severity, and fails on any. Violations located
// in the request are what each case expects:
//   valid     the request follows the document: no request violation either;
//   invalid   it breaks the document on purpose (a malformed id, a missing token, a wrong body):
//             Prism must report a request violation, which shows that the document states the
//             rule the server enforced;
//   unrouted  a method or path the document has no operation for (405, 404): Prism reports
//             "route not found" and validates nothing, so this script checks the response
//             itself: status, the {"error": "..."} body and, for 405, the Allow header.
// Requests that the document cannot express as broken (an expired token, nesting deeper than
// 32, a body over the limit) are `valid`: the schema accepts them and the server refuses them
// for a rule the document states in words, with a status it documents.
//
// HEAD: Prism 5.14.2 cannot proxy a HEAD answer whose Content-Type is JSON (it parses the empty
// body and answers 500 "invalid json response body"). Those HEAD requests go to the server
// directly and are compared with a GET of the same resource, also sent directly: the same
// status and headers, and no body. The GET itself goes through Prism too. HEAD /metrics
// (text/plain) goes through Prism.
//
// Bodies sent through Prism must survive JSON.parse and JSON.stringify unchanged: Prism
// re-serialises a JSON request body before forwarding it (so no duplicate keys, no integers
// beyond 2^53 and no malformed JSON here; the integration tests cover those).
import {
  bearer,
  json,
  send,
  tally,
  statuses,
  unroutedStatuses,
  report,
  parseJson,
  isErrorBody,
  exchange,
  headLikeGet,
  GET,
  OPTIONS,
  HEAD,
  POST,
  PATCH,
  valid,
  invalid,
  challenge,
  retryAfter,
  fields,
  noBody,
  isTime,
  all,
} from './contract-exchange.mjs';
import { replayProgress } from './contract-progress.mjs';
import { replayStaff } from './contract-staff.mjs';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`contract-replay: ${name} is not set (scripts/contract.sh sets it)`);
    process.exit(2);
  }
  return value;
}

const live = { proxy: required('CONTRACT_PROXY'), server: required('CONTRACT_SERVER') };
const down = { proxy: required('CONTRACT_PROXY_DOWN'), server: required('CONTRACT_SERVER_DOWN') };
// Its keys from a URL (--jwks-url): a token its keys do not verify makes it fetch them again.
const remoteKeys = {
  proxy: required('CONTRACT_PROXY_REMOTE_KEYS'),
  server: required('CONTRACT_SERVER_REMOTE_KEYS'),
};
const student = Number(required('CONTRACT_STUDENT'));
const pageOrigin = required('CONTRACT_PAGE_ORIGIN'); // the live server allows it (CORS)
const timedExam = required('CONTRACT_TIMED_EXAM');
const tokens = {
  owner: required('CONTRACT_TOKEN_OWNER'), // student 1, who owns the seeded attempt 1
  student: required('CONTRACT_TOKEN'), // `student`, new to the database
  expired: required('CONTRACT_TOKEN_EXPIRED'), // `student`, expired an hour ago
  forged: required('CONTRACT_TOKEN_FORGED'), // `student`, signed with a key the server lacks
  staff: required('CONTRACT_TOKEN_STAFF'), // staff of CONTRACT_STAFF_EXAM
  otherStaff: required('CONTRACT_TOKEN_OTHER_STAFF'), // staff of CONTRACT_OTHER_EXAM only
  staffExpired: required('CONTRACT_TOKEN_STAFF_EXPIRED'),
  rotated: required('CONTRACT_TOKEN_ROTATED'), // the same, under a kid the server knows
};
const kMaxId = '9223372036854775807'; // no such attempt or exam: ids are never that high
const kBodyLimit = 65536; // the server's default --body-limit

// CORS: what a browser sends in a preflight, and what a page needs in a response.
const preflightFrom = (origin, method = 'PATCH') => ({
  Origin: origin,
  'Access-Control-Request-Method': method,
  'Access-Control-Request-Headers': 'authorization,content-type',
});
const fromPage = (headers = {}) => ({ ...headers, Origin: pageOrigin });
const allowFields = (response) =>
  Object.keys(response.headers).filter((name) => name.startsWith('access-control-allow'));
const allowedPreflight = (methods) => (response) => {
  const wanted = {
    'access-control-allow-origin': pageOrigin,
    'access-control-allow-methods': methods,
    'access-control-allow-headers': 'authorization, content-type, idempotency-key, last-event-id',
    'access-control-max-age': '7200',
    vary: 'Origin',
  };
  for (const [name, value] of Object.entries(wanted)) {
    if (response.headers[name] !== value) return `${name} is "${response.headers[name]}"`;
  }
  return undefined;
};
const noAllowFields = (response) => {
  const fields = allowFields(response);
  if (fields.length > 0) return `CORS fields for another origin: ${fields.join(', ')}`;
  return response.headers.vary === 'Origin' ? undefined : `Vary is "${response.headers.vary}"`;
};
// Access-Control-Expose-Headers only where the response has a field it names (not on a 204).
const exposable = ['location', 'retry-after', 'www-authenticate', 'idempotent-replayed'];
const readableByThePage = (response) =>
  response.headers['access-control-allow-origin'] === pageOrigin &&
  response.headers['access-control-expose-headers'] ===
    (exposable.some((name) => name in response.headers)
      ? 'Location, Retry-After, WWW-Authenticate, Idempotent-Replayed'
      : undefined) &&
  response.headers.vary === 'Origin'
    ? undefined
    : `not readable by ${pageOrigin}: ${JSON.stringify(response.headers)}`;
const allowIs = (allow) => (response) =>
  response.headers.allow === allow ? undefined : `Allow is "${response.headers.allow}"`;

// The history: the sequence numbers of a page, and the same instant written with another offset.
const seqs = (wanted) => (response, body) => {
  const actual = Array.isArray(body?.entries) ? body.entries.map((entry) => entry.seq) : body;
  return JSON.stringify(actual) === JSON.stringify(wanted)
    ? undefined
    : `entries ${JSON.stringify(actual)}, expected sequence numbers ${JSON.stringify(wanted)}`;
};
const noStore = (response) =>
  response.headers['cache-control'] === 'no-store'
    ? undefined
    : `Cache-Control "${response.headers['cache-control']}"`;
// inOffset('2026-12-07T03:27:29.070706+00:00', 330) is '2026-12-07T08:57:29.070706+05:30': the
// fraction is kept, which a Date would round to milliseconds.
function inOffset(timestamp, minutes) {
  const [, seconds, fraction = '', offset] = /^(.{19})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$/i.exec(timestamp);
  const local = new Date(Date.parse(`${seconds}${offset}`) + minutes * 60000).toISOString();
  const hhmm = new Date(Math.abs(minutes) * 60000).toISOString().slice(11, 16);
  return `${local.slice(0, 19)}${fraction}${minutes < 0 ? '-' : '+'}${hhmm}`;
}
// A query value as a client must send it: percent-encoded, `+` as %2B.
const query = (value) => encodeURIComponent(value);

const nested = (levels) => '['.repeat(levels) + ']'.repeat(levels);
const padded = (bytes) => JSON.stringify({ answers: {}, pad: 'x'.repeat(bytes) });

// --- The replay -----------------------------------------------------------------------------

const started = Date.now();
console.log(
  `contract-replay: through ${live.proxy} (server ${live.server}) and ` +
    `${down.proxy} (server ${down.server}, no database)`,
);
const asStudent = bearer(tokens.student);
const asStudentJson = json(tokens.student);

// Probes.
await exchange('liveness', live, GET('/healthz'), valid(200, fields({ status: 'ok' })));
await exchange('liveness, a query string is ignored', live, GET('/healthz?from=probe'), valid(200));
await exchange('readiness', live, GET('/readyz'), valid(200, fields({ status: 'ready' })));
await exchange('metrics', live, GET('/metrics'), valid(200, (r) =>
  r.body.includes('# TYPE attempts_http_requests_total counter') ? undefined : 'no metrics'));
await exchange('metrics without a body', live, HEAD('/metrics'), valid(200, noBody));
await exchange('a header block over 8 KiB', live,
  GET('/healthz', { 'X-Padding': 'x'.repeat(9000) }), valid(431));

// Starting attempts, as a student new to the database.
const key = { 'Idempotency-Key': `contract-${student}` };
const first = await exchange('start with an Idempotency-Key', live,
  POST('/exams/1/attempts', { ...asStudent, ...key }),
  valid(201, all(
    (r, b) => (r.headers.location === `/attempts/${b?.id}` ? undefined : 'Location'),
    (r) => (r.headers['idempotent-replayed'] === undefined ? undefined : 'Idempotent-Replayed'),
    fields({ exam_id: 1, student_id: student, answers: {}, revision: 0, deadline: null,
             updated_at: null, submitted_at: null }),
  )));
const attemptA = first.json?.id;
await exchange('the same start again: a replay', live,
  POST('/exams/1/attempts', { ...asStudent, ...key }),
  valid(201, all(
    (r) => (r.headers['idempotent-replayed'] === 'true' ? undefined : 'no Idempotent-Replayed'),
    fields({ id: attemptA }),
  )));
await exchange('the same key for another exam', live,
  POST('/exams/2/attempts', { ...asStudent, ...key }), valid(422));
const second = await exchange('start without a key', live,
  POST('/exams/1/attempts', asStudent), valid(201, fields({ id: (id) => id !== attemptA })));
const attemptB = second.json?.id;
const timed = await exchange('start an attempt of a timed exam (1 s)', live,
  POST(`/exams/${timedExam}/attempts`, asStudent), valid(201, fields({ deadline: isTime })));
const attemptC = timed.json?.id;
const deadlineC = timed.json?.deadline;
await exchange('an exam that does not exist', live,
  POST(`/exams/${kMaxId}/attempts`, asStudent), valid(404));
for (const id of ['0', '01', '-3', 'x']) {
  await exchange('a malformed exam id', live, POST(`/exams/${id}/attempts`, asStudent),
    invalid(400));
}
await exchange('an Idempotency-Key of 256 characters', live,
  POST('/exams/1/attempts', { ...asStudent, 'Idempotency-Key': 'k'.repeat(256) }), invalid(400));
await exchange('an Idempotency-Key with a space', live,
  POST('/exams/1/attempts', { ...asStudent, 'Idempotency-Key': 'two words' }), invalid(400));
await exchange('no token', live, POST('/exams/1/attempts'), invalid(401, challenge('missing')));
await exchange('an expired token', live,
  POST('/exams/1/attempts', bearer(tokens.expired)), valid(401, challenge('expired')));
await exchange('a body over the limit', live,
  POST('/exams/1/attempts', asStudentJson, padded(kBodyLimit)), valid(413));

// Saving answers to attempt A.
const a = `/attempts/${attemptA}`;
await exchange('read a new attempt', live, GET(a, asStudent),
  valid(200, fields({ id: attemptA, student_id: student, revision: 0 })));
const saves = [
  ['two questions', { answers: { 1: [2], 2: [1, 3] } }],
  ['no answers', { answers: {} }],
  ['large option ids, ignored fields',
    { answers: { 7: [-9007199254740991, 0, 9007199254740991] }, client: { app: 'web' } }],
  ['nesting of exactly 32 levels (in an ignored field)', `{"answers":{},"deep":${nested(31)}}`],
  ['with revision 5', { answers: { 1: [4] }, revision: 5 }],
];
for (const [label, body] of saves) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  await exchange(`save: ${label}`, live, PATCH(a, asStudentJson, text), valid(204, noBody));
}
await exchange('save with a charset parameter', live,
  PATCH(a, { ...asStudent, 'Content-Type': 'application/json; charset=utf-8' },
    JSON.stringify({ answers: { 1: [4] }, revision: 6 })),
  valid(204));
for (const revision of [6, 2]) {
  await exchange(`a stale revision (${revision})`, live,
    PATCH(a, asStudentJson, JSON.stringify({ answers: { 1: [9] }, revision })),
    valid(409, fields({ revision: 6 })));
}
await exchange('read the saved answers', live, GET(a, asStudent),
  valid(200, fields({ answers: { 1: [4] }, revision: 6, updated_at: isTime })));
const badBodies = [
  ['not an object', '[]'],
  ['answers not an object', '{"answers":[]}'],
  ['a question id with a leading zero', '{"answers":{"01":[1]}}'],
  ['a question id that is not a number', '{"answers":{"q1":[1]}}'],
  ['an option id as a string', '{"answers":{"1":["2"]}}'],
  ['an option id with a fraction', '{"answers":{"1":[1.5]}}'],
  ['answers of a question not in an array', '{"answers":{"1":2}}'],
  ['no answers', '{"revision":7}'],
  ['revision 0', '{"answers":{},"revision":0}'],
  ['revision not a number', '{"answers":{},"revision":"7"}'],
];
for (const [label, body] of badBodies) {
  await exchange(`save: ${label}`, live, PATCH(a, asStudentJson, body), invalid(400));
}
await exchange('save: nesting of 33 levels (in an ignored field)', live,
  PATCH(a, asStudentJson, `{"answers":{},"deep":${nested(32)}}`), valid(400));
await exchange('save: a body over the limit', live,
  PATCH(a, asStudentJson, padded(kBodyLimit)), valid(413));
await exchange('save as text/plain', live,
  PATCH(a, { ...asStudent, 'Content-Type': 'text/plain' }, '{"answers":{}}'), invalid(415));
await exchange('save without a Content-Type', live,
  PATCH(a, asStudent, '{"answers":{}}'), invalid(415));
await exchange('save without a token', live,
  PATCH(a, { 'Content-Type': 'application/json' }, '{"answers":{}}'),
  invalid(401, challenge('missing')));
await exchange('save with a forged token', live,
  PATCH(a, json(tokens.forged), '{"answers":{}}'), valid(401, challenge('signature')));
await exchange("save someone else's attempt", live,
  PATCH('/attempts/1', asStudentJson, '{"answers":{}}'), valid(404));
await exchange('save an attempt that does not exist', live,
  PATCH(`/attempts/${kMaxId}`, asStudentJson, '{"answers":{}}'), valid(404));
await exchange('save with a malformed id', live,
  PATCH('/attempts/0', asStudentJson, '{"answers":{}}'), invalid(400));

// Reading.
await exchange('the owner reads a seeded attempt', live, GET('/attempts/1', bearer(tokens.owner)),
  valid(200, fields({ id: 1, exam_id: 1, student_id: 1 })));
await exchange("someone else's attempt", live, GET('/attempts/1', asStudent), valid(404));
await exchange('an attempt that does not exist', live, GET(`/attempts/${kMaxId}`, asStudent),
  valid(404));
for (const id of ['9223372036854775808', '-1', '+1', 'abc', '1.0', '00042']) {
  await exchange('a malformed attempt id', live, GET(`/attempts/${id}`, asStudent), invalid(400));
}
await exchange('no token', live, GET('/attempts/1'), invalid(401, challenge('missing')));
await exchange('another scheme than Bearer', live,
  GET('/attempts/1', { Authorization: 'Basic YWxpY2U6c2VjcmV0' }),
  invalid(401, challenge('missing')));
await exchange('an expired token', live, GET('/attempts/1', bearer(tokens.expired)),
  valid(401, challenge('expired')));
await exchange('a token that is not a JWT', live, GET('/attempts/1', bearer('not-a-jwt')),
  valid(401, challenge('malformed')));

// The history of attempt A: its start (0) and the six saves answered 204 above (1 to 6); none of
// the refused ones. Saves 1 to 4 sent no revision, 5 and 6 sent theirs.
const h = `${a}/history`;
const firstPage = await exchange('history: the first page', live, GET(`${h}?limit=3`, asStudent),
  valid(200, all(seqs([6, 5, 4]), noStore,
    fields({ id: attemptA, saves: 6, next: `${h}?before=4&limit=3` }),
    (r, b) => (JSON.stringify(b?.entries?.map((e) => [e.kind, e.revision, e.writes])) ===
      JSON.stringify([['save', 6, 1], ['save', 5, 1], ['save', null, 1]]) ? undefined : 'entries'),
    (r, b) => (JSON.stringify(b?.entries?.[0]?.answers) === '{"1":[4]}' ? undefined : 'answers'))));
const secondPage = await exchange('history: the page its next names', live,
  GET(firstPage.json?.next ?? `${h}?before=4&limit=3`, asStudent),
  valid(200, all(seqs([3, 2, 1]), fields({ next: `${h}?before=1&limit=3` }))));
await exchange('history: the last page, the start', live,
  GET(secondPage.json?.next ?? `${h}?before=1&limit=3`, asStudent),
  valid(200, all(seqs([0]), fields({ next: null }),
    (r, b) => (JSON.stringify(b?.entries?.[0]) ===
      JSON.stringify({ ...b?.entries?.[0], kind: 'start', revision: null, answers: {} })
      ? undefined : 'not the start'))));
const wholeHistory = await exchange('history: one page of the default size', live,
  GET(h, asStudent), valid(200, all(seqs([6, 5, 4, 3, 2, 1, 0]), fields({ saves: 6, next: null }))));
const written = Object.fromEntries((wholeHistory.json?.entries ?? []).map((e) => [e.seq, e]));
await exchange('history: at an instant before the start', live,
  GET(`${h}?at=${query('2026-01-01T00:00:00Z')}`, asStudent),
  valid(200, all(noStore, fields({ id: attemptA, saves: 6, at: '2026-01-01T00:00:00Z', entry: null,
    answers: {} }))));
if (written[6] && written[3]) {
  await exchange('history: at the last save\'s own time (+00:00 sent as %2B00:00)', live,
    GET(`${h}?at=${query(written[6].written_at)}`, asStudent),
    valid(200, fields({ at: written[6].written_at, entry: written[6], answers: { 1: [4] } })));
  const third = inOffset(written[3].written_at, 330);
  await exchange('history: at the third save\'s time, written in +05:30', live,
    GET(`${h}?at=${query(third)}`, asStudent),
    valid(200, fields({ at: third, entry: written[3], answers: written[3].answers })));
  const west = inOffset(written[3].written_at, -420);
  await exchange('history: the same instant in -07:00', live,
    GET(`${h}?at=${query(west)}`, asStudent), valid(200, fields({ at: west, entry: written[3] })));
} else {
  report(false, 'history: at an entry\'s own time', '---', ['no entries 3 and 6 to ask about']);
}
await exchange('history: at a time to come', live,
  GET(`${h}?at=${query('2999-12-31T23:59:59.999999-01:00')}`, asStudent),
  valid(200, fields({ entry: (e) => e?.seq === 6, answers: { 1: [4] } })));
for (const [label, q] of [
  ['limit 0', 'limit=0'],
  ['limit 201', 'limit=201'],
  ['a limit that is no number', 'limit=ten'],
  ['before 0', 'before=0'],
  ['before with a leading zero', 'before=04'],
  ['at without an offset', `at=${query('2026-12-07T10:03:00')}`],
  ['at that is no time', 'at=yesterday'],
  ['a malformed %-escape', 'at=2026-12-07T10%3A03%3A0%'],
  // Prism reads a parameter given twice as an array, which the schemas do not allow.
  ['limit twice', 'limit=5&limit=5'],
  ['before twice', 'before=3&before=3'],
]) {
  await exchange(`history: ${label}`, live, GET(`${h}?${q}`, asStudent), invalid(400));
}
// Rules the document states in words only (OpenAPI cannot express them).
for (const [label, q] of [
  ['an unknown parameter', 'page=2'],
  ['at with limit', `at=${query('2026-12-07T10:03:00Z')}&limit=5`],
  ['at with before', `before=3&at=${query('2026-12-07T10:03:00Z')}`],
]) {
  await exchange(`history: ${label}`, live, GET(`${h}?${q}`, asStudent), valid(400));
}
await exchange("history: someone else's attempt", live, GET('/attempts/1/history', asStudent),
  valid(404));
await exchange('history: an attempt that does not exist', live,
  GET(`/attempts/${kMaxId}/history?limit=1`, asStudent), valid(404));
await exchange('history: the owner reads a seeded attempt', live,
  GET('/attempts/1/history', bearer(tokens.owner)), valid(200, fields({ id: 1 })));
await exchange('history: a malformed attempt id', live, GET('/attempts/01/history', asStudent),
  invalid(400));
await exchange('history: no token', live, GET(h), invalid(401, challenge('missing')));
await exchange('history: an expired token', live, GET(h, bearer(tokens.expired)),
  valid(401, challenge('expired')));

// CORS. Preflights, answered without a token or the database, on every path.
for (const [path, methods] of [
  [a, 'GET, HEAD, PATCH'],
  [`${a}/submit`, 'POST'],
  [`${a}/history`, 'GET, HEAD'],
  ['/exams/1/attempts', 'GET, HEAD, POST'],
  ['/healthz', 'GET, HEAD'],
  ['/readyz', 'GET, HEAD'],
  ['/metrics', 'GET, HEAD'],
]) {
  await exchange('a preflight from the allowed origin', live, OPTIONS(path, preflightFrom(pageOrigin)),
    valid(204, all(allowedPreflight(methods), noBody)));
}
await exchange('a preflight of a GET with a token', live,
  OPTIONS(a, preflightFrom(pageOrigin, 'GET')), valid(204, allowedPreflight('GET, HEAD, PATCH')));
for (const origin of ['http://evil.example', `${pageOrigin}/`, 'null']) {
  await exchange(`a preflight from ${origin}`, live, OPTIONS(a, preflightFrom(origin)),
    valid(403, all(noAllowFields, (r) => (r.body.includes(origin) ? 'the origin reflected' : undefined))));
}
await exchange('a preflight whose method is no method name', live,
  OPTIONS(a, preflightFrom(pageOrigin, 'PAT CH')), invalid(400));
await exchange('OPTIONS without Access-Control-Request-Method: no preflight', live,
  OPTIONS(a, { Origin: pageOrigin }), invalid(405, all(allowIs('GET, HEAD, PATCH'), readableByThePage)));
await exchange('a preflight to a server with CORS off', down, OPTIONS(a, preflightFrom(pageOrigin)),
  valid(405, all(allowIs('GET, HEAD, PATCH'),
    (r) => (allowFields(r).length === 0 && r.headers.vary === undefined ? undefined : 'CORS fields'))));
// Actual responses to the allowed origin, errors included, are readable by its page.
await exchange('save from the allowed origin', live,
  PATCH(a, fromPage(asStudentJson), JSON.stringify({ answers: { 1: [5] }, revision: 7 })),
  valid(204, readableByThePage));
await exchange('a stale revision, from the allowed origin', live,
  PATCH(a, fromPage(asStudentJson), JSON.stringify({ answers: { 1: [9] }, revision: 7 })),
  valid(409, all(readableByThePage, fields({ revision: 7 }))));
await exchange('a body over the limit, from the allowed origin', live,
  PATCH(a, fromPage(asStudentJson), padded(kBodyLimit)), valid(413, readableByThePage));
await exchange('the history, from the allowed origin', live, GET(`${a}/history`, fromPage(asStudent)),
  valid(200, all(readableByThePage, fields({ id: attemptA }))));
await exchange('no token, from the allowed origin', live, GET(a, fromPage()),
  invalid(401, all(readableByThePage, challenge('missing'))));
await exchange('start from the allowed origin: Location is exposed', live,
  POST('/exams/1/attempts', fromPage(asStudent)),
  valid(201, all(readableByThePage, (r) => (r.headers.location ? undefined : 'no Location'))));
await exchange('a probe from another origin', live, GET('/healthz', { Origin: 'http://evil.example' }),
  valid(200, noAllowFields));

// Submitting attempt B.
const b = `/attempts/${attemptB}`;
const submitted = await exchange('submit', live, POST(`${b}/submit`, asStudent),
  valid(200, fields({ id: attemptB, submitted_at: isTime })));
const submittedAt = submitted.json?.submitted_at;
await exchange('submit again: the first submission stands', live,
  POST(`${b}/submit`, asStudent), valid(200, fields({ submitted_at: submittedAt })));
await exchange('save a submitted attempt', live,
  PATCH(b, asStudentJson, '{"answers":{"1":[1]}}'),
  valid(409, fields({ submitted_at: submittedAt })));
await exchange('history of the submitted attempt: the refused save is not on it', live,
  GET(`${b}/history`, asStudent),
  valid(200, all(seqs([1, 0]), fields({ saves: 0, next: null }),
    (r, body) => (JSON.stringify(body?.entries?.map((e) => [e.kind, e.revision, e.answers])) ===
      JSON.stringify([['submit', 0, {}], ['start', null, {}]]) ? undefined : 'entries'),
    // The start is written at started_at; the submit when its row is, at or after submitted_at.
    (r, body) => (body?.entries?.[1]?.written_at === second.json?.started_at &&
      Date.parse(body?.entries?.[0]?.written_at) >= Date.parse(submittedAt)
      ? undefined : 'times'))));
await exchange("submit someone else's attempt", live, POST('/attempts/1/submit', asStudent),
  valid(404));
await exchange('submit an attempt that does not exist', live,
  POST(`/attempts/${kMaxId}/submit`, asStudent), valid(404));
await exchange('submit with a malformed id', live, POST('/attempts/00/submit', asStudent),
  invalid(400));
await exchange('submit without a token', live, POST(`${b}/submit`),
  invalid(401, challenge('missing')));

// Attempt C, after its deadline.
const waitMs = Date.parse(deadlineC) + 250 - Date.now();
if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
await exchange('save after the deadline', live,
  PATCH(`/attempts/${attemptC}`, asStudentJson, '{"answers":{"1":[1]}}'),
  valid(409, fields({ deadline: deadlineC })));
await exchange('submit after the deadline', live, POST(`/attempts/${attemptC}/submit`, asStudent),
  valid(200, fields({ submitted_at: isTime })));

// Methods and paths the document has no operation for.
for (const [method, path, allow] of [
  ['DELETE', '/attempts/1', 'GET, HEAD, PATCH'],
  ['PUT', '/attempts/1', 'GET, HEAD, PATCH'],
  ['GET', '/attempts/1/submit', 'POST'],
  ['PATCH', '/attempts/1/history', 'GET, HEAD'],
  ['POST', '/attempts/1/history', 'GET, HEAD'],
  ['DELETE', '/exams/1/attempts', 'GET, HEAD, POST'],
  ['POST', '/healthz', 'GET, HEAD'],
  ['DELETE', '/metrics', 'GET, HEAD'],
]) {
  await exchange('another method', live, { method, path, headers: asStudent },
    { status: 405, request: 'unrouted', allow });
}
for (const path of ['/', '/nope', '/attempts', '/exams/1', '/attempts/1/history/1']) {
  await exchange('no such path', live, GET(path), { status: 404, request: 'unrouted' });
}

// HEAD of JSON resources, compared with GET.
await headLikeGet('liveness', live, { path: '/healthz', class: 'valid' }, 200);
await headLikeGet('readiness', live, { path: '/readyz', class: 'valid' }, 200);
await headLikeGet('an attempt', live, { path: a, headers: asStudent, class: 'valid' }, 200);
await headLikeGet("someone else's attempt", live,
  { path: '/attempts/1', headers: asStudent, class: 'valid' }, 404);
await headLikeGet('no token', live, { path: a, class: 'invalid' }, 401);
await headLikeGet('a forged token', live,
  { path: a, headers: bearer(tokens.forged), class: 'valid' }, 401);
await headLikeGet('a malformed id', live,
  { path: '/attempts/abc', headers: asStudent, class: 'invalid' }, 400);
await headLikeGet('a history page', live, { path: `${a}/history?limit=2`, headers: asStudent,
  class: 'valid' }, 200);
await headLikeGet('the answers at an instant', live, { path: `${a}/history?at=2026-01-01T00%3A00%3A00Z`,
  headers: asStudent, class: 'valid' }, 200);
await headLikeGet("someone else's history", live,
  { path: '/attempts/1/history', headers: asStudent, class: 'valid' }, 404);
await headLikeGet('a history query refused', live,
  { path: `${a}/history?limit=0`, headers: asStudent, class: 'invalid' }, 400);

// The server whose database is unreachable: nothing can be done, and it says so.
const asOwner = bearer(tokens.owner);
await exchange('liveness without a database', down, GET('/healthz'), valid(200));
await exchange('readiness without a database', down, GET('/readyz'), valid(503, retryAfter));
await exchange('metrics without a database', down, GET('/metrics'), valid(200));
await exchange('read without a database', down, GET('/attempts/1', asOwner),
  valid(503, retryAfter));
await exchange('save without a database', down,
  PATCH('/attempts/1', json(tokens.owner), '{"answers":{"1":[1]}}'), valid(503, retryAfter));
await exchange('submit without a database', down, POST('/attempts/1/submit', asOwner),
  valid(503, retryAfter));
await exchange('start without a database', down, POST('/exams/1/attempts', asOwner),
  valid(503, retryAfter));
await exchange('no token, without a database', down, GET('/attempts/1'),
  invalid(401, challenge('missing')));
// That server also runs with --history off: the history is 404, judged before the token.
const noHistory = fields({ error: (e) => /keeps no answer history/.test(e) });
await exchange('the history of a server with --history off', down,
  GET('/attempts/1/history', asOwner), valid(404, noHistory));
await exchange('the history of a server with --history off, no token', down,
  GET('/attempts/1/history?limit=2'), invalid(404, noHistory));
await headLikeGet('the history of a server with --history off', down,
  { path: '/attempts/1/history', headers: asOwner, class: 'valid' }, 404);
await headLikeGet('readiness without a database', down, { path: '/readyz', class: 'valid' }, 503);
await headLikeGet('read without a database', down,
  { path: '/attempts/1', headers: asOwner, class: 'valid' }, 503);

// The server with keys from a URL: while it fetches keys that may verify the token, the 401
// says when one more try is worthwhile (docs/auth.md, "Rotation at the provider").
await exchange('a token its key does not verify, with keys from a URL', remoteKeys,
  PATCH(`/attempts/${kMaxId}`, json(tokens.rotated), '{"answers":{"1":[1]}}'),
  valid(401, all(challenge('signature'), retryAfter)));
await exchange('a forged token, with keys from a URL', remoteKeys,
  GET(`/attempts/${kMaxId}`, bearer(tokens.forged)), valid(401, all(challenge('key'), retryAfter)));

// Staff: exports and staff reads (contract-staff.mjs).
await replayStaff({
  live,
  down,
  tokens,
  staffExam: required('CONTRACT_STAFF_EXAM'),
  otherExam: required('CONTRACT_OTHER_EXAM'),
  staffAttempt: Number(required('CONTRACT_STAFF_ATTEMPT')),
  bigExam: required('CONTRACT_BIG_EXAM'),
});

// The progress stream (contract-progress.mjs): its first events against the schemas.
await replayProgress({
  live,
  down,
  tokens,
  staffExam: required('CONTRACT_STAFF_EXAM'),
  otherExam: required('CONTRACT_OTHER_EXAM'),
});

// --- Summary --------------------------------------------------------------------------------

const requests = tally.prism + tally.direct;
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(
  `contract-replay: ${tally.prism} requests through Prism, ${tally.direct} sent to the server ` +
    `directly (HEAD and the GET it is compared with), in ${seconds} s`,
);
const outside = [...unroutedStatuses].sort((x, y) => x - y).join(' ');
console.log(
  `contract-replay: statuses ${[...statuses].sort((x, y) => x - y).join(' ')}` +
    (outside ? `; ${outside} also for methods or paths outside the document (checked here)` : ''),
);
if (tally.failures > 0) {
  console.log(`contract-replay: ${tally.failures} of ${requests} checks FAILED (see FAIL above)`);
}
console.log(
  `contract: ${requests} requests, ${statuses.size} distinct statuses, ` +
    `${tally.responseViolations} violations`,
);
process.exit(tally.failures === 0 && tally.responseViolations === 0 ? 0 : 1);
