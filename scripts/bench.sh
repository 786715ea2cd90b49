#!/usr/bin/env bash
# Produces BENCHMARKS.md: the stampede against the local stack, next to two baselines
# measured in the same run on the same machine, as ratios (absolute numbers travel
# badly between machines; ratios travel better):
#   - the raw Redis rate of the same admission script (redis-benchmark, EVALSHA of
#     lua/epoch.lua and lua/admit.lua as the function loads them, with its keys and
#     arguments);
#   - a static response from nginx through the same load generator.
# The stampede runs twice per round, each audited afterwards: through the project's own
# load generator and through wrk (C, far lighter, so more of the two cores go to the
# server under test), each next to nginx under the same generator.
# Plus each function's local init time and binary size, and the benches of
# local/benches. Medians of ROUNDS runs. Then the stampedes against this commit's stack
# next to BASELINE_REV's (scripts/bench-compare.sh; BASELINE_REV= skips it).
# docs/performance.md (how the profile was taken, what it showed) is appended as is.
#
#   scripts/bench.sh            # ROUNDS=3 REQUESTS=100000 SHOPPERS=20000 STOCK=1000 CONNECTIONS=100
#                               # WRK_SECS=20 BASELINE_REV=28df735 (COMPARE_* for its settings)
# Builds go to CARGO_TARGET_DIR when set (else target/).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
DEFAULTS="ROUNDS=3 REQUESTS=100000 SHOPPERS=20000 STOCK=1000 CONNECTIONS=100 WRK_SECS=20"
ROUNDS=${ROUNDS:-3} REQUESTS=${REQUESTS:-100000} SHOPPERS=${SHOPPERS:-20000}
STOCK=${STOCK:-1000} CONNECTIONS=${CONNECTIONS:-100}
BASELINE_REV=${BASELINE_REV-28df735}
STARTED=$(date +%s)
WORK="$REPO/.local/bench"
mkdir -p "$WORK"
export DEBIAN_FRONTEND=noninteractive

scripts/services.sh up
eval "$(scripts/services.sh env)"
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then apt-get update -q && apt-get install -y -q "${missing[@]}"; fi

cargo build --profile bench --workspace --bins
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
ARM64="$("$REPO/scripts/arm64.sh" dir)"

# A database and a Redis database of the benchmark's own, emptied first: runs compare
# like with like, and nothing left by tests or a dev stack takes part.
mysql -h127.0.0.1 -uflashsale -pflashsale -e "DROP DATABASE IF EXISTS flashsale_bench; CREATE DATABASE flashsale_bench"
export FLASHSALE_DATABASE_URL=mysql://flashsale:flashsale@127.0.0.1:3306/flashsale_bench
export FLASHSALE_REDIS_URL=redis://127.0.0.1:6379/1
redis-cli -n 1 FLUSHDB >/dev/null

# The local stack with throttling out of the way: this measures the system, not the limiter.
export FLASHSALE_LOCAL_ADDR=127.0.0.1:3100 FLASHSALE_LOCAL_QUEUE_PREFIX="bench-$(date +%s)-" \
  FLASHSALE_LOCAL_RATE=1000000000 FLASHSALE_LOCAL_BURST=1000000 \
  FLASHSALE_LOCAL_PURCHASE_RATE=1000000000 FLASHSALE_LOCAL_PURCHASE_BURST=1000000 \
  FLASHSALE_LOCAL_CONSUMERS=4 RUST_LOG=warn \
  FLASHSALE_LOCAL_RECONCILE_SECS=5 FLASHSALE_OUTBOX_RESEND_AFTER_SECS=5 \
  FLASHSALE_DEV_JWT_SECRET="bench-secret-$(date +%s)"
# Under the stampede moto's SQS falls behind: sends time out, the SQS breaker opens, and
# those orders wait in the outbox until reconcile sends them again. That is the design
# working; running reconcile every 5 s instead of every minute keeps the runs short.
"$BIN/flashsale-local" serve > "$WORK/stack.log" 2>&1 &
STACK=$!
cat > "$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:3200;
    location / {
      default_type application/problem+json;
      return 409 '{"type":"/problems/sold-out","status":409,"remaining":0}';
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf"
trap 'kill $STACK 2>/dev/null; nginx -c "$WORK/nginx.conf" -s stop 2>/dev/null || true' EXIT
for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/3100) 2>/dev/null && break; sleep 0.5; done

