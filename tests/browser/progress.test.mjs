// The progress stream reader (clients/js/progress-stream.js) against a scripted fetch whose
// bodies are streamed in pieces, in Node: no browser, no server. The parser is checked against
// the WHATWG event stream rules with every split of its input; the watch against the wire format
// of issue 31 (snapshot, changes, Last-Event-ID, refusals). Timings are shortened through the
// options; no assertion depends on how fast anything ran, except that a reconnect never comes
// before the server's `retry:` or Retry-After.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';

import { EventStreamParser, watchProgress } from '../../clients/js/progress-stream.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `check` every 5 ms for at most `timeoutMs`.
async function until(what, check, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = check();
    if (value) return value;
    await sleep(5);
  }
  throw new Error(`not within ${timeoutMs} ms: ${what}`);
}

// --- the parser ----------------------------------------------------------------------------

// Parses `bytes` fed in the given pieces (byte offsets), through a streaming UTF-8 decoder as the
// watch does; returns what the parser reported, in order.
function parse(bytes, cuts = []) {
  const seen = [];
  const parser = new EventStreamParser({
    onEvent: (event) => seen.push(['event', event.type, event.data, event.lastEventId]),
    onRetry: (ms) => seen.push(['retry', ms]),
    onComment: (text) => seen.push(['comment', text]),
  });
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    parser.push(decoder.decode(bytes.subarray(from, cut), { stream: true }));
    from = cut;
  }
  parser.push(decoder.decode());
  parser.end();
  return seen;
}

const encode = (text) => new TextEncoder().encode(text);

// Every rule at once: a BOM, the three line ends (a CRLF too, so that splits fall inside it),
// comments, multi-line data, `id`, `event`, `retry` (a bad one ignored), a field without a
// colon, a value without its space, unknown fields, a non-ASCII character (split mid-character
// by some cuts), an id-only block (no event), and an incomplete last event.
const SAMPLE = '\ufeff: hello\r\n' +
  'retry: 1500\r\n' +
  'id: w1-1\r\n' +
  'event: snapshot\r\n' +
  'data: {"a":1}\r\n\r\n' +
  ':keep-alive\n\n' +
  'data:first\rdata: second\r\rdata\ndata: ✓ third\n\n' +
  'retry: 1x\nid: w1-2\nevent: changes\nfoo: bar\ndata: {"b":2}\n\n' +
  'id: w1-3\n\n' +
  'data: after an id-only block\n\n' +
  'id\nevent: changes\ndata: no id any more\n\n' +
  'id: w1-9\nevent: changes\ndata: {"cut":"off"}\n';

const EXPECTED = [
  ['comment', 'hello'],
  ['retry', 1500],
  ['event', 'snapshot', '{"a":1}', 'w1-1'],
  ['comment', 'keep-alive'],
  ['event', 'message', 'first\nsecond', 'w1-1'],
  ['event', 'message', '\n✓ third', 'w1-1'],
  ['event', 'changes', '{"b":2}', 'w1-2'],
  ['event', 'message', 'after an id-only block', 'w1-3'],
  ['event', 'changes', 'no id any more', ''],
];

test('parser: the WHATWG rules, whole and split at every byte boundary', () => {
  const bytes = encode(SAMPLE);
  assert.deepEqual(parse(bytes), EXPECTED);
  for (let cut = 0; cut <= bytes.length; cut += 1) {
    assert.deepEqual(parse(bytes, [cut]), EXPECTED, `split at byte ${cut}`);
  }
  // And a byte at a time, and every pair of cuts at a stride.
  assert.deepEqual(parse(bytes, [...bytes.keys()]), EXPECTED);
  for (let a = 0; a < bytes.length; a += 7) {
    for (let b = a; b <= bytes.length; b += 5) {
      assert.deepEqual(parse(bytes, [a, b]), EXPECTED, `split at bytes ${a} and ${b}`);
    }
  }
});

test('parser: CR alone and CRLF split between pieces are one line end each', () => {
  const seen = [];
  const parser = new EventStreamParser({ onEvent: (event) => seen.push(event.data) });
  // "data: a\r" | "\n" | "\r\n": one line end, then a blank line.
  parser.push('data: a\r');
  parser.push('\n');
  parser.push('\r\n');
  // CR CR: a line end, then a blank line (not one CRLF).
  parser.push('data: b\r\r');
  assert.deepEqual(seen, ['a', 'b']);
  // A lone CR at the end of a piece, then a piece that starts with data: the CR ended the line.
  parser.push('data: c\r');
  parser.push('data: d\r\r');
  assert.deepEqual(seen, ['a', 'b', 'c\nd']);
});

