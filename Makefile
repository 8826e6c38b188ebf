.PHONY: build test fuzz bench lint

build:
	go build -o roster ./cmd/roster

# Every module: the agent (.), the SDK and its gRPC resolver (their own
# modules, so applications do not pull in the server or gRPC), and the
# Prometheus discovery test (its own module for Prometheus's dependencies).
MODULES := . client client/grpcresolver test/promsd

test:
	set -e; for m in $(MODULES); do echo "== $$m"; (cd $$m && go test -race ./...); done

# A short pass of every fuzz target.
fuzz:
	./.ci/fuzz 10s

# One iteration of every benchmark, so they keep compiling and running.
bench:
	go test -run='^$$' -bench=. -benchtime=1x ./...

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	go vet ./...
	cd client && go vet ./...
	cd client/grpcresolver && go vet ./...
	cd test/promsd && go vet ./...
