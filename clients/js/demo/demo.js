// The demo exam page: a student picks answers, sees whether they are saved, and submits; below,
// the attempt's history lists every save the server applied, newest first. Everything about
// saving and reading is the reference client's (../attempts-client.js); this file only draws the
// page and says what the client reports.
//
// URL: /demo/?api=http://127.0.0.1:8000&exam=1#token=<JWT>
//   api    the attempts API's origin (default http://127.0.0.1:8000); the server must allow
//          this page's origin (--cors-origin)
//   exam   the exam to start (default 1)
//   token  a student's bearer token, in the fragment so that it never reaches a server's log
//   timeout  optional: milliseconds before an unanswered request counts as failed (the
//          client's requestTimeoutMs; the browser test shortens it)
//   history  optional: entries per history page (default: the server's, 50); "Older entries"
//          reads the next page
// The attempt's id (and the Idempotency-Key of its start) are kept in sessionStorage, so a
// reload shows the same attempt with its stored answers.
import { AttemptsClient } from '../attempts-client.js';

const QUESTIONS = [
  { id: 1, text: 'Which planet is closest to the Sun?', options: ['Venus', 'Mercury', 'Mars', 'Earth'] },
  { id: 2, text: 'How many sides has a hexagon?', options: ['5', '6', '7', '8'] },
  { id: 3, text: 'Which gas do plants take in?', options: ['Oxygen', 'Nitrogen', 'Carbon dioxide', 'Helium'] },
  { id: 4, text: 'What is 7 × 8?', options: ['54', '56', '58', '64'] },
  { id: 5, text: 'Which of these are prime? (several)', options: ['2', '9', '11', '15'], multiple: true },
];

const MESSAGES = {
  loading: () => 'Loading…',
  saving: () => 'Saving…',
  saved: () => 'All answers saved',
  offline: (d) => `Offline — will retry in ${Math.max(1, Math.round(d.retryInMs / 1000))} s`,
  submitted: () => 'Submitted — your answers are final',
  deadline: () => 'Deadline passed — answers can no longer change',
  unauthorized: () => 'Session expired — sign in again to keep saving',
  conflict: () => 'Newer answers were saved elsewhere — reload the page',
  error: (d) => `Could not save: ${d.message ?? 'error'}`,
};

const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const api = params.get('api') || 'http://127.0.0.1:8000';
const exam = params.get('exam') || '1';
let token = fragment.get('token') || params.get('token') || '';

const statusEl = document.getElementById('status');
const questionsEl = document.getElementById('questions');
const submitEl = document.getElementById('submit');
const attemptEl = document.getElementById('attempt');
const historyEl = document.getElementById('history');
const historySummaryEl = document.getElementById('history-summary');
const historyListEl = document.getElementById('history-entries');
const historyRefreshEl = document.getElementById('history-refresh');
const historyOlderEl = document.getElementById('history-older');

function show(status, detail = {}) {
  statusEl.dataset.status = status;
  statusEl.textContent = (MESSAGES[status] ?? (() => status))(detail);
}

function drawQuestions() {
  for (const question of QUESTIONS) {
    const box = document.createElement('fieldset');
    box.dataset.question = question.id;
    const legend = document.createElement('legend');
    legend.textContent = `${question.id}. ${question.text}`;
    box.append(legend);
    question.options.forEach((text, index) => {
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.type = question.multiple ? 'checkbox' : 'radio';
      input.name = `q${question.id}`;
      input.value = String(index + 1);
      input.id = `q${question.id}-o${index + 1}`;
      label.append(input, ` ${text}`);
      box.append(label);
    });
    questionsEl.append(box);
  }
}

// The whole answer sheet as the API takes it: {"<question id>": [<option id>, ...]}.
function answersOnPage() {
  const answers = {};
  for (const question of QUESTIONS) {
    const chosen = [...questionsEl.querySelectorAll(`input[name="q${question.id}"]:checked`)];
    if (chosen.length) answers[question.id] = chosen.map((input) => Number(input.value));
  }
  return answers;
}

function showAnswers(answers) {
  for (const input of questionsEl.querySelectorAll('input')) {
    const question = input.name.slice(1);
    input.checked = (answers[question] ?? []).includes(Number(input.value));
  }
}

// --- the history ----------------------------------------------------------------------------

const KINDS = { start: 'Started', save: 'Saved', submit: 'Submitted' };
const historyLimit = Number(params.get('history')) || undefined;
let historyPage; // the last page drawn: "Older entries" follows its next
let historyBusy = false; // one history read at a time
let historyAgain = false; // asked for while one was on its way: read the first page once more

// An entry's answers in words: "1: Mercury · 5: 2, 11".
function describeAnswers(answers) {
  const parts = Object.entries(answers)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([id, options]) => {
      const question = QUESTIONS.find((q) => String(q.id) === id);
      const names = options.map((option) => question?.options[option - 1] ?? String(option));
      return `${id}: ${names.join(', ')}`;
    });
  return parts.length ? parts.join(' · ') : 'no answers';
}

function textElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

