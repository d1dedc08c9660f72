// Test identity provider for the service's C++ integration tests.
//
// A real oidc-provider (client credentials grant, JWT access tokens for the
// resource "urn:attempts") plus a few /test/ endpoints that let a test rotate
// the signing keys and make the JWKS endpoint misbehave. The tests spawn it as
// a child process:
//
//   node tests/oidc/provider.mjs --port 0 [--host 127.0.0.1]
//        [--tls-cert FILE --tls-key FILE] [--keys-file FILE]
//
// and read the one JSON line it prints to stdout once listening:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else goes to stderr. SIGTERM/SIGINT close the server (exit 0).
//
// Clients student-1 .. student-50 (secret "secret-<n>", client_secret_basic)
// get a token with
//   POST /token  grant_type=client_credentials[&scope=attempts][&resource=urn:attempts]
// whose RS256 JWT carries iss = issuer, aud = "urn:attempts" and the numeric
// claim student_id = n.
//
// Test endpoints (answered before the provider sees the request):
//   POST /test/rotate[?only=1]       new signing key first; ?only=1 drops the old ones
//   POST /test/rotate?same_kid=1     new key material under the signing key's kid, which replaces it
//   POST /test/jwks-mode?mode=M      normal|error|garbage|huge|hang|redirect-loop|redirect-once
//   POST /test/jwks-override         the request's body (a JWKS) is what /jwks serves from now on
//                                    (mode "override"; mode=normal serves the provider's again)
//   POST /test/discovery-jwks-uri?value=URL  the discovery document names this jwks_uri
//                                    (empty: the provider's own)
//   POST /test/cache-control?value=V Cache-Control of the JWKS endpoint (empty: none)
//   GET  /test/stats                 request counters, published kids, signing kid
//   POST /test/reset-stats           zero the counters
//   GET  /test/jwks-copy             the normal JWKS (target of redirect-once)
// --keys-file FILE keeps the private JWKS across restarts (loaded if present,
// rewritten after every change).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';
import Provider, { errors } from 'oidc-provider';

// oidc-provider prints notices with console.info; stdout is for the ready line only.
console.log = console.info = (...args) => console.error(...args);

const STUDENTS = 50;
const RESOURCE = 'urn:attempts';
const SCOPE = 'attempts';
const JWKS_PATH = '/jwks';
const DISCOVERY_PATH = '/.well-known/openid-configuration';
const TOKEN_PATH = '/token';
const JWKS_MODES = ['normal', 'error', 'garbage', 'huge', 'hang', 'redirect-loop', 'redirect-once',
  'override'];
const HUGE_BYTES = 3 * 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'keys-file': { type: 'string' },
  },
});

const state = {
  keys: [], // private JWKs, the signing key first
  keySeq: 0,
  handler: null, // provider.callback() of the current Provider
  jwksMode: 'normal',
  jwksOverride: '', // what /jwks serves in mode "override"
  discoveryJwksUri: '', // '' = the provider's own jwks_uri in its discovery document
  cacheControl: '', // '' = no Cache-Control header on the JWKS endpoint
  stats: null,
};

function zeroStats() {
  state.stats = { jwks_requests: 0, jwks_copy_requests: 0, discovery_requests: 0, token_requests: 0 };
}

function newSigningKey(kid = undefined) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  state.keySeq += 1;
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: kid ?? `k${state.keySeq}-${randomBytes(6).toString('hex')}`,
    use: 'sig',
    alg: 'RS256',
  };
}

function loadOrCreateKeys(file) {
  if (!file || !existsSync(file)) return [newSigningKey()];
  const { keys } = JSON.parse(readFileSync(file, 'utf8'));
  state.keySeq = keys.length;
  return keys;
}

function saveKeys(file) {
  if (file) writeFileSync(file, `${JSON.stringify({ keys: state.keys }, null, 2)}\n`, { mode: 0o600 });
}

