// attempts-client.js: the reference browser client of the attempts service. A dependency-free ES
// module that a page imports as it is:
//
//   import { AttemptsClient } from './attempts-client.js';
//   const client = new AttemptsClient({ baseUrl: 'https://api.example.org', token: () => jwt });
//   client.addEventListener('status', (event) => show(event.detail));  // saving, saved, ...
//   const attempt = await client.start(examId);       // or: await client.load(attemptId)
//   client.save(attempt.id, { 1: [2], 2: [1, 3] });   // on every click: the whole answer set
//   await client.submit(attempt.id);
//   const page = await client.history(attempt.id);   // every save on record, newest first
//   const then = await client.answersAt(attempt.id, '2026-12-07T10:03:00Z');
//
// It follows the save protocol of the API (docs/openapi.yaml); README.md beside this file gives
// each rule with the failure it prevents. In short: every PATCH carries the whole answer set and
// a revision greater than every earlier one; clicks are debounced into one PATCH, one request
// in flight per attempt; 503, 504 and network errors are retried with capped exponential
// backoff that honours Retry-After; no 4xx is retried, but for a 401 with Retry-After (the
// server is fetching its identity provider's new keys), retried once; 409 after a submission or
// the deadline stops saving; a start carries an Idempotency-Key kept across its retries; answers not yet
// confirmed stored (pending or in flight) are sent with `keepalive` when the page is hidden.
//
// Events (`status`, a CustomEvent whose detail is { attemptId, status, ... }):
//   saving        answers are waiting to be sent or on their way
//   saved         everything the page gave save() is stored (detail.revision)
//   offline       the last try failed (network, 503, 504); it is retried in detail.retryInMs
//   submitted     the answers are final (detail.submittedAt); save() changes nothing any more
//   deadline      the deadline passed (detail.deadline); save() changes nothing any more
//   unauthorized  the token was refused (expired...); answers are kept until setToken()
//   conflict      newer answers of this attempt were saved elsewhere (detail.revision); nothing
//                 is overwritten: load() the attempt, show its answers, and saving goes on
//   error         the server refused the request for a reason retrying cannot fix
//                 (detail.httpStatus, detail.message)

const DEFAULTS = {
  debounceMs: 300, // a burst of clicks within this becomes one PATCH
  maxWaitMs: 2000, // ... but answers never wait longer than this while clicks go on
  retryBaseMs: 250, // first retry after about this; doubles each time
  retryMaxMs: 8000, // and never waits longer than this (unless Retry-After says more)
  requestTimeoutMs: 15000, // a request not wholly answered (body included) by then counts as a
  // network error
};

class HttpError extends Error {
  constructor(status, body, retryAfterMs = 0) {
    super((body && body.error) || `HTTP ${status}`);
    this.httpStatus = status;
    this.body = body;
    this.retryAfterMs = retryAfterMs;
  }
}

// A 401 that says when to ask again: the server is fetching its identity provider's keys (a
// token signed by a key it does not have yet, docs/auth.md). Worth one more try, no more: a
// token those keys refuse too is refused for good.
function isKeyRotation(error) {
  return error instanceof HttpError && error.httpStatus === 401 && error.retryAfterMs > 0;
}

// Retry-After in seconds (the only form the API sends) as milliseconds; 0 when absent.
function retryAfterMs(response) {
  const seconds = Number(response.headers.get('Retry-After'));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

// A network failure, a timeout, 503 or 504: nothing (503) or maybe something (504, network) was
// done, and the same request may be sent again.
class RetryableError extends Error {
  constructor(message, retryAfterMs = 0) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function randomKey() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === 'function') {
    return globalThis.crypto.randomUUID();
  }
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// The path of an attempt's history, with the query parameters that are given.
function historyPath(attemptId, parameters) {
  const query = Object.entries(parameters)
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([name, value]) => `${name}=${encodeURIComponent(String(value))}`)
    .join('&');
  return `/attempts/${attemptId}/history${query ? `?${query}` : ''}`;
}

// One attempt's saving state.
class Attempt {
  constructor(id) {
    this.id = id;
    this.answers = undefined; // the latest answer set the page gave
    this.dirty = false; // answers not yet confirmed stored
    this.inFlight = false;
    this.revision = 0; // the highest revision sent or seen stored
    this.savedRevision = 0;
    this.final = undefined; // 'submitted' or 'deadline' once the answers cannot change
    this.finalDetail = undefined;
    this.paused = undefined; // 'unauthorized', 'conflict' or 'error': waits for the page
    this.pausedDetail = undefined;
    this.timer = undefined;
    this.firstDirtyAt = 0;
    this.failures = 0;
    this.retryAt = 0; // no try before this (backoff, Retry-After), whatever the clicks
    this.keepaliveAnswers = undefined; // the answer set a keepalive request carries, if any
    this.keysRetried = false; // a 401 with Retry-After was retried since the last success
    this.waiters = [];
  }
}

export class AttemptsClient extends EventTarget {
  // options: baseUrl (the API's origin, e.g. 'http://127.0.0.1:8000'), token (a JWT, or a
  // function returning one), and the timings of DEFAULTS. `fetch` may be replaced (tests).
  constructor(options = {}) {
    super();
    if (!options.baseUrl) throw new Error('AttemptsClient: baseUrl is required');
    this.baseUrl = String(options.baseUrl).replace(/\/+$/, '');
    this.token = options.token;
    this.options = { ...DEFAULTS, ...options };
    this.fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this.attempts = new Map();
    this.closed = false;
    this.onPageHide = () => this.flushAll({ keepalive: true });
    this.onVisibility = () => {
      if (globalThis.document && globalThis.document.visibilityState === 'hidden') {
        this.flushAll({ keepalive: true });
      }
    };
    this.onOnline = () => this.retryNow();
    if (options.flushOnHide !== false && typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('pagehide', this.onPageHide);
      globalThis.addEventListener('visibilitychange', this.onVisibility);
      globalThis.addEventListener('online', this.onOnline);
    }
  }

  // Starts an attempt of an exam. The Idempotency-Key is made once and sent with every retry,
  // so a start whose answer was lost returns the same attempt instead of a second one; pass
  // your own (kept in sessionStorage, say) to survive a reload during the start.
  async start(examId, { idempotencyKey = randomKey() } = {}) {
    const record = await this.withRetries(() =>
      this.request('POST', `/exams/${examId}/attempts`, {
        headers: { 'Idempotency-Key': idempotencyKey },
      }),
    );
    this.adopt(record);
    return record;
  }

  // Reads an attempt: its stored answers, revision and whether it is final. After a `conflict`
  // this is how saving resumes: the stored answers replace the ones that conflicted (show them
  // on the page), and the next save() goes above the stored revision.
  async load(attemptId) {
    const record = await this.read(`/attempts/${attemptId}`);
    this.adopt(record);
    const attempt = this.attempt(record.id);
    if (attempt.paused === 'conflict') {
      attempt.paused = undefined;
      attempt.pausedDetail = undefined;
      attempt.answers = record.answers;
      attempt.dirty = false;
      this.emit(attempt, 'saved', { revision: attempt.savedRevision });
      this.resolveIfSettled(attempt);
    }
    return record;
  }

  // --- the answer history (GET /attempts/{id}/history) ----------------------------------------
  // Read only: none of these changes what save() sends. Retried like load() (503, 504, network,
  // honouring Retry-After); a 4xx throws an Error with httpStatus and body (404: not the
  // caller's attempt, or a server with --history off).

  // A page of the attempt's history, newest first: { id, saves, entries, next }, each entry
  // { seq, kind: 'start' | 'save' | 'submit', written_at, revision, writes, answers }.
  // `limit` 1..200 (the server's default is 50); `before` a sequence number, the cursor that a
  // page's `next` carries: nextHistory(page) follows it for you.
  async history(attemptId, { before, limit } = {}) {
    return this.read(historyPath(attemptId, { before, limit }));
  }

