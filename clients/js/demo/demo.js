// The demo exam page: a student picks answers, sees whether they are saved, and submits.
// Everything about saving is the reference client's (../attempts-client.js); this file only
// draws the page and says what the client reports.
//
// URL: /demo/?api=http://127.0.0.1:8000&exam=1#token=<JWT>
//   api    the attempts API's origin (default http://127.0.0.1:8000); the server must allow
//          this page's origin (--cors-origin)
//   exam   the exam to start (default 1)
//   token  a student's bearer token, in the fragment so that it never reaches a server's log
//   timeout  optional: milliseconds before an unanswered request counts as failed (the
//          client's requestTimeoutMs; the browser test shortens it)
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
