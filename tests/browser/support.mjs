// What the real-browser tests share (exam_page.test.mjs, key_rotation.test.mjs): bounded waits,
// the API server and the test identity provider as child processes whose pids alone are ever
// signalled, Debian's Chromium, and the demo page and the API as a test reads them.
//
// Environment (scripts/browser-test.sh sets it): BROWSER_TEST_SERVER, BROWSER_TEST_TOKEN_TOOL,
// ATTEMPTS_TEST_DATABASE_URL, CHROMIUM (default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (scripts/browser-test.sh sets it)`);
  return value;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function figure(name, value) {
  console.log(`[  FIGURE  ] ${name} = ${value}`);
}

// Polls `check` (async, truthy when done) every 100 ms for at most `timeoutMs`.
export async function eventually(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check().catch((error) => error);
    if (last && !(last instanceof Error)) return last;
    await sleep(100);
  }
  throw new Error(`not within ${timeoutMs} ms: ${what} (last: ${last})`);
}

export function normalized(answers) {
  return Object.fromEntries(Object.entries(answers).sort(([a], [b]) => Number(a) - Number(b)));
}

// SIGTERM to a child process this test started (by its pid), SIGKILL if it has not exited
// within `graceMs`.
async function stopChild(child, graceMs) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// --- the API server: a child process whose pid alone is ever signalled ----------------------

export class ApiServer {
  constructor(args, logPath) {
    this.binary = required('BROWSER_TEST_SERVER');
    this.args = args;
    this.logPath = logPath;
    this.child = undefined;
    this.port = 0;
  }

  async start(port = 0) {
    const offset = fs.existsSync(this.logPath) ? fs.statSync(this.logPath).size : 0;
    const log = fs.openSync(this.logPath, 'a');
    this.child = spawn(this.binary, ['--listen', `127.0.0.1:${port}`, ...this.args], {
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    const child = this.child;
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    const line = await eventually('attempts-server listening', async () => {
      if (exited) throw new Error(`attempts-server exited: ${this.tail()}`);
      const text = fs.readFileSync(this.logPath, 'utf8').slice(offset);
      return /listening on 127\.0\.0\.1:(\d+)/.exec(text);
    }, 30000);
    this.port = Number(line[1]);
    return this.port;
  }

  // SIGTERM, up to 15 s to exit (it drains), then SIGKILL.
  async stop() {
    await stopChild(this.child, 15000);
  }

  freeze() {
    this.child.kill('SIGSTOP');
  }

  thaw() {
    this.child.kill('SIGCONT');
  }

  tail() {
    return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-20).join('\n');
  }

  // Where the log is now, and the access lines written since such a mark: [method, path, status].
  mark() {
    return fs.statSync(this.logPath).size;
  }

  requestsSince(mark) {
    const text = fs.readFileSync(this.logPath, 'utf8').slice(mark);
    return [...text.matchAll(/access \S+ (\S+) (\S+) (\d{3}) /g)].map((m) => m.slice(1, 4));
  }

  // The first sanitizer report in the log, or null.
  sanitizerReport() {
    const log = fs.readFileSync(this.logPath, 'utf8');
    const found = /ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer/.exec(log);
    return found ? log : null;
  }
}

// --- a proxy in front of the API that can hold a request -----------------------------------------

// Forwards every request to `api`, except one it is told to hold: that one is read and never
// forwarded nor answered, as on a network that stalls, so the API never sees it, whatever the
// browser does with it afterwards.
export class HoldingProxy {
  constructor(api) {
    this.api = new URL(api);
    this.holdMethod = undefined;
    this.held = [];
  }

  async start() {
    this.server = http.createServer((request, response) => this.forward(request, response));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  // The next request with this method is held; resolves with its body once it has come.
  holdNext(method) {
    this.holdMethod = method;
    return eventually(`a ${method} held`, async () => this.held.length > 0 && this.held[0]);
  }

  forward(request, response) {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      if (request.method === this.holdMethod) {
        this.holdMethod = undefined;
        this.held.push(body.toString('utf8'));
        return;
      }
      const upstream = http.request({
        host: this.api.hostname, port: this.api.port, method: request.method, path: request.url,
        headers: request.headers,
      }, (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        answer.pipe(response);
      });
      upstream.on('error', () => response.destroy());
      upstream.end(body);
    });
  }

  close() {
    this.server?.closeAllConnections();
    this.server?.close();
  }
}

// --- the test identity provider (tests/oidc/provider.mjs, npm's oidc-provider) ----------------