# Init times first, while moto is idle: after the stampedes its backlog slows every
# call for minutes, and the lease write at admit's init would measure moto, not admit.
FUNCTIONS="admit shop-api admin-api persist-orders close-expired reconcile render-pages payment-webhook"
# The stack's queues and the payment provider's keys (the secret the stack made in moto):
# a function checks at init that it is given them, and those that take payments refuse
# to start without the keys.
export FLASHSALE_ORDERS_QUEUE_URL="${AWS_ENDPOINT_URL}/000000000000/${FLASHSALE_LOCAL_QUEUE_PREFIX}orders" \
  FLASHSALE_TIMEOUTS_QUEUE_URL="${AWS_ENDPOINT_URL}/000000000000/${FLASHSALE_LOCAL_QUEUE_PREFIX}order-timeouts" \
  FLASHSALE_PAYMENTS_SECRET="${FLASHSALE_LOCAL_QUEUE_PREFIX}payments"
: > "$WORK/init.txt"
for f in $FUNCTIONS; do
  for _ in $(seq "$ROUNDS"); do
    # An assignment of its own, so a bootstrap that fails its init stops the run.
    ms=$("$BIN/flashsale-local" init-time "$BIN/$f" | awk '{print $2}')
    echo "$f $ms" >> "$WORK/init.txt"
  done
done

# Each bench's report goes to OUTPUT and its build and run log to NAME.log beside it; a
# failed bench stops the run with the end of its log.
run_bench() { # NAME OUTPUT, then the arguments of cargo bench
  local name=$1 out="$WORK/$2"
  shift 2
  echo "$name benchmark" >&2
  BENCH_ROUNDS="$ROUNDS" cargo bench "$@" 2> "$WORK/$name.log" > "$out" && return
  echo "the $name benchmark failed (cargo bench $*); the end of $WORK/$name.log:" >&2
  tail -20 "$WORK/$name.log" >&2
  return 1
}
# persist-orders fed batches directly (no SQS) against MariaDB, next to the raw
# single-row INSERT rate of the same server in the same run. Before the stampedes, so
# that its build does not run while moto works off their backlog.
run_bench persistence persistence.txt --workspace --bench persistence
# What Lambda bills for admit: the handler fed its event in-process, one invocation at a
# time, next to the raw Redis round trips of the same run.
run_bench handler_cost handler.txt --workspace --bench handler_cost
# Admission throughput: the handler and raw EVALSHA of the same script, many in flight.
run_bench admission admission.txt --workspace --bench admission \
  || echo "the admission benchmark failed (cargo bench --workspace --bench admission)" >> "$WORK/admission.txt"
# The waiting room: status reads and joins through the edge next to nginx (started above)
# under the same client, and the function's CPU per proof and pass check.
BENCH_NGINX_URL=http://127.0.0.1:3200/ run_bench waiting_room waiting.txt --workspace --bench waiting_room

# wrk's shoppers: one dev token each, a random one per request.
"$BIN/flashsale-local" token --user wrk --count "$SHOPPERS" --ttl-secs 7200 > "$WORK/tokens.txt"
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
WRK_SECS=${WRK_SECS:-20}

# The raw baseline runs the script as admit does: lua/epoch.lua in front of lua/admit.lua
# (the same bytes, so the same SHA), the keys and arguments of
# flashsale::admission::admit::invocation (meta, stock, bought, orders, outbox,
# outbox_at, passes, released; user, quantity, order id, order message, pass id or ''),
# and meta stamped with the primary's epoch, without which nothing is deducted. Order
# ids are two random numbers side by side, so two requests seldom share one. In the
# benchmark's Redis database, on a key no sale has.
SHA=$(cat lua/epoch.lua lua/admit.lua | redis-cli -n 1 -x SCRIPT LOAD)
EPOCH=$(redis-cli INFO replication | tr -d '\r' | sed -n 's/^master_replid://p')
K='{sale:bench}'
KEYS=("$K:meta" "$K:stock" "$K:bought" "$K:orders" "$K:outbox" "$K:outbox_at" "$K:passes" "$K:released")
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
json() { python3 -c "import json,sys; d=json.load(open('$1')); print(eval(sys.argv[1]))" "$2"; }

