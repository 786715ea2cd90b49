#!/usr/bin/env bash
# A long randomized fault schedule against the local stack (the short one runs in
# `make test`): shoppers buy while a seeded schedule applies failovers, flushes, stack
# kills, MySQL cuts, slow and refusing AWS and stopped consumers; then every promise is
# checked (local/tests/stack/nemesis.rs).
# Usage: scripts/nemesis.sh [SECONDS] [SEED]   (default 1800 s, a random seed; make test
# replays one fixed 45 s schedule)
# Writes .local/nemesis-report.txt: seed, requests, 202s, faults applied, violations;
# each process's log goes to .local/nemesis-logs/ (edge.log, consumers.log).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-1800}"
scripts/services.sh up
cargo build --workspace --bins --tests
eval "$(scripts/services.sh test-env)"
export FLASHSALE_NEMESIS_SECS="$SECS" FLASHSALE_NEMESIS_REPORT="$PWD/.local/nemesis-report.txt"
export FLASHSALE_NEMESIS_SEED="${2:-random}"
export FLASHSALE_NEMESIS_LOGS="$PWD/.local/nemesis-logs"
mkdir -p .local
rm -rf "$FLASHSALE_NEMESIS_LOGS"
cargo test -p flashsale-local --test stack -- --exact nemesis::a_random_fault_schedule_breaks_no_promise --nocapture \
  2>&1 | tee .local/nemesis.log | grep '^nemesis:'
cat "$FLASHSALE_NEMESIS_REPORT"
