// The reference client's protocol rules (clients/js/README.md) against a scripted fetch, in Node:
// no browser, no server. Each test names the rule it checks. Timings are shortened through the
// client's options; no assertion depends on how fast anything ran, except that a retry never
// comes before the server's Retry-After.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AttemptsClient } from '../../clients/js/attempts-client.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A fetch whose answers a test scripts: `respond(call)` returns [status, body, headers] or throws.
// Records every call with its parsed body, and the most calls in flight at once.
function scriptedFetch(respond) {
  const calls = [];
  let inFlight = 0;
  const fetch = async (url, init) => {
    const call = {
      url,
      method: init.method,
      headers: init.headers,
      body: init.body ? JSON.parse(init.body) : undefined,
      keepalive: init.keepalive,
      at: Date.now(),
    };
    calls.push(call);
    inFlight += 1;
    fetch.maxInFlight = Math.max(fetch.maxInFlight, inFlight);
    try {
      await sleep(5);
      const [status, body, headers = {}] = await respond(call, calls.length);
      return new Response(status === 204 ? null : JSON.stringify(body ?? {}), { status, headers });
    } finally {
      inFlight -= 1;
    }
  };
  fetch.calls = calls;
  fetch.maxInFlight = 0;
  return fetch;
}

function client(fetch, options = {}) {
  const made = new AttemptsClient({
    baseUrl: 'http://api.test/',
    token: 'jwt',
    fetch,
    flushOnHide: false,
    debounceMs: 20,
    maxWaitMs: 200,
    retryBaseMs: 10,
    retryMaxMs: 40,
    ...options,
  });
  made.statuses = [];
  made.addEventListener('status', (event) => made.statuses.push(event.detail.status));
  return made;
}

const patches = (fetch) => fetch.calls.filter((call) => call.method === 'PATCH');

test('rules 1 and 4: the whole set, debounced, one request in flight', async () => {
  const fetch = scriptedFetch(() => [204]);
  const c = client(fetch);
  c.save(7, { 1: [1] });
  c.save(7, { 1: [2] });
  const status = await c.save(7, { 1: [2], 2: [3] });
  assert.equal(status, 'saved');
  assert.equal(patches(fetch).length, 1);
  assert.deepEqual(patches(fetch)[0].body.answers, { 1: [2], 2: [3] });
  assert.equal(patches(fetch)[0].url, 'http://api.test/attempts/7');
  assert.equal(patches(fetch)[0].headers.Authorization, 'Bearer jwt');
  // Clicks while a PATCH is in flight wait for it, then go as one.
  const slow = scriptedFetch(async () => {
    await sleep(60);
    return [204];
  });
  const d = client(slow);
  d.save(8, { 1: [1] });
  await sleep(40); // the first PATCH is on its way
  d.save(8, { 1: [2] });
  d.save(8, { 1: [3] });
  assert.equal(await d.flush(8), 'saved');
  assert.equal(slow.maxInFlight, 1);
  assert.deepEqual(patches(slow).at(-1).body.answers, { 1: [3] });
  assert.ok(patches(slow).length <= 2);
  assert.equal(c.statuses.at(-1), 'saved');
});

test('rule 2: every PATCH carries a greater revision, above what was loaded', async () => {
  const fetch = scriptedFetch((call) =>
    call.method === 'GET'
      ? [200, { id: 9, revision: Date.now() + 60000, answers: {}, submitted_at: null }]
      : [204]);
  const c = client(fetch);
  const loaded = await c.load(9);
  for (let i = 0; i < 3; i += 1) await c.save(9, { 1: [i] });
  const revisions = patches(fetch).map((call) => call.body.revision);
  assert.equal(revisions.length, 3);
  assert.ok(revisions[0] > loaded.revision);
  assert.ok(revisions[1] > revisions[0] && revisions[2] > revisions[1]);
});

