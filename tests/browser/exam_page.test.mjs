// The real-browser test: Debian's Chromium, driven by playwright-core, uses the demo exam page
// (clients/js/demo) served on one loopback origin; the page saves through the reference client
// (clients/js/attempts-client.js) to a real attempts-server on another origin, against the real
// PostgreSQL of scripts/test.sh. scripts/browser-test.sh runs it (ctest label `browser`).
//
// Each scenario asserts what the student and the database see, never how long anything took;
// every wait has a bound. Figures are printed as "[  FIGURE  ] name = value" lines.
//
// Environment (scripts/browser-test.sh sets it): BROWSER_TEST_SERVER, BROWSER_TEST_TOKEN_TOOL,
// ATTEMPTS_TEST_DATABASE_URL, CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { serveStatic } from '../../clients/js/demo/serve.mjs';
import {
  answersOnPage, ApiReader, ApiServer, attemptOf, eventually, figure, HoldingProxy,
  launchChromium, normalized, openExamPage, pageStatus as status, repo, required, showsStatus,
  sleep,
} from './support.mjs';

const tokenTool = required('BROWSER_TEST_TOKEN_TOOL');
const databaseUrl = required('ATTEMPTS_TEST_DATABASE_URL');

// --- shared set-up ----------------------------------------------------------------------------

let tmp;
let keys;
let server;
let api; // http://127.0.0.1:PORT, the API's origin
let pageOrigin; // allowed by --cors-origin
let otherOrigin; // the same page on another port: not allowed
let staticServers = [];
let browser;
let reader; // the API as a test reads it
let nextStudent = Date.now() * 1000; // microseconds: students no earlier run used

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attempts-browser-'));
  keys = path.join(tmp, 'keys');
  execFileSync(tokenTool, ['keygen', keys], { stdio: 'ignore' });
  const root = path.join(repo, 'clients/js');
  staticServers = [
    await serveStatic(root, '127.0.0.1', 0),
    await serveStatic(root, '127.0.0.1', 0),
  ];
  pageOrigin = `http://127.0.0.1:${staticServers[0].address().port}`;
  otherOrigin = `http://127.0.0.1:${staticServers[1].address().port}`;
  server = new ApiServer(
    [
      '--database-url', databaseUrl,
      '--jwks', path.join(keys, 'jwks.json'),
      '--jwt-leeway', '0', // the expired-token scenario need not wait out a leeway
      '--cors-origin', pageOrigin,
      '--access-log', // which URLs were preflighted
    ],
    path.join(tmp, 'server.log'),
  );
  api = `http://127.0.0.1:${await server.start()}`;
  reader = new ApiReader(api);
  browser = await launchChromium();
  console.log(`browser-test: page ${pageOrigin}, other page ${otherOrigin}, API ${api}`);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  for (const s of staticServers) s.close();
  const report = server?.sanitizerReport();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  assert.equal(report ?? null, null, `sanitizer report in the server's log:\n${report}`);
});

// --- the API, as a test reads it ----------------------------------------------------------------

function sign(student, ttlSeconds = 3600) {
  return execFileSync(tokenTool, ['sign', '--keys', keys, '--kid', 'dev-hs256', '--sub',
    String(student), '--ttl', String(ttlSeconds)], { encoding: 'utf8' }).trim();
}

function newStudent(ttlSeconds) {
  nextStudent += 1;
  return { id: nextStudent, token: sign(nextStudent, ttlSeconds) };
}

const call = (method, urlPath, token) => reader.call(method, urlPath, token);
const stored = (attemptId, token) => reader.stored(attemptId, token);
const storedAs = (attemptId, token, answers, timeoutMs) =>
  reader.storedAs(attemptId, token, answers, timeoutMs);

// One series of attempts_http_requests_total, 0 until it appears.
async function requestsCounted(route, code) {
  const text = await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10000) })).text();
  const series = `attempts_http_requests_total{route="${route}",code="${code}"} `;
  const line = text.split('\n').find((l) => l.startsWith(series));
  return line ? Number(line.slice(series.length)) : 0;
}
const PREFLIGHT = 'OPTIONS (CORS preflight)';
const SAVE = 'PATCH /attempts/{id}';