  // The page after `page` (older entries), following its `next` as the server wrote it; null
  // after the last page.
  async nextHistory(page) {
    if (page.next === null || page.next === undefined) return null;
    if (typeof page.next !== 'string' || !/^\/attempts\/[^/?#]+\/history\?/.test(page.next)) {
      throw new Error(`not a history page's next: ${JSON.stringify(page.next)}`);
    }
    return this.read(page.next);
  }

  // Every entry of the attempt's history, newest first, page by page (an async iterator):
  //   for await (const entry of client.historyEntries(id)) ...
  // Sequence numbers must fall from entry to entry, so it ends even if a server's `next` were to
  // lead back: then it throws instead of going round.
  async *historyEntries(attemptId, { limit } = {}) {
    let page = await this.history(attemptId, { limit });
    let below = Infinity;
    while (page) {
      for (const entry of page.entries) {
        if (!(entry.seq < below)) {
          throw new Error(`the history went back to sequence number ${entry.seq} after ${below}`);
        }
        below = entry.seq;
        yield entry;
      }
      if (page.next && page.entries.length === 0) {
        throw new Error(`an empty history page with a next page (${page.next})`);
      }
      page = await this.nextHistory(page);
    }
  }

  // The attempt's answers at an instant: { id, saves, at, entry, answers }, where entry is the
  // newest one written at or before `at` (null, and answers {}, before the attempt started).
  // `at` is a Date, or an RFC 3339 string with its offset: an entry's written_at keeps the
  // microseconds that a Date would round away. The time is percent-encoded, a `+` offset as
  // %2B (a bare `+` in a query is read as a space by much of the web).
  async answersAt(attemptId, at) {
    const instant = at instanceof Date ? at.toISOString() : String(at);
    return this.read(historyPath(attemptId, { at: instant }));
  }

  // Call on every change with the WHOLE answer set ({ "<question id>": [<option id>, ...] }).
  // Returns at once; the answers are sent after a short pause in the clicks. The returned
  // promise resolves with the attempt's status once these answers (or later ones) are stored,
  // or once saving stopped (submitted, deadline, unauthorized, conflict, error).
  save(attemptId, answers) {
    const attempt = this.attempt(attemptId);
    if (attempt.final) {
      this.emit(attempt, attempt.final, attempt.finalDetail);
      return Promise.resolve(attempt.final);
    }
    attempt.answers = JSON.parse(JSON.stringify(answers));
    if (!attempt.dirty) attempt.firstDirtyAt = Date.now();
    attempt.dirty = true;
    // A refused request is not retried, but new answers are a new request.
    if (attempt.paused === 'error') attempt.paused = undefined;
    const waitMs = attempt.retryAt - Date.now();
    if (attempt.paused) {
      this.emit(attempt, attempt.paused, attempt.pausedDetail);
    } else {
      // While a retry waits, the page keeps saying so: these answers wait for it too.
      if (attempt.failures > 0 && waitMs > 0) {
        this.emit(attempt, 'offline', { retryInMs: waitMs, reason: 'waiting to retry' });
      } else {
        this.emit(attempt, 'saving');
      }
      this.schedule(attempt);
    }
    return this.settled(attempt);
  }

  // Sends what is pending now (no debounce) and resolves as save() does.
  flush(attemptId) {
    const attempt = this.attempt(attemptId);
    clearTimeout(attempt.timer);
    attempt.timer = undefined;
    this.send(attempt);
    return this.settled(attempt);
  }

  // Makes the answers final: the pending answers are stored first, then the attempt is
  // submitted (retried like a save: submitting twice returns the first submission).
  async submit(attemptId) {
    const attempt = this.attempt(attemptId);
    if (!attempt.final || attempt.final === 'deadline') {
      const status = await this.flush(attemptId);
      if (status === 'unauthorized' || status === 'conflict' || status === 'error') {
        throw new Error(`cannot submit: saving the last answers ended in "${status}"`);
      }
    }
    const record = await this.withRetries(
      () => this.request('POST', `/attempts/${attemptId}/submit`),
      attempt,
    );
    this.adopt(record);
    return record;
  }

  // A new token (after `unauthorized`): saving resumes with it.
  setToken(token) {
    this.token = token;
    for (const attempt of this.attempts.values()) {
      attempt.keysRetried = false;
      if (attempt.paused === 'unauthorized') {
        attempt.paused = undefined;
        this.send(attempt);
      }
    }
  }

  // Retries what waits for a backoff now (the browser says it is online again).
  retryNow() {
    for (const attempt of this.attempts.values()) {
      if (attempt.dirty && !attempt.inFlight && !attempt.paused && !attempt.final) {
        attempt.retryAt = 0;
        clearTimeout(attempt.timer);
        attempt.timer = undefined;
        this.send(attempt);
      }
    }
  }

  // Sends every attempt's pending answers at once; with keepalive the requests outlive the page,
  // and answers in flight go too: the browser aborts a normal request when the page goes.
  flushAll({ keepalive = false } = {}) {
    for (const attempt of this.attempts.values()) {
      const unconfirmed = attempt.dirty || (keepalive && attempt.inFlight);
      if (!unconfirmed || attempt.final || attempt.paused) continue;
      // A page going away is told twice (visibilitychange, then pagehide): one request is enough.
      if (keepalive && attempt.keepaliveAnswers === attempt.answers) continue;
      clearTimeout(attempt.timer);
      attempt.timer = undefined;
      if (keepalive) {
        this.sendKeepalive(attempt);
      } else {
        this.send(attempt);
      }
    }
  }

  close() {
    this.closed = true;
    for (const attempt of this.attempts.values()) clearTimeout(attempt.timer);
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('pagehide', this.onPageHide);
      globalThis.removeEventListener('visibilitychange', this.onVisibility);
      globalThis.removeEventListener('online', this.onOnline);
    }
  }

