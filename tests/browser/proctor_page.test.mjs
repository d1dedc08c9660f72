// The demo proctor page in Debian's Chromium: a staff member watches an exam live from a page on
// one loopback origin, through a real attempts-server on another (CORS) and its progress stream
// (GET /exams/{id}/progress), against the PostgreSQL of scripts/test.sh. Students save and submit
// through the API as their pages would, and one clicks on the demo exam page; each change shows
// on the proctor page within two of the stream's events after the API answered, with no reload;
// an attempt without a save turns quiet (--progress-quiet 6 s) and a fresh save shows as saving.
// After a server restart the page reconnects by itself with Last-Event-ID (through the CORS
// preflight). A student's token and another exam are refused with what the page tells a proctor.
//
// Environment: as tests/browser/exam_page.test.mjs (scripts/browser-test.sh sets it).
// The page's screenshot is kept in the test's temp dir, whose path is printed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { serveStatic } from '../../clients/js/demo/serve.mjs';
import { ApiServer, eventually, figure, launchChromium, repo, required } from './support.mjs';

const tokenTool = required('BROWSER_TEST_TOKEN_TOOL');
const databaseUrl = required('ATTEMPTS_TEST_DATABASE_URL');
const psql = process.env.ATTEMPTS_TEST_PG_BIN
  ? path.join(process.env.ATTEMPTS_TEST_PG_BIN, 'psql')
  : 'psql';
const run = Date.now() * 1000; // microseconds: ids no earlier run used
const INTERVAL_MS = 1000; // --progress-interval: short, so that the test waits little
const QUIET_S = 6; // --progress-quiet: an attempt without a save for this long shows as quiet

let tmp;
let keys;
let server;
let api;
let pageOrigin;
let staticServer;
let browser;
let exam;
let otherExam;
const students = []; // { token, attempt }

function sql(text, variables = {}) {
  const args = [databaseUrl, '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1'];
  for (const [name, value] of Object.entries(variables)) args.push('-v', `${name}=${value}`);
  // On standard input: psql substitutes :variables there, not in -c.
  return execFileSync(psql, args, { input: text, encoding: 'utf8' }).trim();
}

function sign(sub, claims) {
  const args = ['sign', '--keys', keys, '--kid', 'dev-hs256', '--sub', String(sub)];
  if (claims) args.push('--claims', JSON.stringify(claims));
  return execFileSync(tokenTool, args, { encoding: 'utf8' }).trim();
}

const proctor = `browser-proctor-${run}`;
const staffToken = () => sign(1, { sub: proctor, roles: ['teacher'] });

async function call(method, urlPath, token, body) {
  const response = await fetch(`${api}${urlPath}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10000),
  });
  const text = await response.text();
  return { status: response.status, text, body: text ? JSON.parse(text) : null };
}

async function startStudent(n) {
  const token = sign(run + n);
  const started = await call('POST', `/exams/${exam}/attempts`, token);
  assert.equal(started.status, 201, started.text);
  const student = { token, attempt: started.body.id, id: run + n };
  students.push(student);
  return student;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attempts-proctor-'));
  keys = path.join(tmp, 'keys');
  execFileSync(tokenTool, ['keygen', keys], { stdio: 'ignore' });
  staticServer = await serveStatic(path.join(repo, 'clients/js'), '127.0.0.1', 0);
  pageOrigin = `http://127.0.0.1:${staticServer.address().port}`;
  server = new ApiServer(
    ['--database-url', databaseUrl, '--jwks', path.join(keys, 'jwks.json'),
      '--cors-origin', pageOrigin, '--staff-claim', 'roles', '--staff-role', 'teacher',
      '--progress-interval', String(INTERVAL_MS), '--progress-quiet', String(QUIET_S)],
    path.join(tmp, 'server.log'),
  );
  api = `http://127.0.0.1:${await server.start()}`;
  browser = await launchChromium();
  exam = sql("INSERT INTO exams (title) VALUES ('browser: proctor page') RETURNING id");
  otherExam = sql("INSERT INTO exams (title) VALUES ('browser: another exam') RETURNING id");
  sql('INSERT INTO exam_staff (exam_id, staff_id) VALUES (:exam, :\'proctor\')', { exam, proctor });
  // Three students have started; the first has saved two answers.
  for (let n = 1; n <= 3; n++) await startStudent(n);
  const saved = await call('PATCH', `/attempts/${students[0].attempt}`, students[0].token,
    { answers: { 1: [1], 2: [0, 2] } });
  assert.equal(saved.status, 204, saved.text);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  staticServer?.close();
  const report = server?.sanitizerReport();
  // Everything but the screenshot goes.
  if (tmp) {
    for (const name of fs.readdirSync(tmp)) {
      if (!name.endsWith('.png')) fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
    }
    if (fs.readdirSync(tmp).length === 0) fs.rmdirSync(tmp);
  }
  assert.equal(report ?? null, null, `sanitizer report in the server's log:\n${report}`);
});