// --- the page -------------------------------------------------------------------------------------

// Opens the demo page as `student`; resolves once it shows its attempt.
function openExam(student, { origin = pageOrigin, query = '', context } = {}) {
  return openExamPage(browser, { pageOrigin: origin, api, student, query, context });
}

// A new student's page whose attempt holds the answers of `clicks` (`stored`) before it returns.
async function answeredExam(clicks, stored, options) {
  const student = newStudent();
  const opened = await openExam(student, options);
  const attemptId = await attemptOf(opened.page);
  for (const id of clicks) await opened.page.click(id);
  await storedAs(attemptId, student.token, stored);
  return { ...opened, student, attemptId };
}

function increasing(revisions) {
  return revisions.every((revision, i) => i === 0 || revision > revisions[i - 1]);
}

// The page's history list as drawn: its entries (from their data-* attributes), top first, and
// the count of saves its summary states.
async function historyOnPage(page) {
  return page.evaluate(() => ({
    saves: Number(document.getElementById('history-summary').dataset.saves ?? -1),
    older: !document.getElementById('history-older').hidden,
    entries: [...document.querySelectorAll('#history-entries li')].map((li) => ({
      seq: Number(li.dataset.seq),
      kind: li.dataset.kind,
      writtenAt: li.dataset.writtenAt,
      revision: li.dataset.revision === '' ? null : Number(li.dataset.revision),
      writes: Number(li.dataset.writes),
      answers: JSON.parse(li.dataset.answers),
      text: li.textContent,
    })),
  }));
}

// --- scenarios ------------------------------------------------------------------------------------

test('answers clicked are saved and survive a reload', { timeout: 120000 }, async () => {
  const student = newStudent();
  const { context, page, errors } = await openExam(student);
  const attemptId = await attemptOf(page);
  for (const id of ['#q1-o2', '#q2-o3', '#q5-o1', '#q5-o3', '#q4-o4']) await page.click(id);
  const expected = { 1: [2], 2: [3], 4: [4], 5: [1, 3] };
  const attempt = await storedAs(attemptId, student.token, expected);
  await showsStatus(page, 'saved');
  assert.ok(attempt.revision > 0, 'the saves carried a revision');

  await page.reload();
  assert.equal(await attemptOf(page), attemptId, 'the same attempt after a reload');
  assert.deepEqual(normalized(await answersOnPage(page)), normalized(expected));
  assert.deepEqual(errors, []);
  await context.close();
});