test('parser: a BOM only at the very start is dropped; an event never ended is not dispatched',
  () => {
  assert.deepEqual(parse(encode('\ufeffdata: x\n\n')), [['event', 'message', 'x', '']]);
  // A second BOM is part of the field name: an unknown field, ignored.
  assert.deepEqual(parse(encode('\ufeff\ufeffdata: x\n\ndata: y\n\n')),
    [['event', 'message', 'y', '']]);
  assert.deepEqual(parse(encode('data: x\n\ndata: y\n')), [['event', 'message', 'x', '']]);
  assert.deepEqual(parse(encode('data: x\n\ndata: y')), [['event', 'message', 'x', '']]);
  // An id with a NUL is ignored.
  assert.deepEqual(parse(encode('id: a\0b\ndata: x\n\n')), [['event', 'message', 'x', '']]);
});

test('parser: a line that never ends is an error, not unbounded memory', () => {
  const parser = new EventStreamParser({ maxEventChars: 1000 });
  parser.push(`data: ${'x'.repeat(500)}\n`);
  assert.throws(() => {
    for (let i = 0; i < 10; i += 1) parser.push('y'.repeat(100));
  }, /longer than 1000/);
});

// --- the watch against a scripted fetch ------------------------------------------------------

const STREAM = { 'Content-Type': 'text/event-stream; charset=utf-8' };