async function openProctorPage(token, examId = exam) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(`${pageOrigin}/demo/proctor.html?api=${encodeURIComponent(api)}&exam=${examId}` +
    `#token=${token}`);
  return { context, page, errors };
}

// The page's table and totals, as a proctor reads them.
function tableOf(page) {
  return page.evaluate(() => ({
    connection: document.getElementById('connection').dataset.state,
    events: window.proctor.events(),
    totals: Object.fromEntries(['attempts', 'saving', 'quiet', 'submitted'].map(
      (name) => [name, document.getElementById(`total-${name}`).textContent])),
    rows: [...document.querySelectorAll('#attempts tr')].map((row) => ({
      id: Number(row.dataset.id),
      student: row.cells[0].textContent,
      answered: Number(row.dataset.answered),
      submitted: row.dataset.submitted === 'true',
      activity: row.dataset.activity,
      event: Number(row.dataset.event),
    })),
  }));
}

async function rowOf(page, attemptId) {
  return (await tableOf(page)).rows.find((row) => row.id === attemptId);
}

// Waits (bounded) until the attempt's row passes `check`; returns the row and how many of the
// stream's events came between `events` (read once the API had answered) and the one that
// changed the row.
async function changeShown(page, attemptId, events, check) {
  const row = await eventually(`attempt ${attemptId}'s row changed`, async () => {
    const found = await rowOf(page, attemptId);
    return found && check(found) && found;
  }, 20000);
  return { row, after: row.event - events };
}

