# wxpayd — see README.md. Two commands do all set-up on a fresh machine:
#   make run    the whole stack (real Kafka and ClickHouse, wxpaysim, wxpayd)
#   make test   every test, including integration tests against real services
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO       ?= go
BIN      := $(CURDIR)/bin
RUN_DIR  := $(CURDIR)/.run
SERVICES := bash deploy/local/services.sh
FUZZTIME ?= 60s
# Packages whose concurrency is their job run under the race detector.
RACE_PKGS ?= $(shell $(GO) list ./actors/... ./sink/... ./ingress/... ./wxpay/client/... ./wxpay/openssl/... ./bench/sim/... ./bench/load/... 2>/dev/null)

.PHONY: all build run test unit race peers fuzz fuzz-brief lint bench chaos services-up services-down services-status browser-deps clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## run: start real Kafka and ClickHouse, then the stack in the foreground.
run: build services-up
	bash deploy/local/run-stack.sh

## test: lint, unit, race, SDK cross-checks, brief fuzzing, integration.
test: lint services-up browser-deps
	@echo "== Mini Program modules (examples/miniprogram, node's test runner)"
	node --test examples/miniprogram/test/*.test.js
	@echo "== unit and integration tests (services required)"
	eval "$$($(SERVICES) env)"; WXPAYD_INTEGRATION=1 $(GO) test -count=1 -timeout 20m -skip '^TestOutage' ./...
	@echo "== outage tests: they stop and restart the shared Kafka and ClickHouse, so they run alone"
	eval "$$($(SERVICES) env)"; WXPAYD_INTEGRATION=1 $(GO) test -count=1 -timeout 20m -p 1 -run '^TestOutage' ./...
	$(SERVICES) up
	@echo "== race detector"
	$(if $(strip $(RACE_PKGS)),$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS))
	@echo "== SDK oracles (bench/peers)"
	cd bench/peers && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...
	@echo "== deploy files against k8s.io/api, compose-go, Prometheus and a live /metrics (bench/deploycheck)"
	eval "$$($(SERVICES) env)"; cd bench/deploycheck && $(GO) vet ./... && WXPAYD_INTEGRATION=1 $(GO) test -count=1 -timeout 30m ./...
	@$(MAKE) --no-print-directory fuzz-brief

unit:
	$(GO) test ./...

## fuzz: every fuzzer for FUZZTIME each (make fuzz FUZZTIME=5m).
fuzz:
	bash .ci/fuzz.sh $(FUZZTIME)

fuzz-brief:
	bash .ci/fuzz.sh 5s

## openapi: copy the API's description, ingress/openapi.json (the one source,
## served at /openapi.json), to docs/openapi.json; a test fails while they differ.
.PHONY: openapi
openapi:
	cp ingress/openapi.json docs/openapi.json

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## chaos: the long chaos audit (bench/chaos): buyers racing, WeChat failing, wxpayd
## SIGKILLed at least KILLS times over DURATION; SEED replays a run (make chaos SEED=42).
## make test runs the short version (2m, 3 kills) with the other tests.
SEED          ?=
DURATION      ?= 10m
KILLS         ?= 20
CHAOS_TIMEOUT ?= 3h
chaos:
	WXPAYD_INTEGRATION=1 CHAOS_SEED=$(SEED) CHAOS_DURATION=$(DURATION) CHAOS_KILLS=$(KILLS) \
	  $(GO) test -count=1 -v -run '^TestChaos$$' -timeout $(CHAOS_TIMEOUT) ./bench/chaos/

## bench: micro-benchmarks side by side with the SDKs; writes docs/benchmarks.md.
bench: build
	bash bench/run-bench.sh

services-up:
	$(SERVICES) up

## browser-deps: Chromium, a CJK font and Node.js for bench/browser and examples/miniprogram/test.
browser-deps:
	bash deploy/local/browser.sh install

services-down:
	$(SERVICES) down

services-status:
	$(SERVICES) status

clean:
	rm -rf $(BIN)
