#!/usr/bin/env bash
# What the abuse defences cost the honest crowd: the same stampedes against this
# checkout's local stack and against BASELINE_REV's (28df735, the commit before them),
# both built with the `bench` profile and running side by side on this machine, each on
# its own port, MySQL database, Redis database, queues, tables and bucket. Each round
# sends every scenario to both stacks, one after the other, the order alternating from
# round to round (old first in odd rounds), each on a new sale of STOCK units; a
# stack's orders are all in MySQL before the next run starts. The same client binary
# (this checkout's `flashsale-local load`, and wrk) drives both stacks. Scenarios:
#   - purchases without a waiting room, from `flashsale-local load`: REQUESTS requests
#     of SHOPPERS shoppers;
#   - the same from wrk for WRK_SECS seconds, each request a random one of SHOPPERS
#     shoppers' tokens;
#   - purchases through a waiting room: ROOM_SHOPPERS shoppers, each fetching a
#     challenge, solving it (difficulty 1,000, the least a room takes: the solving is
#     the client's CPU, not the stack's), joining, taking a pass and buying with it; the
#     room lets 100,000 a second through, so it meters nobody and the figures are the
#     stack's cost of the four calls.
# Prints a markdown section (medians of ROUNDS, ratios this commit / BASELINE_REV, and
# the lowest and highest of the rounds' own ratios, a measure of the noise).
#
#   scripts/bench-compare.sh   # BASELINE_REV=28df735 ROUNDS=5 REQUESTS=30000 SHOPPERS=20000
#                              # ROOM_SHOPPERS=5000 STOCK=1000 CONNECTIONS=100 WRK_SECS=10
# The baseline is checked out in a git worktree at BASELINE_DIR (default: bench-baseline
# beside this checkout), built into the same target dir (CARGO_TARGET_DIR, else
# target/; the registry's crates are built once, with the whole workspace's features, as
# scripts/bench.sh builds them, so nothing it built is built again; only the
# flashsale-local binary, the one the comparison runs) and removed afterwards. NEW_BIN and
# BASELINE_BIN name flashsale-local binaries built already (bench profile, of this
# checkout and of BASELINE_REV) and skip the builds; NEW_LABEL names the first (default:
# the short commit of HEAD).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
BASELINE_REV=${BASELINE_REV:-28df735}
ROUNDS=${ROUNDS:-5} REQUESTS=${REQUESTS:-30000} SHOPPERS=${SHOPPERS:-20000}
ROOM_SHOPPERS=${ROOM_SHOPPERS:-5000} STOCK=${STOCK:-1000} CONNECTIONS=${CONNECTIONS:-100}
WRK_SECS=${WRK_SECS:-10}
BASELINE_DIR=${BASELINE_DIR:-$(dirname "$REPO")/bench-baseline}
WORK="$REPO/.local/bench-compare"
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
export CARGO_TARGET_DIR="$TARGET"
mkdir -p "$WORK"
BASE_SHORT=$(git rev-parse --short "$BASELINE_REV^{commit}")
HEAD_SHORT=${NEW_LABEL:-$(git rev-parse --short HEAD)}

scripts/services.sh up >&2
eval "$(scripts/services.sh env)"
command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; } >&2

# Both builds, each binary copied out: the two share the target dir's release/.
if [ -n "${NEW_BIN:-}" ] && [ -n "${BASELINE_BIN:-}" ]; then
  cp "$NEW_BIN" "$WORK/flashsale-local-new"; cp "$BASELINE_BIN" "$WORK/flashsale-local-old"
