# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
# Every recipe line runs with the local stand-ins' environment.
WITH_ENV := eval "$$(scripts/services.sh env)" &&
# Tests run on a database, Redis database, bucket and lease table of their own.
WITH_TEST_ENV := eval "$$(scripts/services.sh test-env)" &&

# One build for both commands: `make run` after `make test` (or the other way round)
# reuses it, where `cargo run -p` would resolve other features and rebuild for minutes.
BUILD := cargo build --workspace --bins --tests

.PHONY: run test lint services services-down browser api-tools build arm64 sam-build sam-api sam-invoke

## Start the services, build, migrate, create and publish a demo sale, serve on 127.0.0.1:3000.
run: services
	$(BUILD)
	$(WITH_ENV) target/debug/flashsale-local serve --demo

## Start the services and run every test against them, from an empty test database
## (as on a fresh machine); end with one summary line.
## The arm64 release bootstraps (what a deploy ships) are built first and answer their
## sample events under qemu in the bootstrap test.
test: services browser api-tools lint
	scripts/lint-template.sh
	scripts/checkov.sh
	mkdir -p .local
	scripts/arm64.sh build
	$(BUILD)
	scripts/services.sh reset-test
	$(WITH_TEST_ENV) export FLASHSALE_ARM64_DIR="$$(scripts/arm64.sh dir)" && set -o pipefail && \
	  cargo test --workspace --no-fail-fast 2>&1 | tee .local/test-output.log
	$(WITH_TEST_ENV) export $(BENCH_SHORT_ROUND) && set -o pipefail && \
	  cargo test -p flashsale-local --bench '*' 2>&1 | tee .local/bench-round.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' .local/test-output.log

## Every benchmark runs one short round in `make test` (debug build, no nginx), so none
## can rot; scripts/bench.sh measures them in full.
BENCH_SHORT_ROUND := BENCH_ROUNDS=1 BENCH_REQUESTS=200 BENCH_ORDERS=200 BENCH_INVOCATIONS=100 BENCH_CHECKS=1000 BENCH_NGINX_URL=none

## Formatting and Clippy's findings, as errors; the pages' scripts through ESLint.
lint:
	cargo fmt --all --check
	scripts/lint-js.sh
	cargo clippy --workspace --all-targets -- -D warnings

services:
	scripts/services.sh up

browser:
	scripts/browser.sh

api-tools:
	scripts/schemathesis.sh

services-down:
	scripts/services.sh down

build:
	cargo build --workspace --all-targets

## The Lambdas for arm64 in release, as deployed, with their sizes.
arm64:
	scripts/arm64.sh build

## The deploy's own build: `sam build` (cargo lambda, arm64) with the pinned tools.
SAM := PATH="$(CURDIR)/.venv-sam/bin:$$PATH" RUSTUP_TOOLCHAIN=debian-web SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam
sam-build:
	scripts/lint-template.sh
	scripts/arm64.sh toolchain
	$(SAM) build

## The API in Lambda's own containers against the local services (needs Docker).
sam-api: services sam-build
	$(SAM) local start-api --env-vars env.json --add-host host.docker.internal:host-gateway

## One function in its container: make sam-invoke FUNCTION=AdmitFunction EVENT=events/admit.json
sam-invoke: services sam-build
	$(SAM) local invoke $(FUNCTION) -e $(EVENT) --env-vars env.json --add-host host.docker.internal:host-gateway
