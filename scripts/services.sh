#!/usr/bin/env bash
# Local loopback stand-ins for the AWS pieces: Redis (ElastiCache), MariaDB
# (RDS), moto (SQS/DynamoDB/S3/Secrets Manager), and localstripe for the payment
# provider (Stripe). Written for a root shell without systemd.
# Usage: scripts/services.sh up|down|status|env|test-env|reset-test
#   env        the variables of the developer's stack (`make run`)
#   test-env   the variables of the tests: a MySQL database, a Redis database, a
#              bucket, a lease table and a pending-orders table of their own, so `make run` never shows
#              what the tests left and the dev stack's reconcile never works through it
#   reset-test drop and recreate the tests' database, empty their Redis database and
#              drop their pending-orders table,
#              so every `make test` starts as a fresh machine's first run does
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
LOCAL="$REPO/.local"
VENV="$REPO/.venv"
MOTO_PID="$LOCAL/moto.pid"
PAYMENTS_PID="$LOCAL/payments.pid"
PAYMENTS_PORT=8420
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0

log() { echo "$*" >&2; }
die() { log "error: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# Fallback probe for when the service's own client is not installed yet.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

apt_install() {
  # Package lists are only refreshed when something is actually missing.
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -q >&2; APT_UPDATED=1; fi
  apt-get install -y -q "$@" >&2
}

# wait_until SECONDS WHAT CHECK...: poll CHECK once a second.
wait_until() {
  local secs=$1 what=$2 i; shift 2
  for ((i = 0; i < secs; i++)); do "$@" && return 0; sleep 1; done
  die "$what did not come up within ${secs}s (see $LOCAL/*.log)"
}

# ---- Redis -----------------------------------------------------------------
redis_up() {
  if have redis-cli; then redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
  else port_open 127.0.0.1 6379; fi
}

redis_start() {
  # The tests also start Redis servers of their own, some speaking TLS with a
  # certificate they make with openssl.
  have redis-server || apt_install redis-server
  have openssl || apt_install openssl
  if redis_up; then log "redis: reused 127.0.0.1:6379"; return; fi
  mkdir -p "$LOCAL/redis"
  # No persistence: the tests expect a throwaway cache, like a fresh ElastiCache.
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
    --appendonly no --dir "$LOCAL/redis" --logfile "$LOCAL/redis.log"
  wait_until 30 redis redis_up
  touch "$LOCAL/redis.started"
  log "redis: started 127.0.0.1:6379 (log $LOCAL/redis.log)"
}

# A replica of it, as ElastiCache keeps one: admissions wait for its acknowledgement
# (WAIT). The failover tests run Sentinel (Debian's redis-sentinel) over servers of
# their own.
replica_up() {
  have redis-cli && redis-cli -h 127.0.0.1 -p 6380 info replication 2>/dev/null | grep -q 'master_link_status:up'
}

replica_start() {
  have redis-sentinel || apt_install redis-sentinel
  # The fault schedule steps the edge's wall clock with it.
  compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || apt_install libfaketime
  if replica_up; then log "redis replica: reused 127.0.0.1:6380"; return; fi
  mkdir -p "$LOCAL/redis-replica"
  redis-cli -h 127.0.0.1 -p 6380 shutdown nosave >/dev/null 2>&1 || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6380 --save "" --appendonly no \
    --replicaof 127.0.0.1 6379 --dir "$LOCAL/redis-replica" --logfile "$LOCAL/redis-replica.log"
  wait_until 30 "redis replica" replica_up
  touch "$LOCAL/redis-replica.started"
  log "redis replica: started 127.0.0.1:6380, replica of 6379 (log $LOCAL/redis-replica.log)"
}

# ---- MariaDB ---------------------------------------------------------------
mariadb_up() {
  # mysqladmin ping exits 0 even on "access denied", i.e. it only tests liveness.
  if have mysqladmin; then mysqladmin --connect-timeout=2 -h127.0.0.1 -uroot ping >/dev/null 2>&1
  else port_open 127.0.0.1 3306; fi
}

mysql_client() { if have mariadb; then echo mariadb; else echo mysql; fi; }

# Root may be set up for unix_socket auth or for an empty TCP password; try both.
# SQL goes in via -e, not stdin, so the fallback still gets to see it.
mysql_root() {
  local c; c="$(mysql_client)"
  "$c" -uroot -e "$1" 2>/dev/null || "$c" -h127.0.0.1 -uroot -e "$1"
}

mariadb_start() {
  if mariadb_up; then
    log "mariadb: reused 127.0.0.1:3306"
  else
    [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
    # Without systemd nothing creates the socket/pid directory for us.
    install -d -o mysql -g mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] ||
      mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2
    # setsid+nohup: the server must outlive this script and its terminal.
    setsid nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 \
      >>"$LOCAL/mariadb.log" 2>&1 </dev/null &
    wait_until 60 mariadb mariadb_up
    touch "$LOCAL/mariadb.started"
    log "mariadb: started 127.0.0.1:3306 (log $LOCAL/mariadb.log)"
  fi
  have mariadb || have mysql || apt_install mariadb-client
  # Both hosts: clients on 127.0.0.1 vs. the socket match different accounts.
  # ALTER keeps the password in line with FLASHSALE_DATABASE_URL if the user
  # already existed. `flashsale%` covers per-test databases the app creates.
  mysql_root "$(cat <<'SQL'
CREATE DATABASE IF NOT EXISTS flashsale;
CREATE USER IF NOT EXISTS 'flashsale'@'localhost' IDENTIFIED BY 'flashsale';
CREATE USER IF NOT EXISTS 'flashsale'@'127.0.0.1' IDENTIFIED BY 'flashsale';
ALTER USER 'flashsale'@'localhost' IDENTIFIED BY 'flashsale';
ALTER USER 'flashsale'@'127.0.0.1' IDENTIFIED BY 'flashsale';
GRANT ALL PRIVILEGES ON `flashsale%`.* TO 'flashsale'@'localhost';
GRANT ALL PRIVILEGES ON `flashsale%`.* TO 'flashsale'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'flashsale_admin'@'localhost' IDENTIFIED BY 'flashsale_admin';
CREATE USER IF NOT EXISTS 'flashsale_admin'@'127.0.0.1' IDENTIFIED BY 'flashsale_admin';
GRANT ALL PRIVILEGES ON *.* TO 'flashsale_admin'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'flashsale_admin'@'127.0.0.1' WITH GRANT OPTION;
SQL
)"
  log "mariadb: database flashsale, user flashsale, and flashsale_admin (the master user's stand-in) ready"
}