else
  echo "building this checkout and $BASE_SHORT (bench profile)" >&2
  cargo build -q --profile bench --workspace --bin flashsale-local >&2
  cp "$TARGET/release/flashsale-local" "$WORK/flashsale-local-new"
  # A worktree left at the same commit (a run stopped halfway) is built again as it is.
  if [ "$(git -C "$BASELINE_DIR" rev-parse HEAD 2>/dev/null)" != "$(git rev-parse "$BASELINE_REV^{commit}")" ]; then
    if [ -e "$BASELINE_DIR" ]; then git worktree remove --force "$BASELINE_DIR"; fi
    git worktree add -q --detach "$BASELINE_DIR" "$BASELINE_REV" >&2
  fi
  (cd "$BASELINE_DIR" && cargo build -q --profile bench --workspace --bin flashsale-local) >&2
  cp "$TARGET/release/flashsale-local" "$WORK/flashsale-local-old"
  cmp -s "$WORK/flashsale-local-old" "$WORK/flashsale-local-new" \
    && { echo "the build of $BASE_SHORT left this checkout's flashsale-local in $TARGET/release" >&2; exit 1; }
  git worktree remove --force "$BASELINE_DIR"
  # Put this checkout's binary back where the other scripts look for it.
  cargo build -q --profile bench --workspace --bin flashsale-local >&2
fi
"$WORK/flashsale-local-new" load --help | grep -q -- --waiting-room \
  || { echo "$WORK/flashsale-local-new has no load --waiting-room: not this checkout's" >&2; exit 1; }

STAMP=$(date +%s)
export FLASHSALE_DEV_JWT_SECRET="bench-secret-$STAMP"
# Throttling out of the way: this measures the system, not the limiter.
export FLASHSALE_LOCAL_RATE=1000000000 FLASHSALE_LOCAL_BURST=1000000 \
  FLASHSALE_LOCAL_PURCHASE_RATE=1000000000 FLASHSALE_LOCAL_PURCHASE_BURST=1000000 \
  FLASHSALE_LOCAL_QUEUE_RATE=1000000000 FLASHSALE_LOCAL_QUEUE_BURST=1000000 \
  FLASHSALE_LOCAL_PASS_RATE=1000000000 FLASHSALE_LOCAL_PASS_BURST=1000000 \
  FLASHSALE_LOCAL_CONSUMERS=4 RUST_LOG=warn \
  FLASHSALE_LOCAL_RECONCILE_SECS=5 FLASHSALE_OUTBOX_RESEND_AFTER_SECS=5
declare -A PORT=([old]=3122 [new]=3121) DB=([old]=4 [new]=3)
STACKS=()
trap 'kill "${STACKS[@]}" 2>/dev/null || true' EXIT
for v in old new; do
  mysql -h127.0.0.1 -uflashsale -pflashsale -e "DROP DATABASE IF EXISTS flashsale_bench_$v; CREATE DATABASE flashsale_bench_$v"
  redis-cli -n "${DB[$v]}" FLUSHDB >/dev/null
  # Each stack migrates its own database at start. The pending-orders table under its
  # name and its older one, which the baseline reads.
  FLASHSALE_LOCAL_ADDR="127.0.0.1:${PORT[$v]}" \
    FLASHSALE_DATABASE_URL="mysql://flashsale:flashsale@127.0.0.1:3306/flashsale_bench_$v" \
    FLASHSALE_REDIS_URL="redis://127.0.0.1:6379/${DB[$v]}" \
    FLASHSALE_LOCAL_QUEUE_PREFIX="compare-$v-$STAMP-" \
    FLASHSALE_BUCKET="flashsale-compare-$v-pages" \
    FLASHSALE_LEASE_TABLE="flashsale-compare-$v-$STAMP-id-leases" \
    FLASHSALE_PENDING_ORDERS_TABLE="flashsale-compare-$v-$STAMP-pending-orders" \
    FLASHSALE_FALLBACK_TABLE="flashsale-compare-$v-$STAMP-pending-orders" \
    "$WORK/flashsale-local-$v" serve > "$WORK/stack-$v.log" 2>&1 &
  STACKS+=($!)
done
for v in old new; do
  for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/"${PORT[$v]}") 2>/dev/null && break; sleep 0.5; done
