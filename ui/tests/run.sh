#!/usr/bin/env bash
# Runs the UI tests: unit tests of the pure modules, then the browser tests in headless
# Chromium. Installs the npm test dependencies (playwright-core; ajv, ajv-formats and
# har-schema for the HAR 1.2 schema check) when one is missing.
#   bash ui/tests/run.sh            # fixture server
#   QTAP_URL=http://localhost:10001 bash ui/tests/run.sh   # against a running daemon
# Env: CHROMIUM (default /usr/bin/chromium), SKIP_BROWSER=1 to run the unit tests only,
# SKIP_UNIT=1 to run the browser tests only.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null; then
  echo "node is required (Node 20+)" >&2
  exit 1
fi

status=0
if [[ "${SKIP_UNIT:-}" != 1 ]]; then
  echo "== unit tests (node --test tests/unit/)"
  node --test tests/unit/ || status=1
fi

if [[ "${SKIP_BROWSER:-}" == 1 ]]; then
  exit "$status"
fi

need_install=0
for dep in playwright-core ajv ajv-formats har-schema; do
  [[ -d node_modules/$dep ]] || need_install=1
done
if [[ $need_install == 1 ]]; then
  echo "== installing test dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "Chromium not found at $chromium — install it (apt-get install -y chromium) or set CHROMIUM" >&2
  exit 1
fi

echo "== browser tests (node --test tests/browser/)${QTAP_URL:+ against $QTAP_URL}"
node --test --test-concurrency=1 tests/browser/ || status=1

if [[ "$status" != 0 ]]; then
  echo "UI tests FAILED" >&2
fi
exit "$status"
