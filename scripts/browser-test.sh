#!/usr/bin/env bash
# The real-browser test (ctest label `browser`): Debian's Chromium, driven by playwright-core,
# uses the demo exam page (clients/js/demo) served on one loopback origin; the page saves
# through the reference client (clients/js/attempts-client.js) to a real attempts-server on
# another origin, against the PostgreSQL that scripts/test.sh provides. The scenarios are in
# tests/browser/exam_page.test.mjs, and in tests/browser/key_rotation.test.mjs with the server's
# keys from the test identity provider (tests/oidc/provider.mjs) rotating them; the teacher
# page's (a staff member downloads an exam's CSV) in tests/browser/teacher_page.test.mjs; the
# proctor page's (an exam's attempts live, through the progress stream) in
# tests/browser/proctor_page.test.mjs.
#
#   scripts/test.sh -L browser
# By hand, against a database loaded with sql/schema.sql and sql/seed.sql:
#   ATTEMPTS_TEST_DATABASE_URL=postgresql://... scripts/browser-test.sh [--server BIN] [--token-tool BIN]
# (default: the binaries of build/${PRESET:-debug}).
#
# Installs what is missing: Debian's chromium (scripts/install-deps.sh, apt-get) and the npm
# tools pinned in package-lock.json (scripts/install-node-tools.sh). Playwright never downloads
# a browser: it is given /usr/bin/chromium. Everything listens on 127.0.0.1; the test stops only
# the processes it started, by their pid, and every wait in it is bounded.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/under-test.sh
source scripts/lib/under-test.sh
under_test_init browser-test browser "$@"

chromium=/usr/bin/chromium
if [[ ! -x $chromium ]]; then
  say "installing Debian's chromium"
  bash scripts/install-deps.sh chromium
fi
bash scripts/install-node-tools.sh
say "$("$chromium" --version 2>/dev/null || echo chromium), playwright-core $(node -p 'require("playwright-core/package.json").version')"

# Node's test runner prints each scenario and a summary; the figures come as
# "[  FIGURE  ] name = value" lines. One file at a time: each starts its own server and browser
# on a 2-core machine.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
  BROWSER_TEST_SERVER=$server \
  BROWSER_TEST_TOKEN_TOOL=$token_tool \
  CHROMIUM=$chromium \
  timeout --kill-after=10 600 node --test-reporter=spec --test-concurrency=1 \
  --test tests/browser/exam_page.test.mjs tests/browser/key_rotation.test.mjs \
  tests/browser/teacher_page.test.mjs tests/browser/proctor_page.test.mjs
