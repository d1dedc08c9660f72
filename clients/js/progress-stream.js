// progress-stream.js: an exam's live progress (GET /exams/{id}/progress, Server-Sent Events) for
// its staff, beside attempts-client.js. A dependency-free ES module that a page imports as it is:
//
//   import { watchProgress } from './progress-stream.js';
//   const watch = watchProgress(client, examId, {       // client: an AttemptsClient, or any
//     onSnapshot: (data, table) => redraw(table),       // { baseUrl, token, fetch }
//     onChanges: (data, table) => update(data.attempts),
//     onState: ({ state, reason }) => banner(state),    // connecting, open, reconnecting, stopped
//   });
//   watch.stop();
//
// `EventSource` cannot send an Authorization header, so the stream is read with fetch and a
// stream reader, and parsed here as the WHATWG HTML standard (9.2, "server-sent events") parses
// it. The wire format is the server's (docs/openapi.yaml, /exams/{id}/progress); README.md beside
// this file gives each rule with the failure it prevents.

const DEFAULTS = {
  retryMs: 2000, // the first wait before a reconnect, until the server's `retry:` says otherwise
  retryMaxMs: 30000, // backoff never waits longer than this (unless Retry-After says more)
  maxFailures: 60, // consecutive failed connections (no event received) before giving up
  idleTimeoutMs: 45000, // no byte for this long (three missed heartbeats): the connection is dead
  maxEventChars: 64 * 1024 * 1024, // one event larger than this is a broken stream, not data
};

// --- the parser ----------------------------------------------------------------------------

// The event stream interpretation of the WHATWG HTML standard, fed decoded text in pieces of any
// size. `onEvent({ type, data, lastEventId })` for each event dispatched, `onRetry(ms)` for a
// valid `retry:` field (at once, as the standard sets the reconnection time), `onComment(text)`
// for a comment line (heartbeats). Pieces may split a line, or a CRLF, anywhere.
export class EventStreamParser {
  constructor({ onEvent, onRetry, onComment, maxEventChars = DEFAULTS.maxEventChars } = {}) {
    this.onEvent = onEvent ?? (() => {});
    this.onRetry = onRetry ?? (() => {});
    this.onComment = onComment ?? (() => {});
    this.maxEventChars = maxEventChars;
    this.line = ''; // the line not yet ended
    this.afterCR = false; // the last piece ended in CR: a LF that starts the next one is its CRLF
    this.started = false; // a leading BOM is dropped once, at the start of the stream only
    this.data = '';
    this.type = '';
    this.lastEventIdBuffer = ''; // kept from event to event, as the standard says
  }

  push(text) {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let from = 0;
    if (this.afterCR && text.length > 0) {
      this.afterCR = false;
      if (text[0] === '\n') from = 1;
    }
    const ends = /\r\n|\r|\n/g;
    ends.lastIndex = from;
    for (let match = ends.exec(text); match; match = ends.exec(text)) {
      this.line += text.slice(from, match.index);
      from = ends.lastIndex;
      // A CR at the very end may be the first half of a CRLF split between pieces.
      if (match[0] === '\r' && from === text.length) this.afterCR = true;
      const line = this.line;
      this.line = '';
      this.processLine(line);
    }
    this.line += text.slice(from);
    // Bounded memory whatever the server sends: a line or an event that never ends is an error.
    if (this.line.length + this.data.length > this.maxEventChars) {
      throw new Error(`an event longer than ${this.maxEventChars} characters`);
    }
  }

  // The end of the stream: an event not ended by a blank line is discarded, never dispatched.
  end() {
    this.line = '';
    this.data = '';
    this.type = '';
  }

  processLine(line) {
    if (line === '') return this.dispatch();
    if (line[0] === ':') return this.onComment(line.slice(1).replace(/^ /, ''));
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event':
        this.type = value;
        break;
      case 'data':
        this.data += `${value}\n`;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventIdBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.onRetry(Number(value));
        break;
      default: // other fields are ignored
    }
  }

  dispatch() {
    const data = this.data;
    const type = this.type;
    this.data = '';
    this.type = '';
    if (data === '') return;
    this.onEvent({
      type: type || 'message',
      data: data.slice(0, -1), // without the last LF
      lastEventId: this.lastEventIdBuffer,
    });
  }
}

// --- the watch -----------------------------------------------------------------------------

// The end of one connection, and what to do next.
class StreamEnd extends Error {
  constructor(message, { retry = true, httpStatus, retryAfterMs = 0, reason } = {}) {
    super(message);
    this.retry = retry;
    this.httpStatus = httpStatus;
    this.retryAfterMs = retryAfterMs;
    this.reason = reason;
  }
}