test('the history lists every save the server answered 204, newest first, page by page',
  { timeout: 120000 }, async () => {
    const student = newStudent();
    // Two entries a page, so that "Older entries" follows the server's next.
    const { context, page, errors } = await openExam(student, { query: '&history=2' });
    const answered = []; // the revision of each PATCH answered 204, in the order of the answers
    page.on('response', (response) => {
      const request = response.request();
      if (request.method() === 'PATCH' && response.status() === 204) {
        answered.push(JSON.parse(request.postData()).revision);
      }
    });
    const attemptId = await attemptOf(page);
    // Four saves: each click is stored before the next, so each is a PATCH of its own.
    const steps = [
      ['#q1-o3', { 1: [3] }],
      ['#q2-o2', { 1: [3], 2: [2] }],
      ['#q1-o2', { 1: [2], 2: [2] }],
      ['#q5-o3', { 1: [2], 2: [2], 5: [3] }],
    ];
    for (const [id, answers] of steps) {
      await page.click(id);
      await storedAs(attemptId, student.token, answers);
    }
    const attempt = await stored(attemptId, student.token);
    // The first page, read again after the last save, counts every save answered 204.
    await eventually('the history counts every save answered 204', async () => {
      const shown = await historyOnPage(page);
      return (await status(page)) === 'saved' && answered.length >= steps.length &&
        shown.saves === answered.length && shown.entries[0]?.revision === attempt.revision;
    });
    for (let i = 0; i < 10 && (await historyOnPage(page)).older; i += 1) {
      const before = (await historyOnPage(page)).entries.length;
      await page.click('#history-older');
      await eventually('an older page drawn', async () =>
        (await historyOnPage(page)).entries.length > before);
    }
    const { entries, saves, older } = await historyOnPage(page);
    assert.equal(older, false, 'every page read');
    figure('history_saves_answered_204', answered.length);
    figure('history_entries_shown', entries.length);
    // Newest first, down to the start: sequence numbers n, n-1, ..., 0.
    assert.deepEqual(entries.map((e) => e.seq), entries.map((e, i) => entries.length - 1 - i));
    assert.deepEqual(entries.at(-1), { ...entries.at(-1), kind: 'start', answers: {}, revision: null });
    const savesShown = entries.filter((e) => e.kind === 'save');
    assert.equal(savesShown.length, saves);
    // Exactly the writes answered 204, newest first: one entry each (one PATCH in flight).
    assert.equal(savesShown.reduce((sum, e) => sum + e.writes, 0), answered.length);
    assert.deepEqual(savesShown.map((e) => e.revision), [...answered].reverse());
    assert.deepEqual(normalized(entries[0].answers), normalized(attempt.answers));
    assert.ok(entries.every((e, i) => i === 0 || Date.parse(e.writtenAt) <= Date.parse(entries[i - 1].writtenAt)));
    assert.match(entries[0].text, /Saved/);
    // What the API itself says, read without the page.
    const direct = await call('GET', `/attempts/${attemptId}/history?limit=200`, student.token);
    assert.equal(direct.status, 200);
    assert.deepEqual(direct.body.entries.map((e) => [e.seq, e.revision, e.written_at]),
      entries.map((e) => [e.seq, e.revision, e.writtenAt]));

    // The answers at an instant, through the client in the browser: at the second save's own
    // time (written_at ends in +00:00, so the client must send %2B), and before the start.
    const second = savesShown.at(-2);
    const at = await page.evaluate(({ id, instants }) =>
      Promise.all(instants.map((instant) => window.demo.client.answersAt(id, instant))),
    { id: attemptId, instants: [second.writtenAt, '2000-01-01T00:00:00+01:00'] });
    assert.equal(at[0].entry?.seq, second.seq, `at ${second.writtenAt}: ${JSON.stringify(at[0])}`);
    assert.deepEqual(at[0].answers, second.answers);
    assert.deepEqual([at[1].entry, at[1].answers], [null, {}]);

    // The submit goes on the record, and the page shows it on top.
    await page.click('#submit');
    await showsStatus(page, 'submitted');
    const submitted = await eventually('the submit on top of the history', async () => {
      const top = (await historyOnPage(page)).entries[0];
      return top?.kind === 'submit' && top;
    });
    assert.equal(submitted.seq, entries[0].seq + 1);
    assert.deepEqual(normalized(submitted.answers), normalized(attempt.answers));
    assert.deepEqual(errors, []);
    await context.close();
  });

test('a burst of clicks is one PATCH or two, and the last answer is stored', { timeout: 120000 },
  async () => {
    const student = newStudent();
    const { context, page, patches } = await openExam(student);
    const attemptId = await attemptOf(page);
    const clicks = [];
    for (let i = 0; i < 24; i += 1) clicks.push(`q${1 + (i % 3)}-o${1 + ((i * 7) % 4)}`);
    // Clicked as fast as the page can take them.
    await page.evaluate((ids) => {
      for (const id of ids) document.getElementById(id).click();
    }, clicks);
    const expected = await answersOnPage(page);
    await storedAs(attemptId, student.token, expected);
    await showsStatus(page, 'saved');
    figure('burst_clicks', clicks.length);
    figure('burst_patches', patches.length);
    assert.ok(patches.length >= 1 && patches.length <= 2, `${patches.length} PATCHes`);
    assert.deepEqual(normalized(patches.at(-1).answers), normalized(expected));
    assert.ok(increasing(patches.map((p) => p.revision)));
    await context.close();
  });

