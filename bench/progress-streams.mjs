// The progress benchmark's proctors (scripts/bench-progress.sh): STREAMS connections to
// GET /exams/{EXAM}/progress. Each reads every byte; the first PARSED of them also parse the
// events and record, for every attempt in a `changes` event, the time it was received minus its
// updated_at (the save's time in the database: both clocks are this machine's). Runs until
// SIGTERM, then prints one line (bytes: as received, compressed when gzipped):
//   progress: streams=N open=N events=N snapshots=N bytes=N samples=N p50_ms=X p99_ms=X max_ms=X
// ENCODING=gzip (the default) asks for gzip as browsers do; ENCODING=identity does not.
import http from 'node:http';
import zlib from 'node:zlib';

const base = process.env.URL;
const exam = process.env.EXAM;
const token = process.env.TOKEN;
const streams = Number(process.env.STREAMS ?? 200);
const parsed = Number(process.env.PARSED ?? 4);
const gzip = (process.env.ENCODING ?? 'gzip') === 'gzip';
const lags = [];
let events = 0;
let snapshots = 0;
let bytes = 0;
let open = 0;
let measuring = false;
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function openStream(index) {
  const request = http.request(`${base}/exams/${exam}/progress`, {
    headers: {
      Authorization: `Bearer ${token}`,
      ...(gzip ? { 'Accept-Encoding': 'gzip, deflate, br' } : {}),
    },
    agent,
  });
  request.on('response', (response) => {
    if (response.statusCode !== 200) {
      console.error(`stream ${index}: status ${response.statusCode}`);
      response.resume();
      return;
    }
    open += 1;
    if (index >= parsed) {
      // Read and counted, never decoded: the readers cost the machine as little as they can.
      response.on('data', (piece) => {
        bytes += piece.length;
      });
      response.on('end', () => (open -= 1));
      return;
    }
    let text = '';
    response.on('data', (piece) => {
      bytes += piece.length;
    });
    let body = response;
    if (response.headers['content-encoding'] === 'gzip') {
      // Each event is decoded as soon as its bytes are in (the server flushes per event).
      body = response.pipe(zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH }));
      body.on('error', (error) => console.error(`stream ${index}: ${error.message}`));
    }
    body.setEncoding('utf8');
    body.on('data', (piece) => {
      text += piece;
      let end;
      while ((end = text.indexOf('\n\n')) !== -1) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (!data) continue;
        const now = Date.now();
        events += 1;
        if (block.includes('event: snapshot')) {
          snapshots += 1;
          continue;
        }
        if (!measuring) continue;
        for (const attempt of JSON.parse(data.slice(6)).attempts) {
          if (attempt.updated_at) lags.push(now - Date.parse(attempt.updated_at));
        }
      }
    });
    response.on('end', () => (open -= 1));
  });
  request.on('error', (error) => console.error(`stream ${index}: ${error.message}`));
  request.end();
}

for (let i = 0; i < streams; i++) openStream(i);
process.on('SIGUSR1', () => {
  measuring = true;
});
process.on('SIGTERM', () => {
  lags.sort((a, b) => a - b);
  const at = (q) => (lags.length ? lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] : -1);
  console.log(
    `progress: streams=${streams} open=${open} events=${events} snapshots=${snapshots} ` +
      `bytes=${bytes} samples=${lags.length} p50_ms=${at(0.5)} p99_ms=${at(0.99)} ` +
      `max_ms=${lags.length ? lags[lags.length - 1] : -1}`,
  );
  process.exit(0);
});
