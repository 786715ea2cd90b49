# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
# Every recipe line runs with the local stand-ins' environment.
WITH_ENV := eval "$$(scripts/services.sh env)" &&

.PHONY: run test services services-down build lint

## Start the services, build, migrate, create and publish a demo sale, serve on 127.0.0.1:3000.
run: services
	$(WITH_ENV) cargo run -p flashsale-local -- serve --demo

## Start the services and run every test against them.
test: services
	$(WITH_ENV) cargo test --workspace

services:
	scripts/services.sh up

services-down:
	scripts/services.sh down

build:
	cargo build --workspace --all-targets
