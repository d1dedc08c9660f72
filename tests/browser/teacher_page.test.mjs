// The demo teacher page in Debian's Chromium: a staff member downloads an exam's attempts as CSV
// from a page on one loopback origin, through a real attempts-server on another (CORS), against
// the PostgreSQL of scripts/test.sh. The file saved is the server's export, byte for byte; a
// student's token and another exam are refused with what the page tells a teacher.
//
// Environment: as tests/browser/exam_page.test.mjs (scripts/browser-test.sh sets it).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { serveStatic } from '../../clients/js/demo/serve.mjs';
import { ApiServer, launchChromium, repo, required } from './support.mjs';

const tokenTool = required('BROWSER_TEST_TOKEN_TOOL');
const databaseUrl = required('ATTEMPTS_TEST_DATABASE_URL');
const psql = process.env.ATTEMPTS_TEST_PG_BIN
  ? path.join(process.env.ATTEMPTS_TEST_PG_BIN, 'psql')
  : 'psql';
const run = Date.now() * 1000; // microseconds: ids no earlier run used

let tmp;
let keys;
let server;
let api;
let pageOrigin;
let staticServer;
let browser;
let exam;
let otherExam;

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

const teacher = `browser-teacher-${run}`;
const staffToken = () => sign(1, { sub: teacher, roles: ['teacher'] });

async function api_(method, urlPath, token, body) {
  const response = await fetch(`${api}${urlPath}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10000),
  });
  return { status: response.status, text: await response.text() };
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attempts-teacher-'));
  keys = path.join(tmp, 'keys');
  execFileSync(tokenTool, ['keygen', keys], { stdio: 'ignore' });
  staticServer = await serveStatic(path.join(repo, 'clients/js'), '127.0.0.1', 0);
  pageOrigin = `http://127.0.0.1:${staticServer.address().port}`;
  server = new ApiServer(
    ['--database-url', databaseUrl, '--jwks', path.join(keys, 'jwks.json'),
      '--cors-origin', pageOrigin, '--staff-claim', 'roles', '--staff-role', 'teacher'],
    path.join(tmp, 'server.log'),
  );
  api = `http://127.0.0.1:${await server.start()}`;
  browser = await launchChromium();
  exam = sql("INSERT INTO exams (title) VALUES ('browser: teacher page') RETURNING id");
  otherExam = sql("INSERT INTO exams (title) VALUES ('browser: another exam') RETURNING id");
  sql('INSERT INTO exam_staff (exam_id, staff_id) VALUES (:exam, :\'teacher\')', { exam, teacher });
  // Three students start, save, and one submits, through the API as a student's page would.
  for (let i = 1; i <= 3; i++) {
    const token = sign(run + i);
    const started = await api_('POST', `/exams/${exam}/attempts`, token);
    assert.equal(started.status, 201, started.text);
    const id = JSON.parse(started.text).id;
    const saved = await api_('PATCH', `/attempts/${id}`, token, { answers: { 1: [i], 5: [0, 2] } });
    assert.equal(saved.status, 204, saved.text);
    if (i === 3) assert.equal((await api_('POST', `/attempts/${id}/submit`, token)).status, 200);
  }
});

after(async () => {
  await browser?.close();
  await server?.stop();
  staticServer?.close();
  const report = server?.sanitizerReport();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  assert.equal(report ?? null, null, `sanitizer report in the server's log:\n${report}`);
});

async function openTeacherPage(token, examId = exam) {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  await page.goto(`${pageOrigin}/demo/teacher.html?api=${encodeURIComponent(api)}&exam=${examId}` +
    `#token=${token}`);
  return { context, page };
}

async function statusOf(page) {
  await page.waitForFunction(
    () => !['idle', 'exporting'].includes(document.getElementById('status').dataset.status),
    undefined, { timeout: 20000 });
  return page.evaluate(() => {
    const el = document.getElementById('status');
    return { status: el.dataset.status, text: el.textContent };
  });
}

test('a teacher downloads the CSV, which is the export itself', async () => {
  const { context, page } = await openTeacherPage(staffToken());
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 20000 }),
    page.click('#download')]);
  assert.equal(download.suggestedFilename(), `exam-${exam}-attempts.csv`);
  const file = path.join(tmp, download.suggestedFilename());
  await download.saveAs(file);
  const saved = fs.readFileSync(file, 'utf8');
  const direct = await fetch(`${api}/exams/${exam}/attempts`, {
    headers: { Authorization: `Bearer ${staffToken()}`, Accept: 'text/csv' },
    signal: AbortSignal.timeout(10000),
  });
  assert.equal(direct.status, 200);
  assert.equal(saved, await direct.text());
  const lines = saved.split('\r\n').filter((line) => line !== '');
  assert.equal(lines[0], 'id,student_id,answers,revision,started_at,updated_at,submitted_at,deadline,saves');
  assert.equal(lines.length, 4);
  assert.deepEqual(await statusOf(page),
    { status: 'done', text: `3 attempts saved as exam-${exam}-attempts.csv` });

  // Submitted only: one.
  await page.check('#submitted-only');
  const [only] = await Promise.all([page.waitForEvent('download', { timeout: 20000 }),
    page.click('#download')]);
  const onlyFile = path.join(tmp, `only-${only.suggestedFilename()}`);
  await only.saveAs(onlyFile);
  assert.equal(fs.readFileSync(onlyFile, 'utf8').split('\r\n').filter((l) => l !== '').length, 2);
  await context.close();
});

test("a student's token and another exam are refused, and the page says why", async () => {
  const student = await openTeacherPage(sign(run + 1));
  await student.page.click('#download');
  assert.deepEqual(await statusOf(student.page),
    { status: 'refused', text: "Only the exam's staff can download its answers (403)" });
  await student.context.close();

  const other = await openTeacherPage(staffToken(), otherExam);
  await other.page.click('#download');
  assert.deepEqual(await statusOf(other.page),
    { status: 'refused', text: 'No such exam, or you are not one of its staff (404)' });
  await other.context.close();
});