// One event as the server writes it (wire.md).
function sse(type, id, data, retry) {
  const head = retry ? `retry: ${retry}\n` : '';
  return `${head}id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

const attempt = (id, answered, extra = {}) => ({
  id, student_id: 100 + id, answered, started_at: '2026-12-07T09:00:00.000000Z',
  updated_at: answered ? '2026-12-07T09:01:00.000000Z' : null, submitted_at: null, deadline: null,
  ...extra,
});
const totals = (attempts, saving, quiet, submitted) => ({ attempts, saving, quiet, submitted });
// Events whose totals do not matter to the test.
const snapshot = (id, at, attempts, retry) =>
  sse('snapshot', id, { at, totals: totals(attempts.length, 0, 0, 0), attempts }, retry);
const changes = (id, at, attempts) =>
  sse('changes', id, { at, totals: totals(attempts.length, 0, 0, 0), attempts });

// A fetch whose answers a test scripts: `respond(call, n)` returns { status, headers, body } for
// a refusal, or { pieces, open } for a stream: pieces are strings sent in that order (a number
// waits that many ms), and the stream then ends, unless `open` (it stays open until aborted).
// A thrown error is a network failure. Every call is recorded with its headers and time.
function streamingFetch(respond) {
  const calls = [];
  const fetch = async (url, init) => {
    const call = { url, headers: init.headers, at: Date.now(), aborted: false };
    calls.push(call);
    init.signal.addEventListener('abort', () => {
      call.aborted = true;
    });
    const answer = await respond(call, calls.length);
    if (answer.status && answer.status !== 200) {
      return new Response(JSON.stringify(answer.body ?? { error: `refused ${answer.status}` }),
        { status: answer.status,
          headers: { 'Content-Type': 'application/json', ...answer.headers } });
    }
    const encoder = new TextEncoder();
    const body = new ReadableStream({
      async start(controller) {
        init.signal.addEventListener('abort', () => {
          try {
            controller.error(new DOMException('aborted', 'AbortError'));
          } catch {
            // already closed
          }
        });
        for (const piece of answer.pieces ?? []) {
          if (call.aborted) return;
          if (typeof piece === 'number') await sleep(piece);
          else controller.enqueue(encoder.encode(piece));
        }
        if (!answer.open && !call.aborted) {
          call.endedAt = Date.now();
          controller.close();
        }
      },
    });
    return new Response(body, { status: 200, headers: answer.headers ?? STREAM });
  };
  fetch.calls = calls;
  return fetch;
}

function watch(fetch, handlers = {}, options = {}) {
  const states = [];
  let tokens = 0;
  const w = watchProgress(
    { baseUrl: 'http://api.test/', token: () => `jwt-${(tokens += 1)}`, fetch },
    7,
    {
      retryMs: 10, retryMaxMs: 80, idleTimeoutMs: 5000,
      onState: (state) => states.push(state),
      ...handlers,
      ...options,
    },
  );
  w.states = states;
  return w;
}

const stateNames = (w) => w.states.map((s) => s.state);

test('watch: a snapshot replaces the table, changes upsert by id; the totals follow', async () => {
  const first = { exam_id: 7, at: 'T0', interval_ms: 2000, quiet_after_s: 300,
    totals: totals(2, 1, 1, 0), attempts: [attempt(1, 0), attempt(2, 3)] };
  const changes1 = { exam_id: 7, at: 'T1', totals: totals(3, 2, 0, 0),
    attempts: [attempt(1, 1), attempt(3, 0)] };
  const changes2 = { exam_id: 7, at: 'T2', totals: totals(3, 1, 0, 1),
    attempts: [attempt(2, 4, { submitted_at: '2026-12-07T09:05:00.000000Z' })] };
  const empty = { exam_id: 7, at: 'T3', totals: totals(3, 1, 0, 1), attempts: [] };
  const fetch = streamingFetch(() => ({
    pieces: [sse('snapshot', 'w1-0', first, 2000), ': keep-alive\n\n',
      sse('changes', 'w1-1', changes1), sse('changes', 'w1-2', changes2),
      sse('changes', 'w1-3', empty)],
    open: true,
  }));
  const seen = [];
  const w = watch(fetch, {
    onSnapshot: (data, table) => seen.push(['snapshot', data.at, [...table.keys()]]),
    onChanges: (data, table) => seen.push(['changes', data.at, [...table.keys()]]),
  });
  await until('four events', () => seen.length === 4);
  assert.deepEqual(seen, [['snapshot', 'T0', [1, 2]], ['changes', 'T1', [1, 2, 3]],
    ['changes', 'T2', [1, 2, 3]], ['changes', 'T3', [1, 2, 3]]]);
  assert.deepEqual([...w.table.values()], [attempt(1, 1),
    attempt(2, 4, { submitted_at: '2026-12-07T09:05:00.000000Z' }), attempt(3, 0)]);
  assert.deepEqual(w.totals, totals(3, 1, 0, 1));
  assert.equal(w.at, 'T3');
  assert.equal(w.lastEventId, 'w1-3');
  assert.deepEqual(stateNames(w), ['connecting', 'open']);
  const call = fetch.calls[0];
  assert.equal(call.url, 'http://api.test/exams/7/progress');
  assert.equal(call.headers.Authorization, 'Bearer jwt-1');
  assert.equal(call.headers.Accept, 'text/event-stream');
  assert.equal(call.headers['Last-Event-ID'], undefined);
  w.stop();
  assert.deepEqual(stateNames(w), ['connecting', 'open', 'stopped']);
  await until('the stream aborted', () => call.aborted);
  await sleep(50);
  assert.equal(fetch.calls.length, 1, 'nothing after stop()');
});

test('watch: a new snapshot after a reconnect replaces the table (rows gone are gone)',
  async () => {
  const fetch = streamingFetch((call, n) => ({
    pieces: n === 1
      ? [snapshot('a-0', 'T0', [attempt(1, 0), attempt(2, 0)])]
      : [snapshot('b-0', 'T1', [attempt(2, 5)])],
    open: n > 1,
  }));
  const w = watch(fetch);
  await until('the second snapshot', () => w.at === 'T1');
  assert.deepEqual([...w.table.values()], [attempt(2, 5)]);
  w.stop();
});

test('reconnect: after the stream ends or drops, with Last-Event-ID and a fresh token',
  async () => {
  const fetch = streamingFetch((call, n) => {
    if (n === 1) {
      return { pieces: [snapshot('w1-0', 'T0', [attempt(1, 0)]),
        changes('w1-1', 'T1', [attempt(1, 2)]),
        // An event cut off by the end of the stream: not applied, its id not kept.
        'id: w1-2\nevent: changes\ndata: {"at":"T2","attempts":[]}'] };
    }
    if (n === 2) throw new TypeError('fetch failed'); // a network error on the way back
    if (n === 3) {
      return { pieces: [changes('w1-3', 'T3', [attempt(4, 0)])] };
    }
    return { pieces: [], open: true };
  });
  const w = watch(fetch);
  await until('the fourth connection', () => fetch.calls.length === 4);
  const calls = fetch.calls;
  assert.deepEqual(calls.map((call) => call.headers['Last-Event-ID']),
    [undefined, 'w1-1', 'w1-1', 'w1-3']);
  assert.deepEqual(calls.map((call) => call.headers.Authorization),
    ['Bearer jwt-1', 'Bearer jwt-2', 'Bearer jwt-3', 'Bearer jwt-4']);
  assert.deepEqual([...w.table.keys()], [1, 4]);
  assert.equal(w.table.get(1).answered, 2);
  assert.ok(stateNames(w).includes('reconnecting'));
  w.stop();
});

test('reconnect: an event that is not JSON ends the connection; it resumes before it', async () => {
  const fetch = streamingFetch((call, n) => ({
    pieces: n === 1
      ? [snapshot('w1-0', 'T0', [attempt(1, 0)]),
        'id: w1-1\nevent: changes\ndata: {"at": "T1", "attem\n\n']
      : [],
    open: true,
  }));
  const w = watch(fetch);
  await until('a second connection', () => fetch.calls.length === 2);
  assert.equal(fetch.calls[1].headers['Last-Event-ID'], 'w1-0');
  assert.ok(fetch.calls[0].aborted, 'the bad stream is closed');
  w.stop();
});

test('backoff: never sooner than the server\'s retry: or Retry-After; doubling, capped, jittered',
  async () => {
    const fetch = streamingFetch((call, n) => {
      if (n === 1) return { pieces: [snapshot('w1-0', 'T0', [], 300)] };
      if (n === 2) {
        const body = { error: 'too many streams' };
        return { status: 503, headers: { 'Retry-After': '1' }, body };
      }
      return { pieces: [], open: true };
    });
    const w = watch(fetch);
    await until('the third connection', () => fetch.calls.length === 3);
    const [first, second, third] = fetch.calls;
    const waited = second.at - first.endedAt;
    assert.ok(waited >= 300, `retry: 300 waited (${waited} ms)`);
    assert.ok(third.at - second.at >= 1000, `Retry-After: 1 waited (${third.at - second.at} ms)`);
    const reconnecting = w.states.filter((s) => s.state === 'reconnecting');
    assert.equal(reconnecting[1].httpStatus, 503);
    assert.equal(reconnecting[1].reason, 'too many streams');
    w.stop();

    // The waits themselves: base `retry`, doubling per failure in a row, at most retryMaxMs
    // (even with jitter), never below Retry-After.
    const idle = streamingFetch(() => ({ open: true }));
    const b = watchProgress({ baseUrl: 'http://api.test', fetch: idle }, 1,
      { retryMs: 100, retryMaxMs: 1000 });
    b.stop();
    await sleep(20);
    assert.equal(idle.calls.length, 0, 'stopped before its token came: no request');
    for (let i = 0; i < 200; i += 1) {
      for (let failures = 1; failures <= 8; failures += 1) {
        const wait = b.backoff(failures, 0);
        const floor = Math.min(1000, 100 * 2 ** (failures - 1));
        assert.ok(wait >= floor && wait <= Math.min(1000, floor * 1.5), `${failures}: ${wait}`);
      }
      assert.ok(b.backoff(1, 5000) >= 5000);
    }
  });

test('refusals: 403 and 404 stop at once and say why; 401 stops after one fresh token',
  async () => {
  for (const [status, reason] of [[403, 'forbidden'], [404, 'not-found'], [406, 'refused']]) {
    const fetch = streamingFetch(() => ({ status, body: { error: `no (${status})` } }));
    const w = watch(fetch);
    await until(`stopped after ${status}`, () => w.state === 'stopped');
    assert.deepEqual(w.states.at(-1),
      { state: 'stopped', reason, httpStatus: status, message: `no (${status})` });
    await sleep(60);
    assert.equal(fetch.calls.length, 1, `no retry of a ${status}`);
  }
  // A 401 (the token expired while the stream was open): one more try with a fresh token at
  // once; a second 401 is final.
  const fetch = streamingFetch((call, n) => (n === 1
    ? { pieces: [snapshot('w1-0', 'T0', [])] }
    : { status: 401, body: { error: 'token expired' } }));
  const w = watch(fetch);
  await until('stopped after 401', () => w.state === 'stopped');
  assert.equal(w.states.at(-1).reason, 'unauthorized');
  assert.deepEqual(fetch.calls.map((call) => call.headers.Authorization),
    ['Bearer jwt-1', 'Bearer jwt-2', 'Bearer jwt-3']);
  // A 401 followed by a stream: the fresh token was the cure, the watch goes on.
  const cured = streamingFetch((call, n) => (n === 1
    ? { status: 401, body: { error: 'token expired' } }
    : { pieces: [snapshot('w1-0', 'T0', [])], open: true }));
  const v = watch(cured);
  await until('open after a 401', () => v.at === 'T0');
  assert.equal(cured.calls[1].headers.Authorization, 'Bearer jwt-2');
  v.stop();
});

test('bounded: a silent connection is dropped; repeated failures give up; signal stops',
  async () => {
  // No byte within idleTimeoutMs: the connection is aborted and a new one made.
  const silent = streamingFetch((call, n) => (n === 1 ? { pieces: [], open: true }
    : { pieces: [snapshot('w1-0', 'T0', [])], open: true }));
  const s = watch(silent, {}, { idleTimeoutMs: 100 });
  await until('a reconnect after silence', () => s.at === 'T0');
  assert.ok(silent.calls[0].aborted);
  s.stop();

  const down = streamingFetch(() => ({ status: 502 }));
  const d = watch(down, {}, { maxFailures: 3, retryMaxMs: 20 });
  await until('gave up', () => d.state === 'stopped');
  assert.equal(d.states.at(-1).reason, 'gave-up');
  assert.equal(down.calls.length, 4);

  // Not an event stream (a proxy's page): retried, not parsed.
  const html = streamingFetch((call, n) => (n === 1
    ? { pieces: ['<html>'], headers: { 'Content-Type': 'text/html' } }
    : { pieces: [], open: true }));
  const h = watch(html);
  await until('a retry after HTML', () => html.calls.length === 2);
  assert.match(h.states.find((x) => x.state === 'reconnecting').reason, /not an event stream/);
  h.stop();

  const controller = new AbortController();
  const open = streamingFetch(() => ({ pieces: [], open: true }));
  const o = watch(open, { signal: controller.signal });
  await until('connected', () => open.calls.length === 1);
  controller.abort();
  await until('aborted', () => open.calls[0].aborted);
  assert.equal(o.state, 'stopped');
});

test('a handler that throws is reported, and the stream goes on', async () => {
  const fetch = streamingFetch(() => ({
    pieces: [snapshot('w1-0', 'T0', [attempt(1, 0)]),
      changes('w1-1', 'T1', [attempt(1, 1)])],
    open: true,
  }));
  const reported = [];
  const original = console.error;
  console.error = (error) => reported.push(error);
  try {
    const w = watch(fetch, { onSnapshot: () => { throw new Error('a drawing bug'); } });
    await until('the changes applied', () => w.at === 'T1');
    assert.equal(fetch.calls.length, 1, 'no reconnect');
    assert.equal(w.table.get(1).answered, 1);
    assert.match(String(reported[0]), /a drawing bug/);
    w.stop();
  } finally {
    console.error = original;
  }
});

test('a 401 with Retry-After (the server is fetching new keys) is tried again after it',
  async () => {
  const fetch = streamingFetch((call, n) => (n === 1
    ? { status: 401, headers: { 'Retry-After': '1' }, body: { error: 'unknown key' } }
    : { pieces: [snapshot('w1-0', 'T0', [])], open: true }));
  const w = watch(fetch);
  await until('open after the keys came', () => w.at === 'T0');
  assert.ok(fetch.calls[1].at - fetch.calls[0].at >= 1000, 'Retry-After: 1 waited');
  assert.equal(fetch.calls[1].headers.Authorization, 'Bearer jwt-2');
  w.stop();
});

test('over real HTTP on loopback: chunks as the socket splits them, a drop, a resume', async () => {
  // Node's own fetch and stream reader against a server that writes an event a few bytes at a
  // time, then drops the connection mid-event; the reconnect carries Last-Event-ID.
  const seen = [];
  const server = http.createServer(async (request, response) => {
    seen.push({ auth: request.headers.authorization, last: request.headers['last-event-id'] });
    response.writeHead(200, STREAM);
    if (seen.length === 1) {
      const text = `retry: 50\r\n${snapshot('w1-0', 'T0', [attempt(1, 0)])}` +
        `: keep-alive\r\n\r\n${changes('w1-1', 'T1', [attempt(1, 4)])}` +
        'id: w1-2\nevent: changes\ndata: {"at"';
      for (let i = 0; i < text.length; i += 7) {
        response.write(text.slice(i, i + 7));
        await sleep(1);
      }
      response.destroy(); // no chunked terminator: a dropped connection
    } else {
      response.write(changes('w1-3', 'T3', [attempt(2, 1)]));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  let tokens = 0;
  const w = watchProgress(
    { baseUrl: `http://127.0.0.1:${server.address().port}`, token: () => `t${(tokens += 1)}` }, 7,
    { retryMs: 10 });
  try {
    await until('the resumed changes', () => w.at === 'T3');
    assert.deepEqual(seen,
      [{ auth: 'Bearer t1', last: undefined }, { auth: 'Bearer t2', last: 'w1-1' }]);
    assert.deepEqual([...w.table.values()], [attempt(1, 4), attempt(2, 1)]);
  } finally {
    w.stop();
    server.closeAllConnections();
    server.close();
  }
});