  // --- saving ------------------------------------------------------------------------------

  attempt(attemptId) {
    const id = String(attemptId);
    let attempt = this.attempts.get(id);
    if (!attempt) {
      attempt = new Attempt(id);
      this.attempts.set(id, attempt);
    }
    return attempt;
  }

  // What the server says of an attempt: its revision, and whether it is final.
  adopt(record) {
    const attempt = this.attempt(record.id);
    attempt.revision = Math.max(attempt.revision, record.revision || 0);
    attempt.savedRevision = Math.max(attempt.savedRevision, record.revision || 0);
    if (record.submitted_at) {
      this.finish(attempt, 'submitted', { submittedAt: record.submitted_at });
    }
  }

  // Revisions grow with every PATCH, and with the clock, so that a reloaded page (which has
  // forgotten its counter) still sends revisions above those it sent before.
  nextRevision(attempt) {
    attempt.revision = Math.max(attempt.revision + 1, Date.now());
    return attempt.revision;
  }

  // Debounce: wait for a pause in the clicks, but no longer than maxWaitMs since the first
  // unsaved one. While a request is in flight nothing is scheduled: its completion sends the
  // latest answers.
  schedule(attempt) {
    if (attempt.inFlight || attempt.paused || this.closed) return;
    clearTimeout(attempt.timer);
    const now = Date.now();
    const waited = now - attempt.firstDirtyAt;
    const debounce = Math.min(this.options.debounceMs, this.options.maxWaitMs - waited);
    const delay = Math.max(0, debounce, attempt.retryAt - now);
    attempt.timer = setTimeout(() => {
      attempt.timer = undefined;
      this.send(attempt);
    }, delay);
  }

  async send(attempt) {
    if (!attempt.dirty || attempt.inFlight || attempt.final || attempt.paused || this.closed) {
      this.resolveIfSettled(attempt);
      return;
    }
    const answers = attempt.answers;
    const revision = this.nextRevision(attempt);
    attempt.dirty = false;
    attempt.inFlight = true;
    let outcome;
    try {
      await this.request('PATCH', `/attempts/${attempt.id}`, { body: { answers, revision } });
      outcome = { saved: true };
    } catch (error) {
      outcome = { error };
    }
    attempt.inFlight = false;
    // A keepalive flush sent these answers again with a newer revision and they were stored: the
    // fate of this request (aborted by a page hide, say) no longer matters.
    const storedByKeepalive = attempt.savedRevision > revision && attempt.answers === answers;
    if (outcome.saved || storedByKeepalive) {
      attempt.failures = 0;
      attempt.retryAt = 0;
      attempt.keysRetried = false;
      attempt.savedRevision = Math.max(attempt.savedRevision, revision);
    } else {
      this.failed(attempt, outcome.error, revision);
    }
    if (attempt.final || attempt.paused) {
      this.resolveIfSettled(attempt);
      return;
    }
    if (attempt.dirty) {
      // Newer clicks arrived meanwhile (or this try failed): their turn, after the debounce or
      // the backoff that failed() set.
      if (!attempt.timer) this.schedule(attempt);
      return;
    }
    this.emit(attempt, 'saved', { revision: attempt.savedRevision });
    this.resolveIfSettled(attempt);
  }

