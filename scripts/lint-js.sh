#!/usr/bin/env bash
# Checks the pages' scripts (templates/assets/*.js) with ESLint, pinned in
# templates/package-lock.json and installed into templates/node_modules on first use.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
"$REPO/scripts/node-packages.sh" "$REPO/templates"
cd "$REPO/templates"
npx --no-install eslint --max-warnings 0 assets
echo "lint-js: templates/assets/*.js clean"
