// The rotation protocol end to end, in Debian's Chromium: the demo page saves through the
// reference client to an attempts-server that knows nothing but its identity provider's issuer
// (npm's oidc-provider, tests/oidc/provider.mjs), while the provider rotates its signing keys
// under the page: a new kid beside the old one, a new kid alone, a new key under the same kid.
// Each time the page is handed the provider's new token (as a page refreshes its token), the
// server answers its first request 401 with Retry-After while it fetches the new keys, and the
// client's one retry after it is stored: the student never sees "session expired".
// docs/auth.md, "Rotation at the provider"; clients/js/README.md, rule 6.
//
// Environment: as exam_page.test.mjs (scripts/browser-test.sh sets it).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { serveStatic } from '../../clients/js/demo/serve.mjs';
import {
  ApiReader, ApiServer, attemptOf, eventually, figure, IdentityProvider, launchChromium,
  openExamPage, recordStatuses, repo, required, showsStatus, sleep,
} from './support.mjs';

const databaseUrl = required('ATTEMPTS_TEST_DATABASE_URL');

let tmp;
let provider;
let server;
let api;
let pageOrigin;
let staticServer;
let browser;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attempts-browser-keys-'));
  provider = new IdentityProvider();
  const issuer = await provider.start(path.join(tmp, 'provider.log'));
  staticServer = await serveStatic(path.join(repo, 'clients/js'), '127.0.0.1', 0);
  pageOrigin = `http://127.0.0.1:${staticServer.address().port}`;
  server = new ApiServer(
    [
      '--database-url', databaseUrl,
      '--jwt-issuer', issuer, // the keys come from its discovery document
      '--jwt-audience', 'urn:attempts',
      '--jwt-student-claim', 'student_id',
      '--jwks-min-refresh', '1', // each rotation below is fetched as soon as a token asks
      '--cors-origin', pageOrigin,
      '--access-log',
    ],
    path.join(tmp, 'server.log'),
  );
  api = `http://127.0.0.1:${await server.start()}`;
  browser = await launchChromium();
  console.log(`browser-test: page ${pageOrigin}, API ${api}, identity provider ${issuer}`);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await provider?.stop();
  staticServer?.close();
  const report = server?.sanitizerReport();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  assert.equal(report ?? null, null, `sanitizer report in the server's log:\n${report}`);
});

test('the provider rotates its keys while a page saves: every answer is stored, no session ends',
  { timeout: 180000 }, async () => {
    const studentId = 23; // the provider's client student-23
    const student = { id: studentId, token: await provider.token(studentId) };
    const reader = new ApiReader(api);
    const { context, page } = await openExamPage(browser, { pageOrigin, api, student });
    const attemptId = await attemptOf(page);
    await recordStatuses(page);
    await page.click('#q1-o1');
    await reader.storedAs(attemptId, student.token, { 1: [1] });

    const rotations = [{}, { only: true }, { sameKid: true }];
    const answers = { 1: [1] };
    for (const [round, rotation] of rotations.entries()) {
      await sleep(1100); // past --jwks-min-refresh since the last fetch
      await provider.rotate(rotation);
      const token = await provider.token(studentId);
      await page.evaluate((fresh) => window.demo.setToken(fresh), token);
      const mark = server.mark();
      const question = round + 2;
      await page.click(`#q${question}-o2`);
      answers[question] = [2];
      // Nothing else sends the new token first: the page's own request meets the rotation.
      const saves = () => server.requestsSince(mark)
        .filter(([method, url]) => method === 'PATCH' && url === `/attempts/${attemptId}`)
        .map(([, , code]) => code);
      await eventually('a save stored', async () => saves().includes('204'));
      figure(`rotation_${round + 1}_patches`, saves().join(' '));
      // The first request with the new key is refused while the key is fetched, and the retry
      // it was told to make is stored.
      assert.deepEqual(saves(), ['401', '204'], `rotation ${JSON.stringify(rotation)}`);
      await reader.storedAs(attemptId, token, answers);
      await showsStatus(page, 'saved');
    }
    const statuses = await page.evaluate(() => window.statuses);
    assert.ok(!statuses.includes('unauthorized'), `statuses: ${statuses}`);
    const fetched = (await provider.stats()).jwks_requests;
    figure('provider_jwks_requests', fetched);
    await context.close();
  });