test('a save and a submit show on the proctor page within two intervals, without a reload',
  async () => {
    const { context, page, errors } = await openProctorPage(staffToken());
    const first = await eventually('the snapshot shown', async () => {
      const table = await tableOf(page);
      return table.connection === 'open' && table.rows.length === 3 && table;
    });
    assert.deepEqual(first.rows.map((row) => [row.id, row.student, row.answered, row.submitted]),
      students.map((s, i) => [s.attempt, String(s.id), i === 0 ? 2 : 0, false]));
    // (quiet depends on how long the start took: checked below, on an attempt of its own)
    assert.deepEqual({ ...first.totals, quiet: undefined },
      { attempts: '3', saving: '1', quiet: undefined, submitted: '0' });

    // A save by the second student.
    const saver = students[1];
    const saved = await call('PATCH', `/attempts/${saver.attempt}`, saver.token,
      { answers: { 1: [2], 2: [1], 3: [0] } });
    assert.equal(saved.status, 204, saved.text);
    const savedAt = Date.now();
    const save = await changeShown(page, saver.attempt, (await tableOf(page)).events,
      (row) => row.answered === 3);
    figure('proctor_page_save_shown_ms', Date.now() - savedAt);
    assert.ok(save.after <= 2, `the save showed ${save.after} events after the API answered`);
    assert.equal(save.row.activity, 'saving');

    // A submit by the third.
    const submitter = students[2];
    const submitted = await call('POST', `/attempts/${submitter.attempt}/submit`, submitter.token);
    assert.equal(submitted.status, 200, submitted.text);
    const submittedAt = Date.now();
    const submit = await changeShown(page, submitter.attempt, (await tableOf(page)).events,
      (row) => row.submitted);
    figure('proctor_page_submit_shown_ms', Date.now() - submittedAt);
    assert.ok(submit.after <= 2, `the submit showed ${submit.after} events after the API answered`);
    assert.equal(submit.row.activity, 'submitted');

    // A student who starts now gets a row of their own, and the totals follow.
    const late = await startStudent(4);
    await changeShown(page, late.attempt, 0, (row) => row.answered === 0);
    const table = await eventually('the totals updated', async () => {
      const t = await tableOf(page);
      return t.totals.attempts === '4' && t.totals.submitted === '1' && t;
    });
    assert.deepEqual(table.rows.map((row) => row.id), students.map((s) => s.attempt));
    assert.deepEqual(table.rows.map((row) => row.answered), [2, 3, 0, 0]);
    assert.equal(table.connection, 'open');
    // Nothing saved since its start: quiet once QUIET_S have passed, by the database's clock.
    const quiet = await changeShown(page, late.attempt, 0, (row) => row.activity === 'quiet');
    assert.equal(quiet.row.answered, 0);
    const totals = (await tableOf(page)).totals;
    assert.ok(Number(totals.quiet) >= 1, `quiet total ${totals.quiet}`);
    // A fresh save: saving again (for the screenshot: saving, quiet and submitted rows at once).
    const again = await call('PATCH', `/attempts/${saver.attempt}`, saver.token,
      { answers: { 1: [2], 2: [1], 3: [0], 4: [1] } });
    assert.equal(again.status, 204, again.text);
    const fresh = await changeShown(page, saver.attempt, 0, (row) => row.answered === 4);
    assert.equal(fresh.row.activity, 'saving');

    const screenshot = path.join(tmp, 'proctor.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`proctor-page: screenshot ${screenshot}`);
    assert.deepEqual(errors, []);
    await context.close();
  });

test('a click on the exam page shows on the proctor page within two intervals', async () => {
  const { context, page, errors } = await openProctorPage(staffToken());
  await eventually('the page live', async () => (await tableOf(page)).connection === 'open');
  // A student opens the demo exam page of this exam: it starts an attempt and saves each click.
  const token = sign(run + 6);
  const examPage = await context.newPage();
  await examPage.goto(
    `${pageOrigin}/demo/?api=${encodeURIComponent(api)}&exam=${exam}#token=${token}`);
  await examPage.waitForFunction(() => document.getElementById('status').dataset.status === 'saved',
    undefined, { timeout: 20000 });
  const attemptId = Number(await examPage.evaluate(() => window.demo.attemptId));
  await changeShown(page, attemptId, 0, (row) => row.answered === 0);

  const patched = examPage.waitForResponse(
    (response) => response.request().method() === 'PATCH' && response.status() === 204,
    { timeout: 20000 });
  await examPage.locator('#questions input').first().check();
  await patched;
  const click = await changeShown(page, attemptId, (await tableOf(page)).events,
    (row) => row.answered === 1);
  assert.ok(click.after <= 2, `the click showed ${click.after} events after its PATCH`);
  assert.equal(click.row.activity, 'saving');
  assert.deepEqual(errors, []);
  await context.close();
});

test('after a server restart the page reconnects by itself, with Last-Event-ID, and goes on',
  async () => {
    const { context, page, errors } = await openProctorPage(staffToken());
    await eventually('the page live', async () => (await tableOf(page)).connection === 'open');
    await eventually('an event with an id', async () => (await tableOf(page)).events > 1);
    const requests = []; // the stream's requests from now on: the reconnects
    page.on('request', (request) => {
      if (request.url().includes('/progress') && request.method() === 'GET') {
        requests.push(request.headers());
      }
    });
    const port = server.port;
    await server.stop(); // SIGTERM: the stream ends cleanly
    await page.waitForFunction(
      () => document.getElementById('connection').dataset.state === 'reconnecting', undefined,
      { timeout: 20000 });
    await server.start(port);
    await eventually('live again', async () => (await tableOf(page)).connection === 'open', 60000);
    assert.ok(requests.length >= 1, 'a reconnect');
    assert.match(requests.at(-1)['last-event-id'] ?? '', /^[A-Za-z0-9]+-\d+$/);

    const saver = await startStudent(5);
    const saved = await call('PATCH', `/attempts/${saver.attempt}`, saver.token,
      { answers: { 1: [0], 2: [1] } });
    assert.equal(saved.status, 204, saved.text);
    await changeShown(page, saver.attempt, 0, (row) => row.answered === 2);
    assert.deepEqual(errors, []);
    await context.close();
  });

test("a student's token and another exam are refused, and the page says why", async () => {
  const student = await openProctorPage(students[0].token);
  await student.page.waitForFunction(
    () => document.getElementById('connection').dataset.state === 'stopped', undefined,
    { timeout: 20000 });
  assert.equal(await student.page.locator('#connection').textContent(),
    "Only the exam's staff can watch it (403)");
  assert.equal((await tableOf(student.page)).rows.length, 0);
  await student.context.close();

  const other = await openProctorPage(staffToken(), otherExam);
  await other.page.waitForFunction(
    () => document.getElementById('connection').dataset.state === 'stopped', undefined,
    { timeout: 20000 });
  assert.equal(await other.page.locator('#connection').textContent(),
    'No such exam, or you are not one of its staff (404)');
  await other.context.close();
});
