// The contract replay's staff cases (issue 30): exporting an exam's attempts (NDJSON, CSV, the
// filters, every refusal, 429 past --max-exports), a staff member's read of one attempt, and
// staff refused on every writing operation. Called by contract-replay.mjs with what
// scripts/contract.sh set up: an exam whose staff is the `staff` token's subject, with one
// attempt (`staffAttempt`) and a large one (`bigExam`) to hold an export open.
import http from 'node:http';

import {
  HEAD,
  GET,
  PATCH,
  POST,
  all,
  bearer,
  challenge,
  exchange,
  fields,
  invalid,
  json,
  retryAfter,
  send,
  tally,
  report,
  valid,
} from './contract-exchange.mjs';

const lines = (text) => text.split('\n').filter((line) => line !== '');
const contentType = (wanted) => (response) =>
  response.headers['content-type'] === wanted
    ? undefined
    : `Content-Type "${response.headers['content-type']}"`;
// Checked on the server's own answer: Prism, a proxy, frames the body its own way.
const chunked = (response) =>
  response.headers['transfer-encoding'] === 'chunked' ? undefined : 'not chunked';
const ndjsonRows = (count) => (response) => {
  const rows = lines(response.body);
  if (count !== undefined && rows.length !== count) return `${rows.length} rows, not ${count}`;
  for (const row of rows) {
    try {
      const value = JSON.parse(row);
      if (typeof value.id !== 'number' || typeof value.answers !== 'object') return `row ${row}`;
    } catch {
      return `not JSON: ${row}`;
    }
  }
  return undefined;
};

// A request to the server itself whose response is left unread: the export it starts stays
// open (the server writes only as fast as it is read) until `close()` is called.
function holdOpen(base, path, headers) {
  return new Promise((resolve, reject) => {
    const request = http.request(new URL(path, base), { method: 'GET', headers, agent: false });
    request.on('error', reject);
    request.on('response', (response) => {
      response.pause();
      resolve({
        status: response.statusCode,
        close: () => {
          response.destroy();
          request.destroy();
        },
      });
    });
    request.end();
  });
}

async function metric(base, name) {
  const page = await send(base, GET('/metrics'));
  const line = page.body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? -1 : Number(line.split(' ')[1]);
}

export async function replayStaff({ live, down, tokens, staffExam, otherExam, staffAttempt, bigExam }) {
  const asStaff = bearer(tokens.staff);
  const exportOf = (exam, query = '') => `/exams/${exam}/attempts${query}`;
  const csv = { ...asStaff, Accept: 'text/csv' };

  await exchange('export, NDJSON', live, GET(exportOf(staffExam), asStaff),
    valid(200, all(contentType('application/x-ndjson'), ndjsonRows(3))));
  await exchange('export, CSV', live, GET(exportOf(staffExam), csv),
    valid(200, all(contentType('text/csv; charset=utf-8; header=present'),
      (r) => (r.body.startsWith('id,student_id,answers,revision,') ? undefined : 'no header'),
      (r) => (r.body.split('\r\n').length === 5 ? undefined : `${r.body.split('\r\n').length} lines`))));
  await exchange('export, the submitted ones', live,
    GET(exportOf(staffExam, '?submitted=true'), asStaff), valid(200, ndjsonRows(1)));
  await exchange('export, those not submitted, saved since 2000', live,
    GET(exportOf(staffExam, '?submitted=false&updated_since=2000-01-01T00:00:00%2B00:00'), asStaff),
    valid(200, ndjsonRows()));
  await exchange('export, submitted neither true nor false', live,
    GET(exportOf(staffExam, '?submitted=yes'), asStaff), invalid(400));
  await exchange('export, updated_since not a date-time', live,
    GET(exportOf(staffExam, '?updated_since=yesterday'), asStaff), invalid(400));
  await exchange('export, Accept rules out both media types', live,
    GET(exportOf(staffExam), { ...asStaff, Accept: 'application/json' }), valid(406));
  await exchange("export by a student", live, GET(exportOf(staffExam), bearer(tokens.student)),
    valid(403));
  await exchange('export by staff of another exam', live,
    GET(exportOf(otherExam), asStaff), valid(404));
  await exchange('export of an exam that does not exist', live,
    GET(exportOf('9223372036854775807'), asStaff), valid(404));
  await exchange('export without a token', live, GET(exportOf(staffExam)),
    invalid(401, challenge('missing')));
  await exchange('export with an expired token', live,
    GET(exportOf(staffExam), bearer(tokens.staffExpired)), valid(401, challenge('expired')));

  // HEAD: the head of the export, sent to the server directly (Prism 5 cannot proxy a HEAD
  // answered with a body type it parses), compared with the GET's, which must be chunked.
  {
    const name = `HEAD ${exportOf(staffExam)}  export (direct, compared with a direct GET)`;
    const get = await send(live.server, GET(exportOf(staffExam), csv));
    const head = await send(live.server, HEAD(exportOf(staffExam), csv));
    tally.direct += 2;
    const problems = [];
    if (head.status !== 200) problems.push(`expected status 200`);
    if (head.body !== '') problems.push(`HEAD has a body`);
    const framing = chunked(get);
    if (framing) problems.push(`the GET is ${framing}`);
    for (const field of ['content-type', 'transfer-encoding', 'content-disposition']) {
      if (get.headers[field] !== head.headers[field]) problems.push(`${field} differs`);
    }
    report(problems.length === 0, name, head.status, problems);
  }

  // Past --max-exports (1): one export held open, the next is told to come back.
  const held = await holdOpen(live.server, exportOf(bigExam), asStaff);
  await exchange('export while another runs (--max-exports 1)', live,
    GET(exportOf(staffExam), asStaff), valid(429, retryAfter));
  held.close();
  for (let i = 0; i < 100 && (await metric(live.server, 'attempts_exports_running')) !== 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  // One attempt, read by its exam's staff; staff never write.
  const attempt = `/attempts/${staffAttempt}`;
  await exchange("a staff member reads their exam's attempt", live, GET(attempt, asStaff),
    valid(200, fields({ id: staffAttempt })));
  await exchange("staff of another exam read an attempt", live,
    GET(attempt, bearer(tokens.otherStaff)), valid(404));
  await exchange('a staff member saves answers', live,
    PATCH(attempt, json(tokens.staff), '{"answers":{"1":[1]}}'), valid(403));
  await exchange('a staff member submits', live, POST(`${attempt}/submit`, asStaff), valid(403));
  await exchange('a staff member starts an attempt', live, POST(`/exams/${staffExam}/attempts`, asStaff),
    valid(403));

  // Without a database: the staff connections cannot open either.
  await exchange('export without a database', down, GET(exportOf(staffExam), asStaff),
    valid(503, retryAfter));
  await exchange('a staff read without a database', down, GET(attempt, asStaff),
    valid(503, retryAfter));
}