# ---- the Python stand-ins' venv ---------------------------------------------
venv_ready() {
  [ -x "$VENV/bin/pip" ] && return
  have python3 || apt_install python3
  # Debian splits ensurepip out of python3 into python3-venv.
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  python3 -m venv "$VENV"
}

# ---- moto ------------------------------------------------------------------
moto_up() {
  if have curl; then curl -sf -o /dev/null --max-time 2 http://127.0.0.1:5000/moto-api/
  else port_open 127.0.0.1 5000; fi
}

moto_start() {
  if moto_up; then log "moto: reused 127.0.0.1:5000"; return; fi
  if [ ! -x "$VENV/bin/moto_server" ]; then
    venv_ready
    log "moto: installing moto[server] into $VENV"
    "$VENV/bin/pip" install -q 'moto[server]' >&2
  fi
  # The inner bash records its own pid before exec, so the pid file names the
  # server itself whether or not setsid had to fork. moto runs with its SQS message
  # counts remembered for a moment (see scripts/moto_server.py).
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$MOTO_PID" \
    "$VENV/bin/python" "$REPO/scripts/moto_server.py" -H 127.0.0.1 -p 5000 >"$LOCAL/moto.log" 2>&1 </dev/null &
  wait_until 60 moto moto_up
  log "moto: started 127.0.0.1:5000 (pid $(cat "$MOTO_PID"), log $LOCAL/moto.log)"
}

# ---- the payment provider --------------------------------------------------
payments_up() {
  if have curl; then curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PAYMENTS_PORT/js.stripe.com/v3/"
  else port_open 127.0.0.1 "$PAYMENTS_PORT"; fi
}

payments_start() {
  if payments_up; then log "payments: reused 127.0.0.1:$PAYMENTS_PORT"; return; fi
  venv_ready
  if ! "$VENV/bin/python" -c 'import localstripe' 2>/dev/null; then
    log "payments: installing localstripe into $VENV"
    "$VENV/bin/pip" install -q 'localstripe==1.15.10' >&2
  fi
  # localstripe with accounts and Stripe.js's card confirmation (scripts/payments_server.py).
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PAYMENTS_PID" \
    "$VENV/bin/python" "$REPO/scripts/payments_server.py" --port "$PAYMENTS_PORT" \
    >"$LOCAL/payments.log" 2>&1 </dev/null &
  wait_until 60 payments payments_up
  log "payments: localstripe started 127.0.0.1:$PAYMENTS_PORT (pid $(cat "$PAYMENTS_PID"), log $LOCAL/payments.log)"
}

# ---- commands --------------------------------------------------------------
cmd_up() { mkdir -p "$LOCAL"; redis_start; replica_start; mariadb_start; moto_start; payments_start; }

