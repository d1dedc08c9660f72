// A small static file server for the demo exam page (clients/js): GET and HEAD of files under
// one folder, nothing else. Node 18 or later, no packages. scripts/run.sh serves the page with it
// beside the API, and the browser test (tests/browser) serves it on two origins.
//
//   node clients/js/demo/serve.mjs [--root DIR] [--listen HOST:PORT ...]
//
// --root defaults to clients/js (so /demo/ is the page and /attempts-client.js the client);
// --listen defaults to 127.0.0.1:18700 and may be repeated; port 0 picks a free one. Prints one
// line per address: "serving DIR on http://HOST:PORT".
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

function answer(response, status, text) {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  response.end(`${text}\n`);
}

// Starts serving `root` on host:port; resolves with the http.Server once it listens.
export function serveStatic(root, host, port) {
  const base = path.resolve(root);
  const server = http.createServer(async (request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD');
      return answer(response, 405, 'method not allowed');
    }
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(request.url, 'http://x').pathname);
    } catch {
      return answer(response, 400, 'bad path');
    }
    let file = path.resolve(base, `.${pathname}`);
    if (file !== base && !file.startsWith(base + path.sep)) return answer(response, 404, 'not found');
    try {
      let info = await stat(file);
      if (info.isDirectory()) {
        if (!pathname.endsWith('/')) {
          response.writeHead(301, { Location: `${pathname}/` });
          return response.end();
        }
        file = path.join(file, 'index.html');
        info = await stat(file);
      }
      response.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'Content-Length': info.size,
        'Cache-Control': 'no-store',
      });
      if (request.method === 'HEAD') return response.end();
      createReadStream(file).pipe(response);
    } catch {
      answer(response, 404, 'not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const addresses = [];
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === '--root' && args[i + 1]) root = args[i + 1];
    else if (args[i] === '--listen' && args[i + 1]) addresses.push(args[i + 1]);
    else {
      console.error('usage: serve.mjs [--root DIR] [--listen HOST:PORT ...]');
      process.exit(2);
    }
  }
  if (addresses.length === 0) addresses.push('127.0.0.1:18700');
  for (const address of addresses) {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    const server = await serveStatic(root, host, Number(address.slice(colon + 1)));
    const { port } = server.address();
    console.log(`serving ${root} on http://${host.includes(':') ? `[${host}]` : host}:${port}`);
  }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
}