test('a 50-click session sends one preflight per URL', { timeout: 180000 }, async () => {
  const student = newStudent();
  const preflightsBefore = await requestsCounted(PREFLIGHT, 204);
  const mark = server.mark();
  // A new browser context: nothing in its preflight cache yet.
  const { context, page, patches } = await openExam(student);
  const attemptId = await attemptOf(page);
  for (let i = 0; i < 50; i += 1) {
    // Questions 1 to 4 in turn, another option each round: every click changes the answers.
    await page.click(`#q${1 + (i % 4)}-o${1 + (Math.floor(i / 4) % 4)}`);
    // Like a student who pauses now and then: the saves are spread over the session.
    if (i % 10 === 9) await storedAs(attemptId, student.token, await answersOnPage(page));
  }
  await page.click('#submit');
  await showsStatus(page, 'submitted');
  const attempt = await stored(attemptId, student.token);
  assert.ok(attempt.submitted_at);
  assert.deepEqual(normalized(attempt.answers), normalized(await answersOnPage(page)));
  const preflights = (await requestsCounted(PREFLIGHT, 204)) - preflightsBefore;
  const seen = server.requestsSince(mark);
  const preflighted = seen.filter(([method]) => method === 'OPTIONS').map(([, url]) => url);
  const urls = new Set(seen.filter(([method]) => method !== 'OPTIONS').map(([, url]) => url));
  figure('session_clicks', 50);
  figure('session_patches', patches.length);
  figure('session_preflights', `${preflights} (${preflighted.join(', ')})`);
  // Start (/exams/1/attempts), the attempt (/attempts/{id}: every PATCH and the GET after the
  // submit), the submit (/attempts/{id}/submit) and the history the page reads again after each
  // save (/attempts/{id}/history): one each, thanks to Access-Control-Max-Age.
  assert.equal(preflighted.length, preflights, 'the access log and the metrics agree');
  assert.equal(new Set(preflighted).size, preflighted.length, `a URL preflighted twice: ${preflighted}`);
  assert.ok(preflights <= urls.size, `${preflights} preflights for ${urls.size} URLs: ${[...urls]}`);
  assert.ok(patches.length > 1 && patches.length < 50, `${patches.length} PATCHes for 50 clicks`);
  await context.close();
});

test('the API stopped while clicking: every answer is saved once it is back, in order',
  { timeout: 180000 }, async () => {
    const { context, page, patches, student, attemptId } =
      await answeredExam(['#q1-o1'], { 1: [1] });
    const port = server.port;

    await server.stop();
    await page.click('#q2-o2');
    await showsStatus(page, 'offline');
    await page.click('#q3-o3');
    await sleep(1000);
    await page.click('#q4-o4');
    await page.click('#q1-o2');
    await sleep(1500); // the API stays down a few seconds in all
    await showsStatus(page, 'offline');
    await server.start(port);

    const expected = { 1: [2], 2: [2], 3: [3], 4: [4] };
    const attempt = await storedAs(attemptId, student.token, expected, 60000);
    await showsStatus(page, 'saved');
    const revisions = patches.map((p) => p.revision);
    figure('outage_patches_sent', patches.length);
    assert.ok(increasing(revisions), `revisions in send order: ${revisions}`);
    assert.equal(attempt.revision, Math.max(...revisions), 'the newest revision is stored');
    await context.close();
  });

test('the API frozen: requests delivered late never overwrite newer answers',
  { timeout: 180000 }, async () => {
    // The client gives up on a request after 1.5 s, so retries pile up behind the frozen API.
    const { context, page, patches, student, attemptId } =
      await answeredExam(['#q1-o1'], { 1: [1] }, { query: '&timeout=1500' });
    const conflictsBefore = await requestsCounted(SAVE, 409);
    const sentBefore = patches.length;

    server.freeze();
    try {
      await page.click('#q1-o2');
      await showsStatus(page, 'offline');
      await page.click('#q1-o3');
      await eventually('three PATCHes sent while frozen', async () =>
        patches.length - sentBefore >= 3, 20000);
      await page.click('#q1-o4');
      await eventually('another PATCH with the last answer', async () =>
        patches.at(-1).answers['1'][0] === 4, 20000);
    } finally {
      server.thaw();
    }
    const attempt = await storedAs(attemptId, student.token, { 1: [4] }, 60000);
    await showsStatus(page, 'saved');
    const revisions = patches.map((p) => p.revision);
    assert.ok(increasing(revisions), `revisions in send order: ${revisions}`);
    assert.equal(attempt.revision, Math.max(...revisions));
    // Stale requests the API read after it thawed: applied before the newest, or refused.
    await sleep(500);
    const lateAndRefused = (await requestsCounted(SAVE, 409)) - conflictsBefore;
    figure('frozen_patches_sent', patches.length - sentBefore);
    figure('frozen_stale_patches_refused_409', lateAndRefused);
    assert.deepEqual((await stored(attemptId, student.token)).answers, { 1: [4] });
    await context.close();
  });

