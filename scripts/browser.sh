#!/usr/bin/env bash
# What the browser test needs: Debian's Chromium (no browser download) and the e2e
# folder's npm packages (playwright-core only drives the system Chromium).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

if [ ! -x /usr/bin/chromium ]; then
  echo "browser: installing chromium" >&2
  apt-get update -q >&2
  apt-get install -y -q chromium >&2
fi
"$REPO/scripts/node-packages.sh" "$REPO/e2e"
echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1), node $(node --version)" >&2
