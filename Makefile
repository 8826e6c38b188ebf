.PHONY: build test soak fuzz bench lint tools

build:
	go build -o roster ./cmd/roster

# Every module: the agent (.), the SDK and its gRPC resolver (their own
# modules, so applications do not pull in the server or gRPC), and the
# Prometheus discovery test (its own module for Prometheus's dependencies).
MODULES := . client client/grpcresolver test/promsd

# Every module's tests under -race, each module even when one before it
# failed; one summary line at the end, and a non-zero exit if any failed.
test:
	@n=0; passed=0; failed=""; \
	for m in $(MODULES); do \
		n=$$((n+1)); echo "== $$m"; \
		if (cd $$m && go test -race ./...); then passed=$$((passed+1)); else failed="$$failed $$m"; fi; \
	done; \
	set -- $$failed; \
	line="make test: $$n modules, $$passed passed, $$# failed"; \
	if [ $$# -gt 0 ]; then line="$$line ($$(echo $$failed | sed 's/ /, /g'))"; fi; \
	echo "$$line"; [ $$# -eq 0 ]

# The fault suite (test/e2e TestFault) SOAK_N times: pass/fail counts per
# fault and the wall time; non-zero if any failed. ROSTER_FAULT_HOG=1 adds a
# busy neighbour on one core; ROSTER_FAULT_DIR keeps logs and histories.
SOAK_N ?= 20

soak:
	./.ci/soak $(SOAK_N)

# A short pass of every fuzz target of every module.
fuzz:
	./.ci/fuzz 10s

# One iteration of every benchmark, so they keep compiling and running.
bench:
	go test -run='^$$' -bench=. -benchtime=1x ./...

# The linters are Go modules pinned in tools/go.mod (tool directives, kept
# out of the product's go.mod), built into .bin/.
BIN := $(CURDIR)/.bin

tools: $(BIN)/staticcheck $(BIN)/go-errorlint

$(BIN)/staticcheck $(BIN)/go-errorlint: tools/go.mod tools/go.sum
	cd tools && go build -o $(BIN)/ tool

# gofmt over every tracked Go file, then go vet, staticcheck (its default
# checks) and errorlint on every module. errorlint reads product code only
# (-test=false): test tables compare expected errors by type on purpose.
lint: tools
	@bad=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@set -e; for m in $(MODULES); do \
		echo "== lint $$m"; \
		(cd $$m && go vet ./... && $(BIN)/staticcheck ./... && $(BIN)/go-errorlint -test=false ./...); \
	done