: > "$WORK/audit-failures.txt"; : > "$WORK/redis.txt"; : > "$WORK/nginx.txt"; : > "$WORK/stack.txt"; : > "$WORK/p50.txt"; : > "$WORK/p99.txt"; : > "$WORK/persist.txt"
: > "$WORK/p99-sold-out.txt"; : > "$WORK/p50-admitted.txt"; : > "$WORK/p99-admitted.txt"
: > "$WORK/wrk-nginx.txt"; : > "$WORK/wrk-stack.txt"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  redis-cli -n 1 DEL "${KEYS[@]}" >/dev/null
  redis-cli -n 1 HSET "$K:meta" limit 1 starts_at_ms 0 ends_at_ms 9999999999999 epoch "$EPOCH" >/dev/null
  redis-cli -n 1 SET "$K:stock" "$STOCK" >/dev/null
  redis-benchmark -q --dbnum 1 -n "$REQUESTS" -c "$CONNECTIONS" -r "$SHOPPERS" \
    EVALSHA "$SHA" 8 "${KEYS[@]}" user:__rand_int__ 1 __rand_int____rand_int__ '{}' '' \
    2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}' >> "$WORK/redis.txt"
  # The script sold the stock: it ran to the end, not to an early refusal.
  [ "$(redis-cli -n 1 GET "$K:stock")" = 0 ] || echo "round $round: raw EVALSHA left stock $(redis-cli -n 1 GET "$K:stock") of $STOCK" | tee -a "$WORK/audit-failures.txt"

  "$BIN/flashsale-local" load --base-url http://127.0.0.1:3200 --sale 1 --requests "$REQUESTS" \
    --shoppers "$SHOPPERS" --concurrency "$CONNECTIONS" --no-audit --json "$WORK/nginx.json" > /dev/null
  json "$WORK/nginx.json" "d['load']['requests_per_sec']" >> "$WORK/nginx.txt"

  "$BIN/flashsale-local" load --base-url http://127.0.0.1:3100 --stock "$STOCK" --requests "$REQUESTS" \
    --shoppers "$SHOPPERS" --concurrency "$CONNECTIONS" --retry-429 --json "$WORK/stack.json" | tee "$WORK/stack-round-$round.txt" \
    || echo "round $round: the audit failed (see above)" | tee -a "$WORK/audit-failures.txt"
  json "$WORK/stack.json" "d['load']['requests_per_sec']" >> "$WORK/stack.txt"
  json "$WORK/stack.json" "d['load']['latency']['p50_ms']" >> "$WORK/p50.txt"
  json "$WORK/stack.json" "d['load']['latency']['p99_ms']" >> "$WORK/p99.txt"
  json "$WORK/stack.json" "d['load']['latency_by_outcome']['sold_out']['p99_ms']" >> "$WORK/p99-sold-out.txt"
  json "$WORK/stack.json" "d['load']['latency_by_outcome']['admitted']['p50_ms']" >> "$WORK/p50-admitted.txt"
  json "$WORK/stack.json" "d['load']['latency_by_outcome']['admitted']['p99_ms']" >> "$WORK/p99-admitted.txt"
  # "unsettled": not every admitted order reached MySQL within the load's settle time.
  json "$WORK/stack.json" "d['load']['persisted_after_secs'] or 'unsettled'" >> "$WORK/persist.txt"

  # The same stampede from wrk: nginx, then a new sale of the same stock on the stack.
  wrk -t2 -c"$CONNECTIONS" -d"${WRK_SECS}s" --latency http://127.0.0.1:3200/api/sales/1/purchase > "$WORK/wrk-nginx-round.txt"
  wrk_figures "$WORK/wrk-nginx-round.txt" >> "$WORK/wrk-nginx.txt"
  "$BIN/flashsale-local" load --base-url http://127.0.0.1:3100 --stock "$((STOCK + 1))" --requests 1 --shoppers 1 \
    --concurrency 1 --no-audit --json "$WORK/wrk-sale.json" > /dev/null
  WRK_SALE=$(json "$WORK/wrk-sale.json" "d['load']['sale_id']")
  wrk -t2 -c"$CONNECTIONS" -d"${WRK_SECS}s" --latency -s "$WORK/buy.lua" \
    "http://127.0.0.1:3100/api/sales/$WRK_SALE/purchase" > "$WORK/wrk-stack-round.txt"
  wrk_figures "$WORK/wrk-stack-round.txt" >> "$WORK/wrk-stack.txt"
  "$BIN/flashsale-local" audit --sale "$WRK_SALE" > "$WORK/wrk-audit-round.txt" \
    || { echo "round $round (wrk): the audit failed"; cat "$WORK/wrk-audit-round.txt"; } | tee -a "$WORK/audit-failures.txt"
