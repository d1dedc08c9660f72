#!/usr/bin/env bash
# Installs the npm tools of package.json into node_modules/ with `npm ci`, exactly as
# package-lock.json pins them: Redocly CLI and Stoplight Prism, which check the API contract
# docs/openapi.yaml, and playwright-core, which drives Debian's Chromium in the browser test
# (it never downloads a browser of its own). Node.js and npm come from Debian
# (scripts/install-deps.sh) when `node` is missing; a node already installed is used as it is
# (Node 20 or later: playwright-core needs it).
# Idempotent: when node_modules/ was installed from the same package.json, package-lock.json and
# .npmrc, nothing is done.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if ! command -v node >/dev/null 2>&1; then
  bash scripts/install-deps.sh nodejs npm
elif ! command -v npm >/dev/null 2>&1; then
  bash scripts/install-deps.sh npm
fi

stamp=node_modules/.attempts-installed-from
wanted=$(cat package.json package-lock.json .npmrc | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(<"$stamp") == "$wanted" && -x node_modules/.bin/redocly &&
  -x node_modules/.bin/prism && -f node_modules/playwright-core/package.json &&
  -f node_modules/oidc-provider/package.json ]]; then
  echo "install-node-tools: node_modules is up to date"
  exit 0
fi

echo "install-node-tools: npm ci (node $(node --version), npm $(npm --version))"
timeout 600 npm ci --no-audit --no-fund --loglevel=warn
printf '%s\n' "$wanted" >"$stamp"
