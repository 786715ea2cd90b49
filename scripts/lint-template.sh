#!/usr/bin/env bash
# Lints the SAM template with cfn-lint and `sam validate --lint`, both from PyPI in a
# venv of their own (their pins clash with moto's), with the rest of the deploy tools
# (scripts/sam-requirements.txt). Zero findings or it fails.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/.venv-sam"

if [ ! -x "$VENV/bin/sam" ] || [ ! -x "$VENV/bin/cfn-lint" ] || [ ! -x "$VENV/bin/cargo-lambda" ]; then
  echo "template: installing the pinned deploy tools (scripts/sam-requirements.txt) into .venv-sam" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/scripts/sam-requirements.txt" >&2
fi

cd "$REPO"
"$VENV/bin/cfn-lint" template.yaml
# sam validates offline with --lint; it only wants a region and some credentials.
AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=lint AWS_SECRET_ACCESS_KEY=lint \
  SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" validate --lint -t template.yaml >&2
for f in events/*.json env.json; do python3 -m json.tool "$f" >/dev/null; done
echo "template: cfn-lint and sam validate --lint clean" >&2
