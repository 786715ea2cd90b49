#!/usr/bin/env bash
# Installs the npm packages a folder's package-lock.json pins (e2e/, templates/) into
# its node_modules: Node.js and npm from Debian's packages when missing, and `npm ci`
# only when the lock file changed since the last install.
#   scripts/node-packages.sh DIR
set -euo pipefail
DIR="$1"
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "node-packages: installing ${missing[*]}" >&2
  apt-get update -q >&2
  apt-get install -y -q "${missing[@]}" >&2
fi

stamp="$DIR/node_modules/.installed-lock"
if ! cmp -s "$DIR/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$DIR" && npm ci --no-audit --no-fund >&2)
  cp "$DIR/package-lock.json" "$stamp"
fi