function studentClients() {
  return Array.from({ length: STUDENTS }, (_, i) => ({
    client_id: `student-${i + 1}`,
    client_secret: `secret-${i + 1}`,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    student_id: i + 1,
  }));
}

function resourceServerInfo(ctx, resource) {
  if (resource !== RESOURCE) throw new errors.InvalidTarget(); // only urn:attempts exists
  return {
    scope: SCOPE,
    audience: RESOURCE,
    accessTokenTTL: 600,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

function buildProvider(issuer, keys) {
  const provider = new Provider(issuer, {
    clients: studentClients(),
    jwks: { keys: keys.map((k) => ({ ...k })) },
    scopes: [SCOPE],
    routes: { jwks: JWKS_PATH, token: TOKEN_PATH },
    cookies: { keys: ['test-provider-cookie-key'] },
    ttl: { ClientCredentials: 600 },
    extraClientMetadata: { properties: ['student_id'] },
    async extraTokenClaims(ctx, token) {
      const client = ctx?.oidc?.client ?? (await provider.Client.find(token.clientId));
      return { student_id: Number(client.student_id) };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: resourceServerInfo,
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
  return provider;
}

function installKeys(issuer, keys) {
  state.keys = keys;
  state.handler = buildProvider(issuer, keys).callback();
  saveKeys(args['keys-file']);
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// Replaces whatever Cache-Control a JWKS response would carry with the configured one.
function applyCacheControl(res) {
  const writeHead = res.writeHead;
  res.writeHead = function patchedWriteHead(...rest) {
    res.removeHeader('Cache-Control');
    if (state.cacheControl) res.setHeader('Cache-Control', state.cacheControl);
    return writeHead.apply(this, rest);
  };
}

function hugeJson() {
  const head = '{"keys":[],"pad":"';
  const tail = '"}';
  return head + 'x'.repeat(HUGE_BYTES - head.length - tail.length) + tail;
}

function serveJwks(req, res) {
  applyCacheControl(res);
  switch (state.jwksMode) {
    case 'error':
      return res.writeHead(500, { 'Content-Type': 'text/plain' }).end('jwks unavailable\n');
    case 'garbage':
      return res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"keys": "not an array"');
    case 'huge':
      return res.writeHead(200, { 'Content-Type': 'application/json' }).end(hugeJson());
    case 'hang':
      return undefined; // never answer; the socket stays open
    case 'redirect-loop':
      return res.writeHead(302, { Location: JWKS_PATH }).end();
    case 'redirect-once':
      return res.writeHead(302, { Location: '/test/jwks-copy' }).end();
    case 'override':
      return res.writeHead(200, { 'Content-Type': 'application/json' }).end(state.jwksOverride);
    default:
      return state.handler(req, res);
  }
}

function rotate(issuer, query) {
  if (query.get('same_kid') === '1') {
    const key = newSigningKey(state.keys[0].kid);
    installKeys(issuer, [key, ...state.keys.slice(1)]);
    return { kid: key.kid, kids: state.keys.map((k) => k.kid) };
  }
  const key = newSigningKey();
  installKeys(issuer, query.get('only') === '1' ? [key] : [key, ...state.keys]);
  return { kid: key.kid, kids: state.keys.map((k) => k.kid) };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// The provider's discovery document with another jwks_uri.
function serveDiscovery(req, res) {
  const end = res.end;
  const chunks = [];
  res.write = (chunk) => {
    chunks.push(Buffer.from(chunk));
    return true;
  };
  res.end = function patchedEnd(chunk, ...rest) {
    if (chunk && typeof chunk !== 'function') chunks.push(Buffer.from(chunk));
    const document = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    document.jwks_uri = state.discoveryJwksUri;
    const text = JSON.stringify(document);
    res.setHeader('Content-Length', Buffer.byteLength(text));
    return end.call(this, text, ...rest.filter((r) => typeof r === 'function'));
  };
  return state.handler(req, res);
}

function handleTest(req, res, path, query, issuer) {
  const route = `${req.method} ${path}`;
  switch (route) {
    case 'POST /test/rotate':
      return sendJson(res, 200, rotate(issuer, query));
    case 'POST /test/jwks-mode': {
      const mode = query.get('mode') ?? '';
      if (!JWKS_MODES.includes(mode)) return sendJson(res, 400, { error: `unknown mode "${mode}"`, modes: JWKS_MODES });
      state.jwksMode = mode;
      return sendJson(res, 200, { mode });
    }
    case 'POST /test/jwks-override':
      return readBody(req).then((body) => {
        state.jwksOverride = body;
        state.jwksMode = 'override';
        sendJson(res, 200, { mode: state.jwksMode });
      });
    case 'POST /test/discovery-jwks-uri':
      state.discoveryJwksUri = query.get('value') ?? '';
      return sendJson(res, 200, { value: state.discoveryJwksUri });
    case 'POST /test/cache-control':
      state.cacheControl = query.get('value') ?? '';
      return sendJson(res, 200, { value: state.cacheControl });
    case 'GET /test/stats':
      return sendJson(res, 200, {
        ...state.stats,
        kids: state.keys.map((k) => k.kid),
        signing_kid: state.keys[0].kid,
      });
    case 'POST /test/reset-stats':
      zeroStats();
      return sendJson(res, 200, state.stats);
    case 'GET /test/jwks-copy':
      state.stats.jwks_copy_requests += 1;
      applyCacheControl(res);
      req.url = JWKS_PATH; // let the provider render its JWKS
      return state.handler(req, res);
    default:
      return sendJson(res, 404, { error: `no test endpoint ${route}` });
  }
}

function countRequest(path) {
  if (path === JWKS_PATH) state.stats.jwks_requests += 1;
  else if (path === DISCOVERY_PATH) state.stats.discovery_requests += 1;
  else if (path === TOKEN_PATH) state.stats.token_requests += 1;
}

function requestHandler(issuer) {
  return (req, res) => {
    const { pathname, searchParams } = new URL(req.url, 'http://localhost');
    if (pathname.startsWith('/test/')) return handleTest(req, res, pathname, searchParams, issuer);
    countRequest(pathname);
    if (pathname === JWKS_PATH) return serveJwks(req, res);
    if (pathname === DISCOVERY_PATH && state.discoveryJwksUri) return serveDiscovery(req, res);
    return state.handler(req, res);
  };
}

function createServer() {
  if (Boolean(args['tls-cert']) !== Boolean(args['tls-key'])) {
    throw new Error('--tls-cert and --tls-key go together');
  }
  if (!args['tls-cert']) return { server: http.createServer(), scheme: 'http' };
  const tls = { cert: readFileSync(args['tls-cert']), key: readFileSync(args['tls-key']) };
  return { server: https.createServer(tls), scheme: 'https' };
}

function shutdownOn(server, signal) {
  process.on(signal, () => {
    console.error(`provider: ${signal}, closing`);
    server.close(() => process.exit(0));
    server.closeAllConnections(); // includes sockets held by jwks-mode=hang
    setTimeout(() => process.exit(0), 2000).unref();
  });
}

function main() {
  const { server, scheme } = createServer();
  server.listen(Number(args.port), args.host, () => {
    const { port } = server.address();
    const host = args.host.includes(':') ? `[${args.host}]` : args.host;
    const issuer = `${scheme}://${host}:${port}`;
    zeroStats();
    installKeys(issuer, loadOrCreateKeys(args['keys-file']));
    server.on('request', requestHandler(issuer));
    process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
    console.error(`provider: listening as ${issuer}, signing kid ${state.keys[0].kid}`);
  });
  for (const signal of ['SIGTERM', 'SIGINT']) shutdownOn(server, signal);
}

main();