done

# The comparison runs stacks of its own: this one and nginx stop first.
kill "$STACK" 2>/dev/null || true
nginx -c "$WORK/nginx.conf" -s stop 2>/dev/null || true
wait "$STACK" 2>/dev/null || true
if [ -n "$BASELINE_REV" ]; then
  echo "this commit next to $BASELINE_REV" >&2
  BASELINE_REV="$BASELINE_REV" ROUNDS="${COMPARE_ROUNDS:-5}" REQUESTS="${COMPARE_REQUESTS:-30000}" \
    SHOPPERS="$SHOPPERS" ROOM_SHOPPERS="${COMPARE_ROOM_SHOPPERS:-5000}" STOCK="$STOCK" CONNECTIONS="$CONNECTIONS" \
    WRK_SECS="${COMPARE_WRK_SECS:-10}" scripts/bench-compare.sh > "$WORK/compare.md"
fi
MINUTES=$(( ($(date +%s) - STARTED + 59) / 60 ))

REDIS=$(median < "$WORK/redis.txt"); NGINX=$(median < "$WORK/nginx.txt"); STACK_RPS=$(median < "$WORK/stack.txt")
P50=$(median < "$WORK/p50.txt"); P99=$(median < "$WORK/p99.txt")
P99_SOLD_OUT=$(median < "$WORK/p99-sold-out.txt")
P50_ADMITTED=$(median < "$WORK/p50-admitted.txt"); P99_ADMITTED=$(median < "$WORK/p99-admitted.txt")
PERSIST=$(grep -v unsettled "$WORK/persist.txt" | median || true)
UNSETTLED=$(grep -c unsettled "$WORK/persist.txt" || true)
if [ -z "$PERSIST" ]; then
  PERSISTED="In no round did every admitted order reach MySQL within the load's settle time (--settle-secs, 300 s)"
elif [ "$UNSETTLED" -gt 0 ]; then
  PERSISTED="Every admitted order was in MySQL ${PERSIST} s after the first request in the rounds where all arrived; in $UNSETTLED of $ROUNDS rounds some were still missing after the settle time (--settle-secs, 300 s)"
else
  PERSISTED="Every admitted order was in MySQL ${PERSIST} s after the first request"
fi
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
column() { awk -v c="$1" '{print $c}' "$2" | median; }
WRK_NGINX=$(column 1 "$WORK/wrk-nginx.txt"); WRK_STACK=$(column 1 "$WORK/wrk-stack.txt")

