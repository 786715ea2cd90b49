#!/usr/bin/env bash
# What the browser test needs: Debian's Chromium (no browser download) and the e2e
# folder's npm packages (playwright-core only drives the system Chromium).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "browser: installing ${missing[*]}" >&2
  apt-get update -q >&2
  apt-get install -y -q "${missing[@]}" >&2
fi

# npm ci only when the lock file changed since the last install.
stamp="$REPO/e2e/node_modules/.installed-lock"
if ! cmp -s "$REPO/e2e/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$REPO/e2e" && npm ci --no-audit --no-fund >&2)
  cp "$REPO/e2e/package-lock.json" "$stamp"
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1), node $(node --version)" >&2
