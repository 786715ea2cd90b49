# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
# Every recipe line runs with the local stand-ins' environment.
WITH_ENV := eval "$$(scripts/services.sh env)" &&
# Tests run on a database, Redis database, bucket and lease table of their own.
WITH_TEST_ENV := eval "$$(scripts/services.sh test-env)" &&

.PHONY: run test services services-down browser build

## Start the services, build, migrate, create and publish a demo sale, serve on 127.0.0.1:3000.
run: services
	$(WITH_ENV) cargo run -p flashsale-local -- serve --demo

## Start the services and run every test against them, from an empty test database
## (as on a fresh machine); end with one summary line.
test: services browser
	scripts/lint-template.sh
	mkdir -p .local
	cargo build --workspace --bins
	scripts/services.sh reset-test
	$(WITH_TEST_ENV) set -o pipefail && cargo test --workspace --no-fail-fast 2>&1 | tee .local/test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' .local/test-output.log

services:
	scripts/services.sh up

browser:
	scripts/browser.sh

services-down:
	scripts/services.sh down

build:
	cargo build --workspace --all-targets