{
  echo "# Benchmarks"
  echo
  echo "Produced by \`scripts/bench.sh\` (ROUNDS=$ROUNDS REQUESTS=$REQUESTS SHOPPERS=$SHOPPERS STOCK=$STOCK"
  echo "CONNECTIONS=$CONNECTIONS) on $(date -u +%Y-%m-%d), commit \`$(git rev-parse --short HEAD)\`."
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB."
  echo "Everything ran on this one machine: the load generator, the local stack (\`bench\` profile),"
  echo "Redis, MariaDB and moto. Figures are medians of $ROUNDS runs; rerun the script to compare."
  echo "The whole run took $MINUTES minutes."
  SETTINGS="ROUNDS=$ROUNDS REQUESTS=$REQUESTS SHOPPERS=$SHOPPERS STOCK=$STOCK CONNECTIONS=$CONNECTIONS WRK_SECS=$WRK_SECS"
  if [ "$SETTINGS" != "$DEFAULTS" ]; then
    echo "This run's settings are not the script's defaults ($DEFAULTS): figures that depend on"
    echo "the number of requests or rounds are not comparable with a run at the defaults."
  fi
  echo
  echo "## The stampede against the local stack"
  echo
  echo "$REQUESTS purchase requests from $SHOPPERS shoppers on a sale of $STOCK units, $CONNECTIONS connections."
  echo
  echo "| what | requests/s | ratio to nginx | ratio to raw EVALSHA |"
  echo "|---|---:|---:|---:|"
  echo "| static response from nginx, same load generator (baseline) | ${NGINX%.*} | 1.00 | $(ratio "$NGINX" "$REDIS") |"
  echo "| raw \`EVALSHA admit.lua\` with redis-benchmark (baseline) | ${REDIS%.*} | $(ratio "$REDIS" "$NGINX") | 1.00 |"
  echo "| the local stack: gateway, JWT, admit handler, Redis script | ${STACK_RPS%.*} | $(ratio "$STACK_RPS" "$NGINX") | $(ratio "$STACK_RPS" "$REDIS") |"
  echo
  echo "Stampede latency: p50 ${P50} ms, p99 ${P99} ms; the requests answered sold out, p99 ${P99_SOLD_OUT} ms;"
  echo "the admitted, p50 ${P50_ADMITTED} ms and p99 ${P99_ADMITTED} ms (they wait for the replica's acknowledgement,"
  echo "up to \`FLASHSALE_ADMIT_DURABLE_BOUND_MS\`, else for their record in the pending-orders table). ${PERSISTED} (median; through SQS on moto and \`persist-orders\`)."
  echo "The audit of the last run:"
  echo
  echo '```'
  grep -E '^(PASS|FAIL)' "$WORK/stack-round-$ROUNDS.txt"
  echo '```'
  if [ -s "$WORK/audit-failures.txt" ]; then echo; echo "Audit failures:"; sed 's/^/- /' "$WORK/audit-failures.txt"; fi
  echo
  echo "The same stampede from wrk (2 threads, $CONNECTIONS connections, ${WRK_SECS} s; each request a random one of"
  echo "$SHOPPERS shoppers' tokens; a new sale of $STOCK units each round). wrk needs far less CPU than the"
  echo "project's generator, so more of the two cores go to the server under test: this is the"
  echo "measure the performance goal (0.6x of nginx, p99 <= 10 ms) is stated in."
  echo
  echo "| what (wrk) | requests/s | ratio to nginx | p50 | p99 |"
  echo "|---|---:|---:|---:|---:|"
  echo "| static response from nginx (baseline) | ${WRK_NGINX%.*} | 1.00 | $(column 2 "$WORK/wrk-nginx.txt") ms | $(column 3 "$WORK/wrk-nginx.txt") ms |"
  echo "| the local stack | ${WRK_STACK%.*} | $(ratio "$WRK_STACK" "$WRK_NGINX") | $(column 2 "$WORK/wrk-stack.txt") ms | $(column 3 "$WORK/wrk-stack.txt") ms |"
  echo
  if [ -s "$WORK/compare.md" ]; then
    echo "## What the abuse defences cost the honest crowd: this commit next to \`$BASELINE_REV\`"
    echo
    echo "\`scripts/bench-compare.sh\` (run by \`scripts/bench.sh\`): \`$BASELINE_REV\`, the commit before the abuse"
    echo "defences (foreign money, forged webhooks, cache keys, the lull, provider budgets,"
    echo "canonical paths, fair reconcile, money validation), and this commit, each built with the"
    echo "\`bench\` profile and serving its own local stack (its own port, MySQL database, Redis"
    echo "database, queues, tables), side by side on this machine. Every round sends each scenario to"
    echo "both, one after the other (the older first in odd rounds, the newer in even ones), each on a"
    echo "new sale of $STOCK units, with each stack's orders all in MySQL before the next run; this"
    echo "commit's \`flashsale-local load\` and wrk drive both. Throttles are out of the way. Medians"
    echo "of ${COMPARE_ROUNDS:-5} rounds; the ratio is this commit's median over the older one's, and the last"
    echo "column the lowest and highest of the rounds' own ratios, the noise of this shared machine."
    echo "Without a room: ${COMPARE_REQUESTS:-30000} requests of $SHOPPERS shoppers from \`load\`, and wrk for ${COMPARE_WRK_SECS:-10} s (2 threads,"
    echo "$CONNECTIONS connections). Through a room: ${COMPARE_ROOM_SHOPPERS:-5000} shoppers, each fetching a challenge, solving"
    echo "it (difficulty 1,000, the least a room takes: the solving is the client's CPU), joining,"
    echo "taking a pass and buying with it, $CONNECTIONS at a time; the room lets 100,000 a second through,"
    echo "so it meters nobody and the figures are the stack's cost of the four calls."
    echo
    cat "$WORK/compare.md"
    echo
  fi
  echo "## Persistence in batches"
  echo
  echo "\`cargo bench --workspace --bench persistence\`: \`persist-orders\` fed batches of one sale's orders"
  echo "directly (no SQS; close checks recorded in memory) against MariaDB and Redis, next to the raw"
  echo "single-row INSERT rate of the same server measured in the same run."
  echo
  echo '```'
  cat "$WORK/persistence.txt"
  echo '```'
  echo
  echo "## admit per invocation: what Lambda bills"
  echo
  echo "\`cargo bench --workspace --bench handler_cost\`: \`admit\`'s handler fed its API Gateway"
  echo "payload-v2 event in this process, one invocation at a time as a Lambda container takes them,"
  echo "against Redis (with its replica) and moto; wall time per invocation and CPU per invocation"
  echo "(every thread of the process, the hand-off's record and send after the answer included), next to the"
  echo "raw round trips the admitted path needs, timed the same way in the same run."
  echo
  echo '```'
  cat "$WORK/handler.txt"
  echo '```'
  echo
  echo "## Admission throughput: the handler next to raw EVALSHA"
  echo
  echo "\`cargo bench --workspace --bench admission\`: \`admit\`'s handler called in this process, many"
  echo "at a time, next to raw \`EVALSHA\` of the same script with the same keys and arguments"
  echo "(\`flashsale::admission::admit::invocation\`) on the same Redis, in the same run; the sold-out"
  echo "memo off, so every sold-out click runs the script."
  echo
  echo '```'
  cat "$WORK/admission.txt"
  echo '```'
  echo
  echo "## The waiting room"
  echo
  echo "\`cargo bench --workspace --bench waiting_room\`: the local stack in the benchmark's process,"
  echo "HTTP from the same process to the edge, to the API endpoint behind it and to nginx, in the same run;"
  echo "then the function's CPU per check on one core. The proof of work's solve time in a browser is"
  echo "printed by the browser test (\`e2e/waiting.test.mjs\`, headless Chromium, difficulty 50,000)."
  echo
  echo '```'
  cat "$WORK/waiting.txt"
  echo '```'
  echo
  cat docs/waiting-room-cost.md
  echo
  echo "## Functions: local init time and binary size"
  echo
  echo "Init time is from starting the bootstrap until it first asks the Lambda Runtime API for work"
  echo "(clients built, lease taken), measured with \`flashsale-local init-time\` on the x86_64 \`bench\`"
  echo "build. Sizes are of the arm64 release bootstraps a deploy ships (\`make arm64\`; goal <= 8 MB)."
  echo
  echo "| function | init ms (median of $ROUNDS) | arm64 bootstrap (MB) |"
  echo "|---|---:|---:|"
  for f in $FUNCTIONS; do
    ms=$(grep "^$f " "$WORK/init.txt" | awk '{print $2}' | median)
    if [ -f "$ARM64/$f" ]; then
      size=$(python3 -c "import os; print(f'{os.path.getsize(\"$ARM64/$f\")/1048576:.1f}')")
    else
      size="not built (make arm64)"
    fi
    echo "| \`$f\` | $ms | $size |"
  done
  echo
  cat docs/performance.md
} > BENCHMARKS.md
cat BENCHMARKS.md