test('the page closes while its last PATCH is in flight: a keepalive request stores it',
  { timeout: 120000 }, async () => {
    // The page talks to the API through a proxy that will hold its next PATCH: as if the network
    // stalled when the student closes the tab. Closing the page aborts that PATCH; only a
    // keepalive request sent at pagehide outlives the page.
    const proxy = new HoldingProxy(api);
    const proxied = await proxy.start();
    const student = newStudent();
    const { context, page } = await openExamPage(browser, { pageOrigin, api: proxied, student });
    const attemptId = await attemptOf(page);
    await page.click('#q1-o1');
    await storedAs(attemptId, student.token, { 1: [1] });
    await eventually('the first save logged', async () => server.requestsSince(0).some(
      ([method, url]) => method === 'PATCH' && url === `/attempts/${attemptId}`));
    const mark = server.mark();
    const held = proxy.holdNext('PATCH');
    await page.click('#q2-o2');
    const inFlight = JSON.parse(await held);
    assert.deepEqual(normalized(inFlight.answers), { 1: [1], 2: [2] });
    await page.close({ runBeforeUnload: true });
    const attempt = await storedAs(attemptId, student.token, { 1: [1], 2: [2] });
    assert.ok(attempt.revision > inFlight.revision, 'stored by a request sent after the held one');
    const arrived = server.requestsSince(mark).filter(([method]) => method === 'PATCH');
    figure('page_close_patches_reaching_the_api', arrived.length);
    assert.deepEqual(arrived.map(([, , code]) => code), ['204'], 'one keepalive PATCH, stored');
    await context.close();
    proxy.close();
  });

test('submit, then a click: the page shows it is final and the answers stay',
  { timeout: 120000 }, async () => {
    // Submitted on this page.
    const { context, page, patches, student, attemptId } =
      await answeredExam(['#q1-o1', '#q2-o2'], { 1: [1], 2: [2] });
    await page.click('#submit');
    await showsStatus(page, 'submitted');
    assert.ok(await page.isDisabled('#q3-o1'), 'the answers cannot be changed on the page');
    const sent = patches.length;
    await page.click('#q3-o1', { force: true, timeout: 5000 });
    await sleep(700); // longer than the client's debounce
    assert.equal(patches.length, sent, 'no PATCH after the submission');
    const attempt = await stored(attemptId, student.token);
    assert.ok(attempt.submitted_at);
    assert.deepEqual(attempt.answers, { 1: [1], 2: [2] });
    await page.reload();
    await showsStatus(page, 'submitted');
    assert.ok(await page.isDisabled('#q1-o1'));
    assert.deepEqual(normalized(await answersOnPage(page)), { 1: [1], 2: [2] });
    await context.close();

    // Submitted elsewhere (another device) while this page is open: its next click gets 409.
    const second = await answeredExam(['#q1-o3'], { 1: [3] });
    const { student: other, attemptId: otherAttempt } = second;
    const submitted = await call('POST', `/attempts/${otherAttempt}/submit`, other.token);
    assert.equal(submitted.status, 200);
    await second.page.click('#q2-o1');
    await showsStatus(second.page, 'submitted');
    await eventually('the page shows the stored answers again', async () =>
      JSON.stringify(await answersOnPage(second.page)) === JSON.stringify({ 1: [3] }), 10000);
    assert.deepEqual((await stored(otherAttempt, other.token)).answers, { 1: [3] });
    await second.context.close();
  });

