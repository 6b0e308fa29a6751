# Portcullis: `make test` runs every check a change must pass; `make bench`
# measures the gateway against the alternatives and writes BENCHMARKS.md.

GO ?= go
# Pinned tool versions, fetched through the Go module proxy by `go run`.
STATICCHECK_VERSION ?= v0.8.2
export CGO_ENABLED ?= 1

.PHONY: all build deps test vet unit policy-test bench-test fuzz bench bench-go clean

all: build

build:
	$(GO) build -o bin/portcullis ./cmd/portcullis

test: deps vet unit policy-test bench-test fuzz

# Installs what the tests need (Debian packages), idempotently.
deps:
	@./scripts/deps.sh

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt: these files need formatting:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -checks inherit,-S1025 ./...

# The e2e tests build and start their real parts themselves (Dex from
# e2e/idp, Chromium through e2e/browser, redis-server); a part that cannot
# be had fails them, never skips them.
unit:
	$(GO) test -race -count=1 ./...

policy-test:
	$(GO) run ./cmd/portcullis policy test policies

# Each fuzz target runs briefly; longer runs are for a developer's machine.
FUZZTIME ?= 5s
fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

bench: bench-go
	$(MAKE) -C bench

# The Go benchmarks beside the code, written into BENCHMARKS.md.
bench-go:
	./scripts/bench-go.sh

# The benchmark harness is its own module; its tests run with every change.
bench-test:
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

clean:
	rm -rf bin