// Retry-After in seconds (the only form the API sends) as milliseconds; 0 when absent.
function retryAfterMs(response) {
  const seconds = Number(response.headers.get('Retry-After'));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

async function errorMessage(response) {
  try {
    const body = JSON.parse(await response.text());
    return (body && body.error) || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// Why a refusal stops the watch for good: a retry would get the same answer.
const FINAL = {
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
};

// Watches an exam's progress until stop() (or `signal` aborts, or a refusal). `client` is an
// AttemptsClient or any { baseUrl, token, fetch }: token() is called again for each connection,
// so a reconnect an hour later carries a fresh token. Handlers:
//   onSnapshot(data, table)  the whole state: `table` (a Map, attempt id -> attempt) was replaced
//   onChanges(data, table)   data.attempts were upserted into `table`
//   onState({ state, ... })  'connecting', 'open', 'reconnecting' (retryInMs, reason,
//                            httpStatus), 'stopped' (reason: 'stopped', 'unauthorized',
//                            'forbidden', 'not-found', 'refused', 'gave-up'; httpStatus, message)
// Returns { stop(), table, totals, at, lastEventId, state }: the fields follow the stream.
export function watchProgress(client, examId, handlers = {}) {
  const watch = new ProgressWatch(client, examId, handlers);
  watch.run();
  return watch;
}

export class ProgressWatch {
  constructor(client, examId, { onSnapshot, onChanges, onState, signal, ...options } = {}) {
    if (!client || !client.baseUrl) {
      throw new Error('watchProgress: a client with a baseUrl is required');
    }
    this.baseUrl = String(client.baseUrl).replace(/\/+$/, '');
    this.tokenSource = client.token;
    this.fetch = client.fetch || globalThis.fetch.bind(globalThis);
    this.examId = examId;
    this.options = { ...DEFAULTS, ...options };
    this.handlers = { onSnapshot, onChanges, onState };
    this.table = new Map();
    this.totals = undefined;
    this.at = undefined;
    this.lastEventId = '';
    this.state = 'idle';
    this.retryMs = this.options.retryMs;
    this.stopped = false;
    this.controller = undefined; // aborts the connection in progress
    this.wake = undefined; // ends a backoff wait early (stop)
    this.signal = signal;
    if (signal) {
      if (signal.aborted) this.stopped = true;
      else signal.addEventListener('abort', () => this.stop(), { once: true });
    }
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.controller?.abort();
    this.wake?.();
    this.setState('stopped', { reason: 'stopped' });
  }

  setState(state, detail = {}) {
    this.state = state;
    this.call('onState', { state, ...detail });
  }

  // Connects, reads, and reconnects after each end of the stream, until stopped or refused.
  // Bounded: `maxFailures` connections in a row without an event end it.
  async run() {
    let failures = 0;
    let unauthorized = 0; // 401s in a row: one more try with a fresh token, not two
    while (!this.stopped) {
      let end;
      let events = 0;
      try {
        this.setState('connecting', { lastEventId: this.lastEventId || undefined });
        events = await this.connect();
        end = new StreamEnd('the stream ended');
      } catch (error) {
        end = error instanceof StreamEnd ? error : new StreamEnd(`network: ${error.message}`);
        events = error.events ?? 0;
      }
      if (this.stopped) return;
      if (events > 0) failures = 0;
      unauthorized = end.httpStatus === 401 ? unauthorized + 1 : 0;
      const fatal = !end.retry || (end.httpStatus === 401 && unauthorized > 1);
      if (fatal) {
        this.stopped = true;
        this.setState('stopped', {
          reason: FINAL[end.httpStatus] || 'refused',
          httpStatus: end.httpStatus,
          message: end.message,
        });
        return;
      }
      failures += 1;
      if (failures > this.options.maxFailures) {
        this.stopped = true;
        this.setState('stopped', {
          reason: 'gave-up',
          httpStatus: end.httpStatus,
          message: end.message,
        });
        return;
      }
      // A first 401: the token may have expired while the stream was open; a fresh one is
      // asked for at once (or after Retry-After, when the server is fetching new keys).
      const retryInMs =
        end.httpStatus === 401 ? end.retryAfterMs : this.backoff(failures, end.retryAfterMs);
      this.setState('reconnecting', { retryInMs, reason: end.message, httpStatus: end.httpStatus });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, retryInMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  // The wait before reconnection number `failures`: the server's `retry:` doubled per failure
  // in a row, capped at retryMaxMs, with up to half again of jitter (so that a hundred proctors
  // dropped together do not come back together), never sooner than `retry:` or Retry-After.
  backoff(failures, retryAfter) {
    const cap = Math.max(this.options.retryMaxMs, this.retryMs);
    const floor = Math.min(cap, this.retryMs * 2 ** (failures - 1));
    const jittered = Math.min(cap, floor * (1 + Math.random() / 2));
    return Math.round(Math.max(jittered, retryAfter));
  }

  async token() {
    try {
      return typeof this.tokenSource === 'function' ? await this.tokenSource() : this.tokenSource;
    } catch (error) {
      // Refreshing a token needs the network too: tried again like a dropped connection.
      throw new StreamEnd(`token: ${error.message}`);
    }
  }

  url() {
    return `${this.baseUrl}/exams/${encodeURIComponent(this.examId)}/progress`;
  }

  // One connection: resolves with the number of events applied when the stream ends cleanly;
  // throws a StreamEnd (with `events`) otherwise.
  async connect() {
    const token = await this.token();
    if (this.stopped) return 0; // stop() came while the token was on its way
    const headers = { Accept: 'text/event-stream' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
    const controller = new AbortController();
    this.controller = controller;
    let idle;
    const stillAlive = () => {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(), this.options.idleTimeoutMs);
    };
    stillAlive();
    let events = 0;
    try {
      let response;
      try {
        response = await this.fetch(this.url(), {
          method: 'GET',
          headers,
          // Bearer tokens, not cookies (README rule 10); the default cache mode keeps the
          // browser's preflight cache in use.
          credentials: 'omit',
          signal: controller.signal,
        });
      } catch (error) {
        throw new StreamEnd(`network: ${error.message}`);
      }
      if (response.status !== 200) {
        const message = await errorMessage(response);
        const status = response.status;
        const retry = status === 401 || status === 408 || status === 429 || status >= 500;
        throw new StreamEnd(message, {
          retry,
          httpStatus: status,
          retryAfterMs: retryAfterMs(response),
        });
      }
      const type = (response.headers.get('Content-Type') || '').split(';')[0].trim().toLowerCase();
      if (type !== 'text/event-stream' || !response.body) {
        // A proxy's or captive portal's page: perhaps not there next time.
        throw new StreamEnd(`not an event stream (Content-Type ${type || 'absent'})`, {
          httpStatus: 200,
        });
      }
      this.setState('open');
      const parser = new EventStreamParser({
        onEvent: (event) => {
          this.apply(event);
          events += 1;
        },
        onRetry: (ms) => {
          this.retryMs = ms;
        },
        maxEventChars: this.options.maxEventChars,
      });
      // The BOM is the parser's to drop, once; the decoder keeps it.
      const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          stillAlive();
          parser.push(decoder.decode(value, { stream: true }));
          if (this.stopped) return events;
        }
        parser.push(decoder.decode());
        parser.end();
      } finally {
        reader.cancel().catch(() => {});
      }
      return events;
    } catch (error) {
      const end = error instanceof StreamEnd
        ? error
        : new StreamEnd(controller.signal.aborted && !this.stopped
          ? `no data for ${this.options.idleTimeoutMs} ms`
          : `stream: ${error.message}`);
      end.events = events;
      throw end;
    } finally {
      clearTimeout(idle);
      // The connection is closed whatever ended the reading (an event that is not JSON, say).
      controller.abort();
      if (this.controller === controller) this.controller = undefined;
    }
  }

  // One event: a snapshot replaces the table, changes upsert into it by attempt id. The event's
  // id becomes the one to resume from only once it is applied: a bad event is not skipped.
  apply(event) {
    if (event.type !== 'snapshot' && event.type !== 'changes') return;
    const data = JSON.parse(event.data);
    if (!data || !Array.isArray(data.attempts)) throw new Error(`a ${event.type} without attempts`);
    if (event.type === 'snapshot') {
      this.table = new Map(data.attempts.map((attempt) => [attempt.id, attempt]));
    } else {
      for (const attempt of data.attempts) this.table.set(attempt.id, attempt);
    }
    this.totals = data.totals;
    this.at = data.at;
    this.lastEventId = event.lastEventId;
    this.call(event.type === 'snapshot' ? 'onSnapshot' : 'onChanges', data, this.table);
  }

  // A page's handler that throws is reported as an event listener's would be, and the stream goes
  // on: a drawing bug must not make the watch reconnect in a loop.
  call(name, ...args) {
    try {
      this.handlers[name]?.(...args);
    } catch (error) {
      if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
      else console.error(error);
    }
  }
}