test('rule 3: a 409 for our own newer revision is no conflict; another device\'s is', async () => {
  let storedRevision = 0;
  const fetch = scriptedFetch((call) => {
    // As if a later PATCH of ours had already been stored.
    storedRevision = Math.max(storedRevision, call.body.revision);
    return [409, { error: 'stale', revision: storedRevision }];
  });
  const c = client(fetch);
  assert.equal(await c.save(1, { 1: [1] }), 'saved');
  const elsewhere = scriptedFetch(() => [409, { error: 'stale', revision: Date.now() + 3600000 }]);
  const d = client(elsewhere);
  assert.equal(await d.save(2, { 1: [1] }), 'conflict');
  await sleep(100);
  assert.equal(patches(elsewhere).length, 1, 'nothing overwritten, nothing retried');
});

test('rule 5: 503, 504 and network errors are retried, never before Retry-After', async () => {
  const answers = [
    () => { throw new TypeError('Failed to fetch'); },
    () => [504, { error: 'unknown', outcome: 'unknown' }, { 'Retry-After': '1' }],
    () => [503, { error: 'unavailable' }],
    () => [204],
  ];
  const fetch = scriptedFetch((call, n) => answers[n - 1]());
  const c = client(fetch);
  assert.equal(await c.save(3, { 1: [1] }), 'saved');
  const sent = patches(fetch);
  assert.equal(sent.length, 4);
  assert.ok(sent[2].at - sent[1].at >= 1000, 'the retry waited for Retry-After: 1');
  assert.ok(c.statuses.includes('offline'));
  assert.ok(sent.every((call, i) => i === 0 || call.body.revision > sent[i - 1].body.revision));
});

test('rule 6: no 4xx is retried; 401 waits for a new token', async () => {
  const fetch = scriptedFetch(() => [400, { error: 'question id "01" ...' }]);
  const c = client(fetch);
  assert.equal(await c.save(4, { 1: [1] }), 'error');
  await sleep(100);
  assert.equal(patches(fetch).length, 1);

  let token = 'old';
  const auth = scriptedFetch((call) =>
    call.headers.Authorization === 'Bearer old' ? [401, { error: 'expired' }] : [204]);
  const d = client(auth, { token: () => token });
  assert.equal(await d.save(5, { 1: [1] }), 'unauthorized');
  await sleep(100);
  assert.equal(patches(auth).length, 1);
  token = 'new';
  d.setToken('new');
  assert.equal(await d.flush(5), 'saved');
  assert.deepEqual(patches(auth).at(-1).body.answers, { 1: [1] });
});

test('rule 7: 409 after submission or the deadline stops saving', async () => {
  for (const [body, status] of [
    [{ error: 'final', submitted_at: '2026-11-28T15:20:41+00:00' }, 'submitted'],
    [{ error: 'late', deadline: '2026-11-28T16:00:00+00:00' }, 'deadline'],
  ]) {
    const fetch = scriptedFetch(() => [409, body]);
    const c = client(fetch);
    assert.equal(await c.save(6, { 1: [1] }), status);
    assert.equal(await c.save(6, { 1: [2] }), status);
    await sleep(60);
    assert.equal(patches(fetch).length, 1, 'nothing sent after it is final');
  }
});

test('rule 7: submit stores what is pending first', async () => {
  const fetch = scriptedFetch((call) =>
    call.method === 'POST' ? [200, { id: 6, revision: 1, answers: {}, submitted_at: 'now' }] : [204]);
  const c = client(fetch, { debounceMs: 1000, maxWaitMs: 1000 });
  c.save(6, { 1: [1] });
  await c.submit(6);
  assert.deepEqual(fetch.calls.map((call) => call.method), ['PATCH', 'POST']);
  assert.equal(c.statuses.at(-1), 'submitted');
});

test('rule 8: a start sends the same Idempotency-Key with every retry', async () => {
  const fetch = scriptedFetch((call, n) =>
    n < 3 ? [503, { error: 'unavailable' }] : [201, { id: 11, revision: 0, answers: {} }]);
  const c = client(fetch);
  const attempt = await c.start(3);
  assert.equal(attempt.id, 11);
  const keys = fetch.calls.map((call) => call.headers['Idempotency-Key']);
  assert.equal(keys.length, 3);
  assert.ok(keys[0] && keys.every((key) => key === keys[0]));
  assert.equal(fetch.calls[0].url, 'http://api.test/exams/3/attempts');
});

