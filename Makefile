.PHONY: build test fuzz bench lint

build:
	go build -o roster ./cmd/roster

test:
	go test -race ./...

# A short pass of every fuzz target.
fuzz:
	./.ci/fuzz 10s

# One iteration of every benchmark, so they keep compiling and running.
bench:
	go test -run='^$$' -bench=. -benchtime=1x ./...

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	go vet ./...
