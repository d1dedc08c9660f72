// The contract replay's progress stream cases (issue 31): GET /exams/{id}/progress is opened on
// the server directly (Prism waits for a body's end, and a stream has none), its first events
// are read and their data validated against docs/openapi.yaml's ProgressSnapshot and
// ProgressChanges (Ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses it); the refusals go through
// Prism like every other exchange. Called by contract-replay.mjs.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import yaml from 'js-yaml';

import { GET, bearer, challenge, exchange, invalid, report, retryAfter, tally, valid } from './contract-exchange.mjs';

const documentPath = fileURLToPath(new URL('../../docs/openapi.yaml', import.meta.url));

// The component schemas of the document, by name.
function progressValidators() {
  const document = yaml.load(readFileSync(documentPath, 'utf8'));
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const format of ['int64', 'int32']) ajv.addFormat(format, true);
  ajv.addSchema({ $id: 'openapi', components: document.components }, 'openapi');
  return {
    snapshot: ajv.getSchema('openapi#/components/schemas/ProgressSnapshot'),
    changes: ajv.getSchema('openapi#/components/schemas/ProgressChanges'),
  };
}

// Reads the stream's first `count` events (or until `ms`), then closes the connection.
function firstEvents(base, path, headers, count, ms = 15000) {
  return new Promise((resolve, reject) => {
    const request = http.request(new URL(path, base), { method: 'GET', headers, agent: false });
    const timer = setTimeout(() => request.destroy(new Error(`fewer than ${count} events in ${ms} ms`)), ms);
    request.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    request.on('response', (response) => {
      const events = [];
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (piece) => {
        text += piece;
        let end;
        while ((end = text.indexOf('\n\n')) !== -1) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const event = { lines: block.split('\n') };
          for (const line of event.lines) {
            const colon = line.indexOf(': ');
            if (line.startsWith(':') || colon < 0) continue;
            event[line.slice(0, colon)] = line.slice(colon + 2);
          }
          if (event.data !== undefined) events.push(event);
        }
        if (events.length >= count) {
          clearTimeout(timer);
          resolve({ response, events });
          request.destroy();
        }
      });
    });
    request.end();
  });
}

export async function replayProgress({ live, down, tokens, staffExam, otherExam }) {
  const asStaff = bearer(tokens.staff);
  const progressOf = (exam) => `/exams/${exam}/progress`;
  const validators = progressValidators();

  {
    const name = `GET ${progressOf(staffExam)}  the first events validate (direct)`;
    const problems = [];
    let status = 0;
    try {
      const { response, events } = await firstEvents(live.server, progressOf(staffExam), asStaff, 2);
      tally.direct += 1;
      status = response.statusCode;
      if (status !== 200) problems.push(`expected status 200`);
      if (response.headers['content-type'] !== 'text/event-stream; charset=utf-8') {
        problems.push(`Content-Type "${response.headers['content-type']}"`);
      }
      if (response.headers['cache-control'] !== 'no-store') problems.push('not Cache-Control: no-store');
      if (response.headers['x-accel-buffering'] !== 'no') problems.push('not X-Accel-Buffering: no');
      const [first, second] = events;
      if (first.lines[0] !== `retry: ${first.retry}` || !/^[0-9]+$/.test(first.retry ?? '')) {
        problems.push(`the first event does not start with retry: ${first.lines[0]}`);
      }
      if (second.retry !== undefined) problems.push('a later event has a retry field');
      for (const [event, kind] of [[first, 'snapshot'], [second, 'changes']]) {
        if (event.event !== kind) problems.push(`event "${event.event}", not ${kind}`);
        if (!/^[A-Za-z0-9]+-[0-9]+$/.test(event.id ?? '')) problems.push(`id "${event.id}"`);
        const data = JSON.parse(event.data);
        const validate = validators[kind];
        if (!validate(data)) problems.push(`${kind}: ${JSON.stringify(validate.errors)}`);
      }
    } catch (error) {
      problems.push(String(error));
    }
    report(problems.length === 0, name, status, problems);
  }

  await exchange('progress, Accept rules out text/event-stream', live,
    GET(progressOf(staffExam), { ...asStaff, Accept: 'application/json' }), valid(406));
  await exchange('progress by a student', live, GET(progressOf(staffExam), bearer(tokens.student)),
    valid(403));
  await exchange('progress by staff of another exam', live, GET(progressOf(otherExam), asStaff),
    valid(404));
  await exchange('progress of an exam that does not exist', live,
    GET(progressOf('9223372036854775807'), asStaff), valid(404));
  await exchange('progress without a token', live, GET(progressOf(staffExam)),
    invalid(401, challenge('missing')));
  await exchange('progress without a database', down, GET(progressOf(staffExam), asStaff),
    valid(503, retryAfter));
}