test('rule 9: a page hide sends what is pending at once, keepalive, with a newer revision',
  async () => {
    const fetch = scriptedFetch(() => [204]);
    const c = client(fetch, { debounceMs: 5000, maxWaitMs: 5000 });
    const saved = c.save(12, { 1: [1] });
    c.flushAll({ keepalive: true });
    // The page was only hidden and lives on: the keepalive request counts as the save.
    assert.equal(await saved, 'saved');
    assert.equal(patches(fetch).length, 1);
    assert.equal(patches(fetch)[0].keepalive, true);
    assert.deepEqual(patches(fetch)[0].body.answers, { 1: [1] });
  });

// --- the answer history: read only, retried like load() ---------------------------------------

const gets = (fetch) => fetch.calls.filter((call) => call.method === 'GET');
const entry = (seq, kind = 'save') => ({
  seq, kind, written_at: `2026-12-07T10:0${seq}:00.000001+00:00`, revision: null, writes: 1,
  answers: { 1: [seq] },
});

test('history: a page, then the next one as the server wrote it, then null', async () => {
  const pages = {
    '/attempts/42/history?limit=2': { id: 42, saves: 2, entries: [entry(2), entry(1)],
      next: '/attempts/42/history?before=1&limit=2' },
    '/attempts/42/history?before=1&limit=2': { id: 42, saves: 2, entries: [entry(0, 'start')],
      next: null },
  };
  const fetch = scriptedFetch((call) => {
    const page = pages[call.url.slice('http://api.test'.length)];
    return page ? [200, page] : [400, { error: `unexpected ${call.url}` }];
  });
  const c = client(fetch);
  const first = await c.history(42, { limit: 2 });
  assert.deepEqual(first.entries.map((e) => e.seq), [2, 1]);
  const second = await c.nextHistory(first);
  assert.deepEqual(second.entries.map((e) => e.kind), ['start']);
  assert.equal(await c.nextHistory(second), null);
  assert.deepEqual(gets(fetch).map((call) => call.url), [
    'http://api.test/attempts/42/history?limit=2',
    'http://api.test/attempts/42/history?before=1&limit=2',
  ]);
  assert.ok(gets(fetch).every((call) => call.headers.Authorization === 'Bearer jwt'));
  assert.equal(fetch.calls.length, 2, 'reading the history sends nothing else');
  // Without options: the server's default page.
  const plain = scriptedFetch(() => [200, { id: 7, saves: 0, entries: [], next: null }]);
  await client(plain).history(7);
  assert.equal(plain.calls[0].url, 'http://api.test/attempts/7/history');
  // A next that is no history path is not followed.
  await assert.rejects(c.nextHistory({ next: 'https://elsewhere.example/' }), /not a history/);
});

test('history: every entry across pages, newest first, and no endless paging', async () => {
  const fetch = scriptedFetch((call) => {
    const before = Number(new URL(call.url).searchParams.get('before') ?? 6);
    const seqs = [before - 1, before - 2].filter((seq) => seq >= 0);
    const next = seqs.at(-1) > 0 ? `/attempts/5/history?before=${seqs.at(-1)}&limit=2` : null;
    return [200, { id: 5, saves: 5, entries: seqs.map((seq) => entry(seq)), next }];
  });
  const c = client(fetch);
  const seen = [];
  for await (const e of c.historyEntries(5, { limit: 2 })) seen.push(e.seq);
  assert.deepEqual(seen, [5, 4, 3, 2, 1, 0]);
  assert.equal(gets(fetch).length, 3);

  // A server whose next leads back to the same page: an error, not a loop.
  const looping = scriptedFetch(() => [200, { id: 5, saves: 5, entries: [entry(5), entry(4)],
    next: '/attempts/5/history?before=6&limit=2' }]);
  const d = client(looping);
  await assert.rejects(async () => {
    for await (const e of d.historyEntries(5)) void e;
  }, /went back/);
  assert.equal(gets(looping).length, 2);
});

