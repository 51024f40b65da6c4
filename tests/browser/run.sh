#!/bin/sh
# Runs the admin page's browser test (CTest: BrowserAdminPage).
#
#   TANDEM_BINARY=build/tandem SCREENSHOT_DIR=build/artifacts tests/browser/run.sh
#
# Installs playwright-core from package-lock.json (npm ci) the first time, into
# tests/browser/node_modules (ignored by git). A missing tool is a failure, not a skip: the
# message says what to install.
set -eu

here=$(cd "$(dirname "$0")" && pwd)

missing() {
  echo "FAIL: $1" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || missing "node not found: install Node.js 20 or later (apt-get install nodejs npm)"
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || missing "Chromium not found at $chromium: run scripts/install-deps.sh (apt-get install chromium) or set CHROMIUM"
[ -n "${TANDEM_BINARY:-}" ] || missing "TANDEM_BINARY is not set: the path of the tandem binary to test"

if [ ! -d "$here/node_modules/playwright-core" ]; then
  command -v npm >/dev/null 2>&1 || missing "npm not found: install npm (apt-get install npm)"
  (cd "$here" && npm ci --no-audit --no-fund) ||
    missing "npm ci failed in $here: it needs the npm registry once, to fetch playwright-core"
fi

exec node "$here/admin_page.test.mjs"
