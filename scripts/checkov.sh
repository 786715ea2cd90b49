#!/usr/bin/env bash
# Scans template.yaml with checkov (PyPI, pinned, in a venv of its own). The findings
# the stack accepts are listed, each with its reason, in docs/deploy.md under "Security
# scan"; any other finding fails. The checks that guard credentials (no secrets in a
# function's environment, Redis AUTH, IAM database authentication) can never be
# accepted, and must have run and passed.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/.venv-checkov"
VERSION=3.3.30
REQUIRED="CKV_AWS_45 CKV_AWS_31 CKV_AWS_162"

if [ "$("$VENV/bin/checkov" --version 2>/dev/null)" != "$VERSION" ]; then
  echo "checkov: installing checkov $VERSION into .venv-checkov" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "checkov==$VERSION" >&2
fi

cd "$REPO"
accepted=$(awk '/^<!-- checkov-accepted -->/ { on = 1; next } on && /^$/ { exit } on' docs/deploy.md |
  grep -o 'CKV_AWS_[0-9]*' | sort -u)
for check in $REQUIRED; do
  if grep -qx "$check" <<<"$accepted"; then
    echo "checkov: $check guards credentials and cannot be accepted" >&2
    exit 1
  fi
done

# CKV_AWS_45 sees literals only: a dynamic reference resolves to the secret at deploy
# time and lands in the function's configuration all the same. Only the resources that
# must take a secret at creation may resolve one: the database, Redis, and CloudFront's
# origin header (the edge's value, which a distribution can hold nowhere else).
if grep -n 'resolve:secretsmanager' template.yaml | grep -vE '^[0-9]+: +(MasterUsername|MasterUserPassword|AuthToken|Passwords|HeaderValue):'; then
  echo "checkov: a secret is resolved into the template outside the database, Redis and origin-header resources (above)" >&2
  exit 1
fi

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
# checkov exits 1 on findings; the report decides.
"$VENV/bin/checkov" -f template.yaml --framework cloudformation --compact --skip-download -o json \
  --skip-check "$(paste -sd, <<<"$accepted")" >"$report" || true
python3 - "$report" $REQUIRED <<'PY'
import json, sys
report, required = json.load(open(sys.argv[1])), sys.argv[2:]
results = report.get("results") if isinstance(report, dict) else None
if results is None:
    sys.exit(f"checkov: no report ({str(report)[:300]})")
for f in results["failed_checks"]:
    print(f"checkov: {f['check_id']} {f['check_name']}: {f['resource']} (template.yaml:{f['file_line_range'][0]})", file=sys.stderr)
passed = {p["check_id"] for p in results["passed_checks"]}
missing = [c for c in required if c not in passed]
if missing:
    sys.exit(f"checkov: {', '.join(missing)} did not run and pass")
if results["failed_checks"]:
    sys.exit(f"checkov: {len(results['failed_checks'])} finding(s) not accepted in docs/deploy.md")
print(f"checkov: {len(results['passed_checks'])} checks passed, none failed; {', '.join(required)} among them", file=sys.stderr)
PY