export class IdentityProvider {
  async start(logPath) {
    const log = fs.openSync(logPath, 'a');
    this.child = spawn(process.execPath, [path.join(repo, 'tests/oidc/provider.mjs'), '--port', '0'],
      { stdio: ['ignore', 'pipe', log] });
    fs.closeSync(log);
    let output = '';
    this.child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    const ready = await eventually('the identity provider listening', async () => {
      if (this.child.exitCode !== null) throw new Error(`the provider exited: see ${logPath}`);
      const line = output.split('\n').find((l) => l.startsWith('{"issuer"'));
      return line && JSON.parse(line);
    }, 30000);
    this.issuer = ready.issuer;
    return this.issuer;
  }

  async call(method, target, init = {}) {
    const response = await fetch(`${this.issuer}${target}`,
      { method, ...init, signal: AbortSignal.timeout(10000) });
    const body = await response.json();
    if (response.status !== 200) throw new Error(`${method} ${target}: ${JSON.stringify(body)}`);
    return body;
  }

  // An access token for student 1..50 (client student-N): RS256, aud urn:attempts, the numeric
  // claim student_id, signed with the provider's signing key.
  async token(student) {
    const basic = Buffer.from(`student-${student}:secret-${student}`).toString('base64');
    const answer = await this.call('POST', '/token', {
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&scope=attempts',
    });
    return answer.access_token;
  }

  // A new signing key: besides the old ones, instead of them (`only`), or under the same kid.
  async rotate({ only = false, sameKid = false } = {}) {
    const query = sameKid ? '?same_kid=1' : only ? '?only=1' : '';
    return (await this.call('POST', `/test/rotate${query}`)).kid;
  }

  async stats() {
    return this.call('GET', '/test/stats');
  }

  async stop() {
    await stopChild(this.child, 10000);
  }
}

// --- Debian's Chromium, never a downloaded one ----------------------------------------------

export async function launchChromium() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const args = ['--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  const browser = await chromium.launch({ executablePath, headless: true, args });
  console.log(`browser-test: ${browser.version()} (${executablePath})`);
  return browser;
}

// --- the API, as a test reads it ----------------------------------------------------------------

export class ApiReader {
  constructor(api) {
    this.api = api;
  }

  async call(method, urlPath, token) {
    const response = await fetch(`${this.api}${urlPath}`, {
      method,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(10000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  async stored(attemptId, token) {
    const { status, body } = await this.call('GET', `/attempts/${attemptId}`, token);
    if (status !== 200) throw new Error(`GET /attempts/${attemptId}: ${status} ${JSON.stringify(body)}`);
    return body;
  }

  // Waits until the database holds `answers` for the attempt; returns the attempt.
  async storedAs(attemptId, token, answers, timeoutMs = 20000) {
    const wanted = JSON.stringify(normalized(answers));
    return eventually(`attempt ${attemptId} stores ${wanted}`, async () => {
      const attempt = await this.stored(attemptId, token);
      return JSON.stringify(normalized(attempt.answers)) === wanted && attempt;
    }, timeoutMs);
  }
}

// --- the demo page --------------------------------------------------------------------------------

// Opens the demo page of `pageOrigin` on the API `api` as `student`; resolves once it shows its
// attempt. `patches` collects the body of every PATCH the page sends, in order.
export async function openExamPage(browser, { pageOrigin, api, student, query = '', context }) {
  const ownContext = context ?? (await browser.newContext());
  const page = await ownContext.newPage();
  const patches = [];
  const errors = [];
  page.on('request', (request) => {
    if (request.method() === 'PATCH') patches.push(JSON.parse(request.postData()));
  });
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(`${pageOrigin}/demo/?api=${encodeURIComponent(api)}&exam=1${query}` +
    `#token=${student.token}`);
  return { context: ownContext, page, patches, errors };
}

export async function pageStatus(page) {
  return page.locator('#status').getAttribute('data-status');
}

export async function showsStatus(page, wanted, timeoutMs = 20000) {
  await page.waitForFunction((s) => document.getElementById('status').dataset.status === s,
    wanted, { timeout: timeoutMs });
}

export async function attemptOf(page) {
  await showsStatus(page, 'saved');
  return page.evaluate(() => window.demo.attemptId);
}

// The answers shown on the page: which inputs are checked.
export async function answersOnPage(page) {
  return page.evaluate(() => {
    const answers = {};
    for (const input of document.querySelectorAll('#questions input:checked')) {
      const question = input.name.slice(1);
      (answers[question] ??= []).push(Number(input.value));
    }
    return answers;
  });
}

// Every status the page's client reports from now on, in window.statuses.
export async function recordStatuses(page) {
  await page.evaluate(() => {
    window.statuses = [];
    window.demo.client.addEventListener('status', (event) => window.statuses.push(event.detail.status));
  });
}