cmd_down() {
  if [ -f "$PAYMENTS_PID" ]; then
    local pid; pid="$(cat "$PAYMENTS_PID")"
    grep -q payments_server "/proc/$pid/cmdline" 2>/dev/null && kill "$pid" && log "payments: stopped (pid $pid)"
    rm -f "$PAYMENTS_PID"
  fi
  if [ -f "$MOTO_PID" ]; then
    local pid i; pid="$(cat "$MOTO_PID")"
    # Guard against a recycled pid belonging to something else.
    if grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid"
      for ((i = 0; i < 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "moto: stopped (pid $pid)"
    fi
    rm -f "$MOTO_PID"
  else
    log "moto: not started by this script, left alone"
  fi
  if [ -f "$LOCAL/redis-replica.started" ]; then
    redis-cli -h 127.0.0.1 -p 6380 shutdown nosave >/dev/null 2>&1 || true
    rm -f "$LOCAL/redis-replica.started"; log "redis replica: stopped"
  fi
  if [ -f "$LOCAL/redis.started" ]; then
    redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true
    rm -f "$LOCAL/redis.started"; log "redis: stopped"
  else
    log "redis: not started by this script, left alone"
  fi
  if [ -f "$LOCAL/mariadb.started" ]; then
    mysqladmin -uroot shutdown 2>/dev/null || mysqladmin -h127.0.0.1 -uroot shutdown
    rm -f "$LOCAL/mariadb.started"; log "mariadb: stopped"
  else
    log "mariadb: not started by this script, left alone"
  fi
}

# Exit status is non-zero if anything is down, so callers can gate on it.
cmd_status() {
  local rc=0 name
  for name in redis:6379 replica:6380 mariadb:3306 moto:5000 payments:$PAYMENTS_PORT; do
    if "${name%%:*}_up"; then log "${name%%:*}: up 127.0.0.1:${name#*:}"
    else log "${name%%:*}: down"; rc=1; fi
  done
  return "$rc"
}

TEST_DATABASE=flashsale_test
TEST_PENDING_TABLE=flashsale-test-pending-orders
# Redis database 1 belongs to scripts/bench.sh.
TEST_REDIS_DB=2

cmd_env() {
  cat <<'EOF'
export FLASHSALE_REDIS_URL=redis://127.0.0.1:6379
export FLASHSALE_REDIS_WAIT_REPLICAS=1
export FLASHSALE_DATABASE_URL=mysql://flashsale:flashsale@127.0.0.1:3306/flashsale
EOF
  aws_env
}

cmd_test_env() {
  cat <<EOF
export FLASHSALE_REDIS_URL=redis://127.0.0.1:6379/$TEST_REDIS_DB
export FLASHSALE_REDIS_WAIT_REPLICAS=1
export FLASHSALE_DATABASE_URL=mysql://flashsale:flashsale@127.0.0.1:3306/$TEST_DATABASE
export FLASHSALE_BUCKET=flashsale-test-pages
export FLASHSALE_LEASE_TABLE=flashsale-test-id-leases
export FLASHSALE_PENDING_ORDERS_TABLE=$TEST_PENDING_TABLE
EOF
  aws_env
}

cmd_reset_test() {
  mysql_root "DROP DATABASE IF EXISTS $TEST_DATABASE; CREATE DATABASE $TEST_DATABASE"
  have redis-cli || apt_install redis-tools
  redis-cli -h 127.0.0.1 -p 6379 -n "$TEST_REDIS_DB" flushdb >/dev/null
  # The pending-orders table keys orders by sale id, and sale ids start again with the
  # database: a kept order of an earlier run would join a new sale of the same id.
  # The stacks create the table again when they start.
  # moto checks no signature; 400 is "no such table", which is as good.
  local status
  have curl || apt_install curl
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:5000/ \
    -H 'X-Amz-Target: DynamoDB_20120810.DeleteTable' -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    -d "{\"TableName\": \"$TEST_PENDING_TABLE\"}")
  case "$status" in 200 | 400) ;; *) die "moto answered $status to deleting $TEST_PENDING_TABLE" ;; esac
  log "tests: database $TEST_DATABASE, Redis database $TEST_REDIS_DB and table $TEST_PENDING_TABLE are empty"
}

aws_env() {
  cat <<'EOF'
export AWS_ENDPOINT_URL=http://127.0.0.1:5000
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
export FLASHSALE_LOCAL_PAYMENTS_URL=http://127.0.0.1:8420
EOF
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  test-env) cmd_test_env ;;
  reset-test) cmd_reset_test ;;
  *) log "usage: $0 up|down|status|env|test-env|reset-test"; exit 2 ;;
esac
