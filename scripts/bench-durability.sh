#!/usr/bin/env bash
# What a durable 202 costs: the same stampede against two local stacks in the same run,
# one whose admissions wait for a Redis replica's acknowledgement (`WAIT 1`, as the
# template deploys it) and one that does not (`WAIT 0`: a 202 then waits for the
# order's record in the pending-orders table instead). Each round sends the stampede to
# both, the order alternating, each on a new sale; the turned-away requests (sold out)
# should cost the same on both, since only the admitted path waits.
# Prints a markdown section (medians of ROUNDS, ratios WAIT 1 / WAIT 0) for BENCHMARKS.md.
#
#   scripts/bench-durability.sh   # ROUNDS=3 REQUESTS=50000 SHOPPERS=20000 STOCK=1000 CONNECTIONS=100
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
ROUNDS=${ROUNDS:-3} REQUESTS=${REQUESTS:-50000} SHOPPERS=${SHOPPERS:-20000}
STOCK=${STOCK:-1000} CONNECTIONS=${CONNECTIONS:-100}
WORK="$REPO/.local/bench-durability"
mkdir -p "$WORK"

scripts/services.sh up
eval "$(scripts/services.sh env)"
cargo build --profile bench -p flashsale-local --bins
BIN="$REPO/target/release"

# A database and a Redis database of the benchmark's own, emptied first.
mysql -h127.0.0.1 -uflashsale -pflashsale -e "DROP DATABASE IF EXISTS flashsale_bench; CREATE DATABASE flashsale_bench"
export FLASHSALE_DATABASE_URL=mysql://flashsale:flashsale@127.0.0.1:3306/flashsale_bench
export FLASHSALE_REDIS_URL=redis://127.0.0.1:6379/1
redis-cli -n 1 FLUSHDB >/dev/null
# Throttling out of the way: this measures the system, not the limiter.
export FLASHSALE_LOCAL_RATE=1000000000 FLASHSALE_LOCAL_BURST=1000000 \
  FLASHSALE_LOCAL_PURCHASE_RATE=1000000000 FLASHSALE_LOCAL_PURCHASE_BURST=1000000 \
  FLASHSALE_LOCAL_CONSUMERS=2 RUST_LOG=warn \
  FLASHSALE_LOCAL_RECONCILE_SECS=5 FLASHSALE_OUTBOX_RESEND_AFTER_SECS=5 \
  FLASHSALE_DEV_JWT_SECRET="bench-secret-$(date +%s)"

STACKS=()
trap 'kill "${STACKS[@]}" 2>/dev/null || true' EXIT
# One stack per setting, each with queues of its own: port 3101 waits for the replica.
for replicas in 1 0; do
  FLASHSALE_LOCAL_ADDR="127.0.0.1:310$((2 - replicas))" FLASHSALE_REDIS_WAIT_REPLICAS=$replicas \
    FLASHSALE_LOCAL_QUEUE_PREFIX="durability-$replicas-$(date +%s)-" \
    "$BIN/flashsale-local" serve > "$WORK/stack-wait-$replicas.log" 2>&1 &
  STACKS+=($!)
done
for port in 3101 3102; do
  for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.5; done
done

json() { python3 -c "import json,sys; d=json.load(open('$1')); print(eval(sys.argv[1]))" "$2"; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
FIGURES="requests_per_sec admitted.p50_ms admitted.p99_ms sold_out.p50_ms sold_out.p99_ms"
for replicas in 1 0; do for f in $FIGURES; do : > "$WORK/$replicas-$f.txt"; done; done
for round in $(seq "$ROUNDS"); do
  order="1 0"; [ $((round % 2)) -eq 0 ] && order="0 1"
  for replicas in $order; do
    echo "round $round/$ROUNDS, WAIT $replicas" >&2
    "$BIN/flashsale-local" load --base-url "http://127.0.0.1:310$((2 - replicas))" --stock "$STOCK" \
      --requests "$REQUESTS" --shoppers "$SHOPPERS" --concurrency "$CONNECTIONS" --retry-429 --no-audit \
      --json "$WORK/load.json" > /dev/null
    json "$WORK/load.json" "d['load']['requests_per_sec']" >> "$WORK/$replicas-requests_per_sec.txt"
    for outcome in admitted sold_out; do
      for p in p50_ms p99_ms; do
        json "$WORK/load.json" "d['load']['latency_by_outcome']['$outcome']['$p']" >> "$WORK/$replicas-$outcome.$p.txt"
      done
    done
  done
done

figure() { median < "$WORK/$1-$2.txt"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo "Produced by \`scripts/bench-durability.sh\` (ROUNDS=$ROUNDS REQUESTS=$REQUESTS SHOPPERS=$SHOPPERS STOCK=$STOCK"
echo "CONNECTIONS=$CONNECTIONS) on $(date -u +%Y-%m-%d), commit \`$(git rev-parse --short HEAD)\`; medians of $ROUNDS rounds."
echo
echo "| figure | WAIT 1 (as deployed) | WAIT 0 | ratio |"
echo "|---|---:|---:|---:|"
for f in $FIGURES; do
  on=$(figure 1 "$f"); off=$(figure 0 "$f")
  if [ "$f" = requests_per_sec ]; then
    echo "| requests/s | ${on%.*} | ${off%.*} | $(ratio "$on" "$off") |"
  else
    echo "| ${f/_ms/ (ms)} | $on | $off | $(ratio "$on" "$off") |"
  fi
done