test('answersAt: the instant percent-encoded, a + offset as %2B', async () => {
  const fetch = scriptedFetch((call) => {
    const at = new URL(call.url).searchParams.get('at');
    return [200, { id: 9, saves: 1, at, entry: null, answers: {} }];
  });
  const c = client(fetch);
  const given = '2026-12-07T11:03:00.000001+01:00';
  const answer = await c.answersAt(9, given);
  assert.equal(fetch.calls[0].url,
    'http://api.test/attempts/9/history?at=2026-12-07T11%3A03%3A00.000001%2B01%3A00');
  assert.equal(answer.at, given, 'the server read back the instant that was meant');
  await c.answersAt('9', new Date(Date.UTC(2026, 11, 7, 10, 3)));
  assert.equal(fetch.calls[1].url,
    'http://api.test/attempts/9/history?at=2026-12-07T10%3A03%3A00.000Z');
  await assert.rejects(c.answersAt(9, new Date('not a time')), RangeError);
  assert.equal(fetch.calls.length, 2, 'an invalid Date is not sent');
});

test('history reads: 503 and network errors retried after Retry-After, no 4xx retried',
  async () => {
    const answers = [
      () => { throw new TypeError('Failed to fetch'); },
      () => [503, { error: 'unavailable' }, { 'Retry-After': '1' }],
      () => [200, { id: 3, saves: 0, entries: [entry(0, 'start')], next: null }],
    ];
    const fetch = scriptedFetch((call, n) => answers[n - 1]());
    const c = client(fetch);
    const page = await c.history(3);
    assert.equal(page.entries[0].kind, 'start');
    const sent = gets(fetch);
    assert.equal(sent.length, 3);
    assert.ok(sent[2].at - sent[1].at >= 1000, 'the retry waited for Retry-After: 1');

    for (const [status, body] of [
      [404, { error: 'attempt 3 not found' }],
      [400, { error: 'limit must be an integer from 1 to 200' }],
      [401, { error: 'invalid token: The token has expired' }],
    ]) {
      const refused = scriptedFetch(() => [status, body]);
      const error = await client(refused).answersAt(3, '2026-12-07T10:03:00Z').catch((e) => e);
      assert.equal(error.httpStatus, status);
      assert.equal(error.message, body.error);
      assert.equal(refused.calls.length, 1, `${status} is not retried`);
    }
  });