done

LOAD="$WORK/flashsale-local-new"
"$LOAD" token --user wrk --count "$SHOPPERS" --ttl-secs 7200 > "$WORK/tokens.txt"
ADMIN=$("$LOAD" token --user bench-admin --admin --ttl-secs 7200)
cat > "$WORK/buy.lua" <<LUA
local tokens = {}
for line in io.lines("$WORK/tokens.txt") do tokens[#tokens + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
wrk.method = "POST"
wrk.body = '{"quantity":1}'
request = function()
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)], ["Content-Type"] = "application/json"})
end
LUA
json() { python3 -c "import json,sys; d=json.load(open('$1')); print(eval(sys.argv[1]))" "$2"; }
# wrk's requests/s, p50 and p99 (ms) from its --latency report.
wrk_figures() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
ms = lambda v, u: float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", text, re.M)}
print(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1), round(pct["50"], 2), round(pct["99"], 2))
PY
}
# Until MySQL holds every order of the sale the outbox held (at most 5 minutes).
settle() {
  local url="http://127.0.0.1:${PORT[$1]}/api/admin/sales/$2/report"
  for _ in $(seq 600); do
    [ "$(curl -s -H "Authorization: Bearer $ADMIN" "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("pending_orders"))' 2>/dev/null)" = 0 ] && return 0
    sleep 0.5
  done
  echo "$1: sale $2 still had orders outside MySQL after 5 minutes" | tee -a "$WORK/unsettled.txt" >&2
}
# One figure of one run: record <stack> <scenario.figure> <value>.
record() { echo "$3" >> "$WORK/$1-$2.txt"; }

rm -f "$WORK"/old-*.txt "$WORK"/new-*.txt "$WORK/unsettled.txt"
for round in $(seq "$ROUNDS"); do
  order="old new"; [ $((round % 2)) -eq 0 ] && order="new old"
  for v in $order; do
    echo "round $round/$ROUNDS, $v: purchases (load)" >&2
    "$LOAD" load --base-url "http://127.0.0.1:${PORT[$v]}" --stock "$STOCK" --requests "$REQUESTS" \
      --shoppers "$SHOPPERS" --concurrency "$CONNECTIONS" --retry-429 --no-audit --json "$WORK/load.json" > /dev/null
    record "$v" load.rps "$(json "$WORK/load.json" "d['load']['requests_per_sec']")"
    record "$v" load.p50 "$(json "$WORK/load.json" "d['load']['latency']['p50_ms']")"
    record "$v" load.p99 "$(json "$WORK/load.json" "d['load']['latency']['p99_ms']")"
    record "$v" load.admitted_p50 "$(json "$WORK/load.json" "d['load']['latency_by_outcome']['admitted']['p50_ms']")"
    record "$v" load.sold_out_p99 "$(json "$WORK/load.json" "d['load']['latency_by_outcome']['sold_out']['p99_ms']")"
    record "$v" load.persisted "$(json "$WORK/load.json" "d['load']['persisted_after_secs'] or 'nan'")"
  done
  for v in $order; do
    echo "round $round/$ROUNDS, $v: purchases (wrk)" >&2
    "$LOAD" load --base-url "http://127.0.0.1:${PORT[$v]}" --stock "$((STOCK + 1))" --requests 1 --shoppers 1 \
      --concurrency 1 --no-audit --json "$WORK/wrk-sale.json" > /dev/null
    sale=$(json "$WORK/wrk-sale.json" "d['load']['sale_id']")
    wrk -t2 -c"$CONNECTIONS" -d"${WRK_SECS}s" --latency -s "$WORK/buy.lua" \
      "http://127.0.0.1:${PORT[$v]}/api/sales/$sale/purchase" > "$WORK/wrk.txt"
    read -r rps p50 p99 < <(wrk_figures "$WORK/wrk.txt")
    record "$v" wrk.rps "$rps"; record "$v" wrk.p50 "$p50"; record "$v" wrk.p99 "$p99"
    settle "$v" "$sale"
  done
  for v in $order; do
    echo "round $round/$ROUNDS, $v: through a waiting room (load)" >&2
    "$LOAD" load --base-url "http://127.0.0.1:${PORT[$v]}" --stock "$STOCK" --waiting-room \
      --requests "$ROOM_SHOPPERS" --shoppers "$ROOM_SHOPPERS" --concurrency "$CONNECTIONS" --retry-429 --no-audit \
      --json "$WORK/room.json" > /dev/null
    record "$v" room.rps "$(json "$WORK/room.json" "d['load']['requests_per_sec']")"
    record "$v" room.p50 "$(json "$WORK/room.json" "d['load']['latency']['p50_ms']")"
    record "$v" room.p99 "$(json "$WORK/room.json" "d['load']['latency']['p99_ms']")"
    for step in challenge join pass purchase; do
      record "$v" "room.$step" "$(json "$WORK/room.json" "d['load']['steps']['$step']['p50_ms']")"
    done
    record "$v" room.admitted "$(json "$WORK/room.json" "d['load']['admitted']")"
  done