  failed(attempt, error, revision) {
    if (error instanceof RetryableError) {
      attempt.failures += 1;
      const retryInMs = this.backoff(attempt.failures, error.retryAfterMs);
      this.emit(attempt, 'offline', { retryInMs, reason: error.message });
      this.retryLater(attempt, retryInMs);
      return;
    }
    if (isKeyRotation(error) && !attempt.keysRetried) {
      // Not the student's fault and not an outage: the page keeps saying "saving".
      attempt.keysRetried = true;
      this.emit(attempt, 'saving', { retryInMs: error.retryAfterMs, reason: error.message });
      this.retryLater(attempt, error.retryAfterMs);
      return;
    }
    const status = error.httpStatus;
    const body = error.body || {};
    if (status === 409 && body.submitted_at) {
      this.finish(attempt, 'submitted', { submittedAt: body.submitted_at });
    } else if (status === 409 && body.deadline) {
      this.finish(attempt, 'deadline', { deadline: body.deadline });
    } else if (status === 409 && typeof body.revision === 'number') {
      if (body.revision <= attempt.revision) {
        // Our own later PATCH (the keepalive flush, a retry of a write that did apply) got
        // there first: nothing was lost.
        attempt.savedRevision = Math.max(attempt.savedRevision, body.revision);
        return;
      }
      attempt.revision = body.revision;
      attempt.dirty = true;
      this.pause(attempt, 'conflict', { revision: body.revision });
    } else if (status === 401) {
      attempt.dirty = true; // kept: saved once the page gives a new token
      this.pause(attempt, 'unauthorized', { message: error.message });
    } else {
      attempt.dirty = true;
      this.pause(attempt, 'error', { httpStatus: status, message: error.message, revision });
    }
  }

  // The answers are sent again (with the latest clicks) in `retryInMs`, not sooner.
  retryLater(attempt, retryInMs) {
    attempt.dirty = true;
    attempt.retryAt = Date.now() + retryInMs;
    clearTimeout(attempt.timer);
    attempt.timer = setTimeout(() => {
      attempt.timer = undefined;
      this.send(attempt);
    }, retryInMs);
  }

