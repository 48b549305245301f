#!/usr/bin/env bash
# The web client's checks that need no browser and no server (seconds): the unit tests of
# its pure modules (e2e/unit, node --test) and the lint of the web client and the browser
# tests (eslint, e2e/eslint.config.mjs). scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x e2e/node_modules/.bin/eslint ] \
  || { echo "check-web: eslint is missing: run (cd e2e && npm ci) (scripts/install-deps.sh does)" >&2; exit 1; }
node --test --test-reporter=spec e2e/unit/
e2e/node_modules/.bin/eslint --max-warnings 0 -c e2e/eslint.config.mjs 'signaling/src/web/**/*.js' 'e2e/**/*.mjs'
echo "check-web: unit tests and lint passed"