// One entry: when, what, the answers as saved, and its sequence number, revision and writes.
// The data-* attributes carry the entry as the server sent it (the browser test reads them).
function historyItem(entry) {
  const item = document.createElement('li');
  Object.assign(item.dataset, {
    seq: entry.seq,
    kind: entry.kind,
    writtenAt: entry.written_at,
    revision: entry.revision ?? '',
    writes: entry.writes,
    answers: JSON.stringify(entry.answers),
  });
  const when = new Date(entry.written_at);
  const time = textElement('time', 'when',
    Number.isNaN(when.getTime()) ? entry.written_at : when.toLocaleTimeString());
  time.dateTime = entry.written_at;
  time.title = entry.written_at;
  const detail = [
    `#${entry.seq}`,
    entry.revision === null ? 'no revision' : `revision ${entry.revision}`,
    entry.writes > 1 ? `${entry.writes} writes in one` : '',
  ].filter(Boolean).join(' · ');
  item.append(time, textElement('span', 'kind', KINDS[entry.kind] ?? entry.kind),
    textElement('span', 'answers', describeAnswers(entry.answers)),
    textElement('span', 'detail', detail));
  return item;
}

function drewHistory(page) {
  historyPage = page;
  historyOlderEl.hidden = !page.next;
  historyEl.dataset.state = 'shown';
  historySummaryEl.dataset.saves = page.saves;
  const shown = historyListEl.children.length;
  historySummaryEl.textContent = `${page.saves} ${page.saves === 1 ? 'save' : 'saves'} on ` +
    `record; ${shown} ${shown === 1 ? 'entry' : 'entries'} shown, newest first.`;
}

function historyFailed(error) {
  historyEl.dataset.state = 'error';
  historySummaryEl.textContent = error.httpStatus === 404
    ? `No history: ${error.message}`
    : `History unavailable: ${error.message}`;
}

// Reads one page of the history, as the client reads it (retried while the API is away), and
// draws it: the first page in place of the list, or the next one below it.
async function readHistory(older) {
  if (!attemptId) return;
  if (historyBusy) {
    historyAgain = historyAgain || !older;
    return;
  }
  historyBusy = true;
  historyAgain = false;
  try {
    if (older) {
      const page = await client.nextHistory(historyPage);
      if (page) {
        historyListEl.append(...page.entries.map(historyItem));
        drewHistory(page);
      }
    } else {
      const page = await client.history(attemptId, { limit: historyLimit });
      historyListEl.replaceChildren(...page.entries.map(historyItem));
      drewHistory(page);
    }
  } catch (error) {
    historyFailed(error);
  } finally {
    historyBusy = false;
    if (historyAgain) readHistory(false);
  }
}

// The `sub` of the token, to keep one stored attempt per student.
function student() {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).sub ?? 'anonymous';
  } catch {
    return 'anonymous';
  }
}

const storageKey = `attempts-demo:${api}:${exam}:${student()}`;
const timeout = Number(params.get('timeout'));
const client = new AttemptsClient({
  baseUrl: api,
  token: () => token,
  ...(timeout > 0 ? { requestTimeoutMs: timeout } : {}),
});
let attemptId;
let final = false;

function makeFinal() {
  final = true;
  questionsEl.disabled = true;
  submitEl.disabled = true;
}

client.addEventListener('status', async (event) => {
  const { status } = event.detail;
  show(status, event.detail);
  // A save or the submit is on the record now: the history shows it.
  if (status === 'saved' || status === 'submitted' || status === 'deadline') readHistory(false);
  if ((status === 'submitted' || status === 'deadline') && !final) {
    makeFinal();
    // The sheet as stored: a click that was refused does not stay on the page.
    try {
      showAnswers((await client.load(attemptId)).answers);
    } catch {
      // the status already says what matters
    }
  }
});

async function open() {
  drawQuestions();
  if (!token) {
    show('unauthorized');
    return;
  }
  let record;
  try {
    attemptId = sessionStorage.getItem(`${storageKey}:attempt`);
    if (attemptId) {
      record = await client.load(attemptId);
    } else {
      // The key is stored before the start is sent: a reload during it starts nothing new.
      let key = sessionStorage.getItem(`${storageKey}:start-key`);
      if (!key) {
        key = crypto.randomUUID();
        sessionStorage.setItem(`${storageKey}:start-key`, key);
      }
      record = await client.start(exam, { idempotencyKey: key });
      attemptId = String(record.id);
      sessionStorage.setItem(`${storageKey}:attempt`, attemptId);
    }
  } catch (error) {
    show(error.httpStatus === 401 ? 'unauthorized' : 'error', { message: error.message });
    return;
  }
  attemptEl.textContent = `Attempt ${record.id}.`;
  showAnswers(record.answers);
  historyRefreshEl.disabled = false;
  historyRefreshEl.addEventListener('click', () => readHistory(false));
  historyOlderEl.addEventListener('click', () => readHistory(true));
  readHistory(false);
  if (record.submitted_at) {
    makeFinal();
    show('submitted');
    return;
  }
  questionsEl.disabled = false;
  submitEl.disabled = false;
  show('saved', { revision: record.revision });
  questionsEl.addEventListener('change', () => {
    if (!final) client.save(attemptId, answersOnPage());
  });
  submitEl.addEventListener('click', async () => {
    submitEl.disabled = true;
    try {
      await client.submit(attemptId);
    } catch (error) {
      submitEl.disabled = final;
      show(error.httpStatus === 401 ? 'unauthorized' : 'error', { message: error.message });
    }
  });
}

// For the browser test and the curious: window.demo.setToken(jwt) after "session expired".
window.demo = {
  client,
  get attemptId() {
    return attemptId;
  },
  setToken(newToken) {
    token = newToken;
    client.setToken(newToken);
  },
};

open();