// Bounds a wait that the old client never ended: the value, or `timedOut` after `ms`.
function within(promise, ms, timedOut = 'still waiting') {
  let timer;
  const bound = new Promise((resolve) => {
    timer = setTimeout(() => resolve(timedOut), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

test('rule 9: a page hide while a PATCH is in flight sends its answers again, keepalive',
  async () => {
    // The browser aborts the PATCH in flight when the page goes; only a keepalive one survives.
    let release;
    const held = new Promise((resolve) => {
      release = resolve;
    });
    const fetch = scriptedFetch(async (call) => {
      if (!call.keepalive) await held;
      return [204];
    });
    const c = client(fetch);
    c.save(13, { 1: [4] });
    await within(new Promise((resolve) => {
      const poll = setInterval(() => {
        if (patches(fetch).length === 1) resolve(clearInterval(poll));
      }, 5);
    }), 2000);
    assert.equal(patches(fetch).length, 1, 'the PATCH is on its way');
    c.flushAll({ keepalive: true });
    c.flushAll({ keepalive: true }); // visibilitychange, then pagehide
    const keepalive = patches(fetch).filter((call) => call.keepalive);
    release();
    assert.equal(keepalive.length, 1, 'the answers in flight go out again in a keepalive request');
    assert.deepEqual(keepalive[0].body.answers, { 1: [4] });
    assert.ok(keepalive[0].body.revision > patches(fetch)[0].body.revision);
    assert.equal(await within(c.flush(13), 2000), 'saved');
  });

test('rule 5: a response whose body stalls counts as a timeout and is retried', async () => {
  let calls = 0;
  const fetch = async (url, init) => {
    calls += 1;
    if (calls > 1) return new Response(null, { status: 204 });
    // The status and headers arrive; the body never ends, unless the request is aborted.
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"err'));
        init.signal?.addEventListener('abort', () => controller.error(init.signal.reason));
      },
    });
    return new Response(body, { status: 409, headers: { 'Content-Type': 'application/json' } });
  };
  const c = client(fetch, { requestTimeoutMs: 50 });
  assert.equal(await within(c.save(14, { 1: [1] }), 3000), 'saved');
  assert.equal(calls, 2);
  assert.ok(c.statuses.includes('offline'), 'the stalled response counted as a failed try');
});

test('rule 5: a token() that fails (an offline refresh) is retried like a network error',
  async () => {
    const fetch = scriptedFetch(() => [204]);
    let refreshes = 0;
    const c = client(fetch, {
      token: async () => {
        refreshes += 1;
        if (refreshes === 1) throw new TypeError('Failed to fetch (token refresh)');
        return 'fresh';
      },
    });
    assert.equal(await within(c.save(15, { 1: [2] }), 3000), 'saved');
    assert.equal(patches(fetch).length, 1);
    assert.equal(patches(fetch)[0].headers.Authorization, 'Bearer fresh');
    assert.ok(c.statuses.includes('offline'));
  });

test('rule 6: a 401 with Retry-After (the server is fetching new keys) is retried once',
  async () => {
    // A provider's key rotation: the first request with the new key's token is refused while
    // the server fetches the key, and says when to ask again.
    const rotating = scriptedFetch((call, n) => (n === 1
      ? [401, { error: 'invalid token: The token key is unknown' }, { 'Retry-After': '1' }]
      : [204]));
    const c = client(rotating);
    assert.equal(await within(c.save(16, { 1: [3] }), 5000), 'saved');
    const sent = patches(rotating);
    assert.equal(sent.length, 2);
    assert.ok(sent[1].at - sent[0].at >= 1000, 'the retry waited for Retry-After: 1');
    assert.ok(!c.statuses.includes('unauthorized'));

    // Once only: a token the new keys refuse too is unauthorized after the retry.
    const refused = scriptedFetch(() =>
      [401, { error: 'invalid token: The token key is unknown' }, { 'Retry-After': '1' }]);
    const d = client(refused);
    assert.equal(await within(d.save(17, { 1: [3] }), 5000), 'unauthorized');
    await sleep(100);
    assert.equal(patches(refused).length, 2);

    // A start refused that way is retried once too.
    const starting = scriptedFetch((call, n) => (n === 1
      ? [401, { error: 'invalid token: The token key is unknown' }, { 'Retry-After': '1' }]
      : [201, { id: 18, revision: 0, answers: {} }]));
    const e = client(starting);
    assert.equal((await within(e.start(1), 5000)).id, 18);
  });

test('rule 3: after a conflict, load() takes the stored answers and saving goes on', async () => {
  const elsewhere = Date.now() + 3600000;
  const fetch = scriptedFetch((call, n) => {
    if (call.method === 'GET') {
      return [200, { id: 19, revision: elsewhere, answers: { 1: [9] }, submitted_at: null }];
    }
    return n === 1 ? [409, { error: 'stale', revision: elsewhere }] : [204];
  });
  const c = client(fetch);
  assert.equal(await c.save(19, { 1: [1] }), 'conflict');
  const stored = await c.load(19);
  assert.deepEqual(stored.answers, { 1: [9] });
  assert.equal(await within(c.save(19, { 1: [9], 2: [1] }), 3000), 'saved');
  assert.equal(patches(fetch).length, 2);
  assert.ok(patches(fetch)[1].body.revision > elsewhere);
});
