// The demo teacher page: a staff member of an exam downloads its attempts as CSV
// (GET /exams/{id}/attempts with Accept: text/csv). It says what the server answered, and never
// saves a file from an export that was cut off midway.
//
// URL: /demo/teacher.html?api=http://127.0.0.1:8000&exam=1#token=<staff JWT>
//   api    the attempts API's origin; the server must allow this page's origin (--cors-origin)
//   exam   the exam to export (default 1)
//   token  a staff member's bearer token (--staff-claim/--staff-role), in the fragment so that
//          it never reaches a server's log
// The browser holds the whole file in memory before saving it: fine for a class; an archive of
// a whole exam of 20,000 students is better fetched with curl, which streams it to disk.

const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const api = params.get('api') || 'http://127.0.0.1:8000';
const exam = params.get('exam') || '1';
const token = fragment.get('token') || '';

const statusEl = document.getElementById('status');
const buttonEl = document.getElementById('download');
const submittedOnlyEl = document.getElementById('submitted-only');
document.getElementById('exam').textContent = exam;

function show(status, text) {
  statusEl.dataset.status = status;
  statusEl.textContent = text;
}

// What each refusal means to a teacher.
function refusal(response) {
  switch (response.status) {
    case 401:
      return ['refused', 'Your session has expired: sign in again (401)'];
    case 403:
      return ['refused', "Only the exam's staff can download its answers (403)"];
    case 404:
      return ['refused', 'No such exam, or you are not one of its staff (404)'];
    case 429:
      return ['busy', `Another export is running: try again in ${response.headers.get('Retry-After') ?? 'a few'} s (429)`];
    default:
      return ['error', `The server could not export the exam: try again later (${response.status})`];
  }
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function download() {
  buttonEl.disabled = true;
  show('exporting', 'Exporting…');
  try {
    const query = submittedOnlyEl.checked ? '?submitted=true' : '';
    let response;
    try {
      response = await fetch(`${api}/exams/${encodeURIComponent(exam)}/attempts${query}`, {
        headers: { Authorization: `Bearer ${token}`, Accept: 'text/csv' },
      });
    } catch {
      return show('error', 'The server cannot be reached: check your connection and try again');
    }
    if (!response.ok) return show(...refusal(response));
    let text;
    try {
      // A stream that ends without its last chunk (the database failed midway) rejects here:
      // nothing is saved, so a partial file is never taken for the whole exam.
      text = await response.text();
    } catch {
      return show('error', 'The export was cut off before its end: download it again');
    }
    const rows = text.split('\r\n').filter((line) => line !== '').length - 1;
    const name = `exam-${exam}-attempts.csv`;
    save(new Blob([text], { type: 'text/csv' }), name);
    show('done', `${rows} attempt${rows === 1 ? '' : 's'} saved as ${name}`);
  } finally {
    buttonEl.disabled = false;
  }
}

buttonEl.addEventListener('click', download);
window.teacher = { download };
