// What the browser tests share: their environment, bounded waits, figures, the API server as a
// child process (only its own pid is ever signalled), and Debian's Chromium launched headless.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

import { chromium } from 'playwright-core';

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (scripts/browser-test.sh sets it)`);
  return value;
}

export const serverBinary = required('BROWSER_TEST_SERVER');
export const tokenTool = required('BROWSER_TEST_TOKEN_TOOL');
export const databaseUrl = required('ATTEMPTS_TEST_DATABASE_URL');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

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

// --- the API server: a child process whose pid alone is ever signalled ----------------------

export class ApiServer {
  constructor(args, logPath) {
    this.args = args;
    this.logPath = logPath;
    this.child = undefined;
    this.port = 0;
  }

  async start(port = 0) {
    const offset = fs.existsSync(this.logPath) ? fs.statSync(this.logPath).size : 0;
    const log = fs.openSync(this.logPath, 'a');
    this.child = spawn(serverBinary, ['--listen', `127.0.0.1:${port}`, ...this.args], {
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
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(timer);
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
}

// Debian's Chromium, headless; never a downloaded browser.
export async function launchChromium() {
  const headless = ['--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (process.getuid && process.getuid() === 0) headless.push('--no-sandbox');
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: headless });
}

// The server's log must hold no sanitizer report.
export function sanitizerReport(logPath) {
  const log = fs.readFileSync(logPath, 'utf8');
  return /ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer/.exec(log) ? log : null;
}