done

python3 - "$WORK" "$BASE_SHORT" "$HEAD_SHORT" <<'PY'
import math, statistics, sys
work, base, head = sys.argv[1:]
def runs(v, f):
    return [float(x) for x in open(f"{work}/{v}-{f}.txt").read().split()]
rows = [
    ("purchases, no waiting room (load)", [
        ("load.rps", "requests/s", True), ("load.p50", "p50 (ms)", False), ("load.p99", "p99 (ms)", False),
        ("load.admitted_p50", "admitted, p50 (ms)", False), ("load.sold_out_p99", "sold out, p99 (ms)", False),
        ("load.persisted", "all orders in MySQL after (s)", False)]),
    ("purchases, no waiting room (wrk)", [
        ("wrk.rps", "requests/s", True), ("wrk.p50", "p50 (ms)", False), ("wrk.p99", "p99 (ms)", False)]),
    ("through a waiting room (load)", [
        ("room.rps", "shoppers/s (challenge, join, pass, purchase)", True), ("room.p50", "a shopper's way in, p50 (ms)", False),
        ("room.p99", "a shopper's way in, p99 (ms)", False), ("room.challenge", "challenge, p50 (ms)", False),
        ("room.join", "join, p50 (ms)", False), ("room.pass", "pass, p50 (ms)", False),
        ("room.purchase", "purchase with the pass, p50 (ms)", False), ("room.admitted", "admitted", True)]),
]
fmt = lambda x: f"{x:.0f}" if x >= 100 else f"{x:.2f}"
print(f"| scenario | figure | `{base}` (before) | `{head}` (this commit) | ratio | rounds' ratios |")
print("|---|---|---:|---:|---:|---:|")
for scenario, figures in rows:
    for i, (f, label, higher_better) in enumerate(figures):
        old, new = runs("old", f), runs("new", f)
        pairs = [(o, n) for o, n in zip(old, new) if not (math.isnan(o) or math.isnan(n))]
        if not pairs:
            print(f"| {scenario if i == 0 else ''} | {label} | n/a | n/a | | |")
            continue
        mo, mn = statistics.median(o for o, _ in pairs), statistics.median(n for _, n in pairs)
        each = sorted(n / o for o, n in pairs if o)
        spread = f"{each[0]:.2f}-{each[-1]:.2f}" if each else ""
        print(f"| {scenario if i == 0 else ''} | {label} | {fmt(mo)} | {fmt(mn)} | {mn / mo:.2f} | {spread} |")
PY
if [ -s "$WORK/unsettled.txt" ]; then echo; echo "Not settled:"; sed 's/^/- /' "$WORK/unsettled.txt"; fi
