#!/usr/bin/env bash
# What the API fuzz test needs: schemathesis, pinned, in a venv of its own (.venv-api;
# its pins clash with moto's and with the SAM CLI's). Reused once installed.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/.venv-api"
VERSION=4.32.5

if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$VERSION" ]; then
  echo "api: installing schemathesis $VERSION into .venv-api" >&2
  python3 -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -q >&2; apt-get install -y -q python3-venv >&2; }
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
echo "api: schemathesis $VERSION" >&2