  // Capped exponential backoff with jitter (so that thousands of pages do not retry in step),
  // never sooner than the server's Retry-After.
  backoff(failures, retryAfterMs) {
    const ceiling = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** (failures - 1));
    const jittered = ceiling / 2 + Math.random() * (ceiling / 2);
    return Math.round(Math.max(jittered, retryAfterMs));
  }

  // Page hide: the pending answers go out at once in a request that survives the page, with a
  // revision above any in flight, so whichever arrives last, the newest answers stay. If the
  // page lives on (it was only hidden), the normal path takes over should this one fail.
  sendKeepalive(attempt) {
    const answers = attempt.answers;
    const revision = this.nextRevision(attempt);
    attempt.keepaliveAnswers = answers;
    this.request('PATCH', `/attempts/${attempt.id}`, {
      body: { answers, revision },
      keepalive: true,
    }).then(
      () => {
        attempt.savedRevision = Math.max(attempt.savedRevision, revision);
        if (attempt.answers !== answers || !attempt.dirty) return; // newer clicks since
        attempt.dirty = false;
        attempt.failures = 0;
        attempt.retryAt = 0;
        clearTimeout(attempt.timer);
        attempt.timer = undefined;
        if (!attempt.inFlight) this.emit(attempt, 'saved', { revision: attempt.savedRevision });
        this.resolveIfSettled(attempt);
      },
      () => {
        if (attempt.keepaliveAnswers === answers) attempt.keepaliveAnswers = undefined;
        if (attempt.dirty && !attempt.timer) this.schedule(attempt);
      },
    );
  }

  finish(attempt, final, detail) {
    attempt.final = final;
    attempt.finalDetail = detail;
    attempt.paused = undefined;
    attempt.dirty = false;
    clearTimeout(attempt.timer);
    attempt.timer = undefined;
    this.emit(attempt, final, detail);
    this.resolveIfSettled(attempt);
  }

  pause(attempt, why, detail) {
    attempt.paused = why;
    attempt.pausedDetail = detail;
    clearTimeout(attempt.timer);
    attempt.timer = undefined;
    this.emit(attempt, why, detail);
  }

  // The status save() and flush() resolve with, once there is one.
  settled(attempt) {
    return new Promise((resolve) => {
      attempt.waiters.push(resolve);
      this.resolveIfSettled(attempt);
    });
  }

  resolveIfSettled(attempt) {
    let status;
    if (attempt.final) status = attempt.final;
    else if (attempt.paused) status = attempt.paused;
    else if (!attempt.dirty && !attempt.inFlight) status = 'saved';
    if (!status) return;
    const waiters = attempt.waiters;
    attempt.waiters = [];
    for (const resolve of waiters) resolve(status);
  }

  emit(attempt, status, detail = {}) {
    this.dispatchEvent(
      new CustomEvent('status', { detail: { attemptId: attempt.id, status, ...detail } }),
    );
  }

  // --- HTTP --------------------------------------------------------------------------------

  // A GET, retried until it gets an answer that is not 503 or 504; resolves with the body.
  read(path) {
    return this.withRetries(() => this.request('GET', path));
  }

  // Calls `once` until it succeeds or fails for a reason other than RetryableError (a 401 with
  // Retry-After is tried once more); each wait for a RetryableError is announced as `offline` on
  // `attempt`, when there is one.
  async withRetries(once, attempt) {
    let keysRetried = false;
    for (let failures = 1; ; failures += 1) {
      try {
        return await once();
      } catch (error) {
        if (this.closed) throw error;
        if (isKeyRotation(error) && !keysRetried) {
          keysRetried = true;
          await sleep(error.retryAfterMs);
          continue;
        }
        if (!(error instanceof RetryableError)) throw error;
        const retryInMs = this.backoff(failures, error.retryAfterMs);
        if (attempt) this.emit(attempt, 'offline', { retryInMs, reason: error.message });
        await sleep(retryInMs);
      }
    }
  }

  // One request. Resolves with the parsed JSON body (or null); throws RetryableError for a
  // network failure, a timeout (the whole response, body included, within requestTimeoutMs), a
  // token() that failed, 503 or 504, and HttpError for any other status outside 2xx.
  async request(method, path, { body, headers = {}, keepalive = false } = {}) {
    let token;
    try {
      token = typeof this.token === 'function' ? await this.token() : this.token;
    } catch (error) {
      // Refreshing a token needs the network too (the identity provider): tried again later.
      throw new RetryableError(`token: ${error.message}`);
    }
    const allHeaders = { ...headers };
    if (token) allHeaders.Authorization = `Bearer ${token}`;
    if (body !== undefined) allHeaders['Content-Type'] = 'application/json';
    const controller = new AbortController();
    const timer = keepalive
      ? undefined
      : setTimeout(() => controller.abort(), this.options.requestTimeoutMs);
    let response;
    let text;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers: allHeaders,
        body: body === undefined ? undefined : JSON.stringify(body),
        keepalive,
        // Bearer tokens, not cookies: no credentials, so no Access-Control-Allow-Credentials.
        credentials: 'omit',
        // The default cache mode on purpose: with 'no-store' or 'reload' Chromium also skips its
        // preflight cache, and every request pays a preflight. The API's answers carry no
        // freshness, so nothing stale is ever read from the HTTP cache.
        signal: controller.signal,
      });
      // The timeout runs until the body is read: a body that stalls must not freeze saving.
      text = await response.text();
    } catch (error) {
      // A CORS refusal looks the same as a network failure to a page: both are retried.
      throw new RetryableError(`network: ${error.message}`);
    } finally {
      clearTimeout(timer);
    }
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (response.status === 503 || response.status === 504) {
      throw new RetryableError(
        `HTTP ${response.status}: ${(parsed && parsed.error) || ''}`,
        retryAfterMs(response),
      );
    }
    if (!response.ok) throw new HttpError(response.status, parsed, retryAfterMs(response));
    return parsed;
  }
}
