#!/usr/bin/env bash
# npm packages of the JavaScript client test (tests/js: matrix-js-sdk), installed
# exactly as locked by tests/js/package-lock.json. Without Node.js the test that
# needs them skips with a reason, so a missing node is not an error here.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
js="$here/tests/js"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "js-deps: node/npm not found; the matrix-js-sdk test will be skipped" >&2
  exit 0
fi
stamp="$js/node_modules/.installed-$(sha256sum "$js/package-lock.json" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "js-deps: installing tests/js packages (npm ci)" >&2
  npm ci --prefix "$js" --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi
