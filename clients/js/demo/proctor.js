// The demo proctor page: a staff member of an exam watches its attempts live (GET
// /exams/{id}/progress through progress-stream.js): who has started, how many questions each has
// answered, who is saving, who has gone quiet, who has submitted. No refresh button: the server
// sends what changed every interval, and the page reconnects by itself.
//
// URL: /demo/proctor.html?api=http://127.0.0.1:8000&exam=1#token=<staff JWT>
//   api    the attempts API's origin; the server must allow this page's origin (--cors-origin)
//   exam   the exam to watch (default 1)
//   token  a staff member's bearer token (--staff-claim/--staff-role), in the fragment so that
//          it never reaches a server's log
// Ages (saving, quiet) are measured from the event's `at`, the database's clock, not the
// browser's: a laptop whose clock is off still shows who is quiet.

import { watchProgress } from '../progress-stream.js';

const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const api = params.get('api') || 'http://127.0.0.1:8000';
const exam = params.get('exam') || '1';
const token = fragment.get('token') || '';

const SAVING_MS = 60000; // wire format: "saving" is a save within the last 60 s
const connectionEl = document.getElementById('connection');
const rowsEl = document.getElementById('attempts');
document.getElementById('exam').textContent = exam;

const rows = new Map(); // attempt id -> <tr>
let quietAfterMs = 300000;
let events = 0; // events applied so far; each row keeps the number of the one that last changed it

function showConnection(state, text) {
  connectionEl.dataset.state = state;
  connectionEl.textContent = text;
}

// What each end of the watch means to a proctor.
const STOPPED = {
  unauthorized: 'Your session has expired: sign in again (401)',
  forbidden: "Only the exam's staff can watch it (403)",
  'not-found': 'No such exam, or you are not one of its staff (404)',
  'gave-up': 'The server cannot be reached: reload the page to try again',
  stopped: 'Stopped',
};

function onState({ state, reason, retryInMs, httpStatus, message }) {
  if (state === 'connecting' && rows.size === 0) showConnection('connecting', 'Connecting…');
  else if (state === 'reconnecting') {
    const seconds = Math.max(1, Math.round(retryInMs / 1000));
    showConnection('reconnecting', `Connection lost (${reason}): reconnecting in ${seconds} s`);
  } else if (state === 'stopped') {
    showConnection('stopped', STOPPED[reason] ?? `The server refused: ${message} (${httpStatus})`);
  }
  // 'open' is shown once the first event has come: until then nothing is live yet.
}

// One formatter for every cell: an exam of 20,000 attempts redraws its ages every interval.
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

function time(text) {
  return text ? clock.format(new Date(text)) : '';
}

// How long ago, as of the event's `at`.
function age(text, at) {
  if (!text) return '';
  const seconds = Math.max(0, Math.round((Date.parse(at) - Date.parse(text)) / 1000));
  return seconds < 120 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

// As the server counts its totals; quiet first, so that a row agrees with the quiet total even
// when --progress-quiet is under a minute.
function activity(attempt, at) {
  if (attempt.submitted_at) return 'submitted';
  const now = Date.parse(at);
  if (now - Date.parse(attempt.updated_at ?? attempt.started_at) > quietAfterMs) return 'quiet';
  if (attempt.updated_at && now - Date.parse(attempt.updated_at) <= SAVING_MS) return 'saving';
  return 'working';
}

function cell(row, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  row.append(td);
  return td;
}

function makeRow(attempt) {
  const row = document.createElement('tr');
  row.dataset.id = String(attempt.id);
  cell(row, 'student');
  cell(row, 'answered number');
  cell(row, 'saved');
  cell(row, 'submitted');
  cell(row, 'deadline');
  return row;
}

// Fills a row with an attempt as of `at`; `changed` when the attempt itself came in this event.
function fill(row, attempt, at, changed) {
  const [student, answered, saved, submitted, deadline] = row.cells;
  if (changed) {
    row.dataset.event = String(events);
    row.dataset.answered = String(attempt.answered);
    row.dataset.submitted = attempt.submitted_at ? 'true' : 'false';
    student.textContent = String(attempt.student_id);
    answered.textContent = String(attempt.answered);
    submitted.textContent = time(attempt.submitted_at);
    submitted.title = attempt.submitted_at ?? '';
    deadline.textContent = time(attempt.deadline);
    deadline.title = attempt.deadline ?? '';
    saved.title = attempt.updated_at ?? '';
    row.savedTime = time(attempt.updated_at); // only the age changes while the attempt does not
  }
  const savedText = attempt.updated_at
    ? `${row.savedTime} (${age(attempt.updated_at, at)})`
    : 'not yet';
  if (saved.textContent !== savedText) saved.textContent = savedText;
  const state = activity(attempt, at);
  if (row.dataset.activity !== state) row.dataset.activity = state;
}

// The table in attempt id order; a new attempt goes before the first row with a larger id
// (usually at the end: ids grow).
function insert(row, id) {
  let before = null;
  let next = rowsEl.lastElementChild;
  while (next && Number(next.dataset.id) > id) {
    before = next;
    next = next.previousElementSibling;
  }
  rowsEl.insertBefore(row, before);
}

function showTotals(totals) {
  for (const name of ['attempts', 'saving', 'quiet', 'submitted']) {
    document.getElementById(`total-${name}`).textContent = String(totals[name]);
  }
}

function live(at) {
  showConnection('open', `Live — as of ${time(at)}`);
}

function onSnapshot(data, table) {
  events += 1;
  quietAfterMs = data.quiet_after_s * 1000;
  document.getElementById('quiet-after').textContent =
    data.quiet_after_s % 60 === 0 ? `${data.quiet_after_s / 60} min` : `${data.quiet_after_s} s`;
  rows.clear();
  const ordered = [...table.values()].sort((a, b) => a.id - b.id);
  const fragmentEl = document.createDocumentFragment();
  for (const attempt of ordered) {
    const row = makeRow(attempt);
    fill(row, attempt, data.at, true);
    rows.set(attempt.id, row);
    fragmentEl.append(row);
  }
  rowsEl.replaceChildren(fragmentEl);
  showTotals(data.totals);
  live(data.at);
}

function onChanges(data, table) {
  events += 1;
  const changed = new Set();
  for (const attempt of data.attempts) {
    changed.add(attempt.id);
    let row = rows.get(attempt.id);
    if (!row) {
      row = makeRow(attempt);
      rows.set(attempt.id, row);
      insert(row, attempt.id);
    }
  }
  // Every row: time passed for all of them (who is saving, who went quiet).
  for (const [id, row] of rows) fill(row, table.get(id), data.at, changed.has(id));
  showTotals(data.totals);
  live(data.at);
}

const watch = watchProgress({ baseUrl: api, token: () => token }, exam, {
  onSnapshot,
  onChanges,
  onState,
});
window.proctor = { watch, events: () => events };
