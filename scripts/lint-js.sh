#!/usr/bin/env bash
# Checks the pages' scripts (templates/assets/*.js) with ESLint, pinned in
# templates/package-lock.json and installed into templates/node_modules on first use
# (again only when the lock file changes). Node.js and npm come from Debian's packages
# when missing.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "lint-js: installing ${missing[*]}" >&2
  apt-get update -q >&2
  apt-get install -y -q "${missing[@]}" >&2
fi

cd "$REPO/templates"
stamp=node_modules/.installed-lock
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  npm ci --no-audit --no-fund >&2
  cp package-lock.json "$stamp"
fi
npx --no-install eslint --max-warnings 0 assets
echo "lint-js: templates/assets/*.js clean"