test('an expired token: the page says so, and saving resumes with a new one',
  { timeout: 120000 }, async () => {
    const student = newStudent(6);
    const expiry = JSON.parse(Buffer.from(student.token.split('.')[1], 'base64url')).exp;
    const { context, page } = await openExam(student);
    const attemptId = await attemptOf(page);
    await page.click('#q1-o1');
    const fresh = sign(student.id);
    await storedAs(attemptId, fresh, { 1: [1] });
    // The server refuses the token once now > exp (--jwt-leeway 0).
    await sleep(Math.max(0, (expiry + 1) * 1000 - Date.now() + 200));
    await page.click('#q2-o2');
    await showsStatus(page, 'unauthorized');
    assert.match(await page.locator('#status').textContent(), /expired/i);
    assert.deepEqual((await stored(attemptId, fresh)).answers, { 1: [1] });
    await page.evaluate((token) => window.demo.setToken(token), fresh);
    await storedAs(attemptId, fresh, { 1: [1], 2: [2] });
    await showsStatus(page, 'saved');
    await context.close();
  });

test("a page on another origin cannot save", { timeout: 120000 }, async () => {
  const student = newStudent();
  const started = await call('POST', '/exams/1/attempts', student.token);
  assert.equal(started.status, 201);
  const attemptId = started.body.id;
  const refusedBefore = await requestsCounted(PREFLIGHT, 403);
  const savesBefore = await requestsCounted(SAVE, 204);
  const { context, page } = await openExam(student, { origin: otherOrigin });
  // Even with the student's valid token, the browser stops the PATCH at its preflight.
  const direct = await page.evaluate(async ({ apiOrigin, id, token }) => {
    try {
      const response = await fetch(`${apiOrigin}/attempts/${id}`, {
        method: 'PATCH',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ answers: { 1: [4] } }),
      });
      return `answered ${response.status}`;
    } catch (error) {
      return `${error.name}: ${error.message}`;
    }
  }, { apiOrigin: api, id: attemptId, token: student.token });
  assert.match(direct, /^TypeError/);
  // The reference client on that page: it keeps retrying, and says it is not saved.
  await page.evaluate((id) => {
    window.demo.client.save(id, { 1: [4] }); // its promise settles only once saved
  }, attemptId);
  await showsStatus(page, 'offline');
  await sleep(1000);
  assert.notEqual(await status(page), 'saved');
  assert.deepEqual((await stored(attemptId, student.token)).answers, {});
  assert.ok((await requestsCounted(PREFLIGHT, 403)) > refusedBefore, 'the preflight was refused');
  assert.equal(await requestsCounted(SAVE, 204), savesBefore, 'no PATCH reached the API');
  await context.close();
});

test("errors the server sends itself reach the page's script", { timeout: 60000 }, async () => {
  const student = newStudent();
  const { context, page } = await openExam(student);
  const attemptId = await attemptOf(page);
  const seen = await page.evaluate(async ({ apiOrigin, id, token }) => {
    const url = `${apiOrigin}/attempts/${id}`;
    const result = async (request) => {
      try {
        const response = await request();
        return { status: response.status, challenge: response.headers.get('WWW-Authenticate') };
      } catch (error) {
        return { status: `${error.name}: ${error.message}` };
      }
    };
    return {
      tooLarge: await result(() => fetch(url, {
        method: 'PATCH',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ answers: {}, pad: 'x'.repeat(70000) }),
      })),
      headerTooLarge: await result(() =>
        fetch(url, { headers: { Authorization: `Bearer ${'x'.repeat(9000)}` } })),
      badToken: await result(() => fetch(url, { headers: { Authorization: 'Bearer nope' } })),
    };
  }, { apiOrigin: api, id: attemptId, token: student.token });
  assert.equal(seen.tooLarge.status, 413);
  assert.equal(seen.headerTooLarge.status, 431);
  assert.equal(seen.badToken.status, 401);
  assert.match(seen.badToken.challenge ?? '', /^Bearer error="invalid_token"/);
  await context.close();
});
