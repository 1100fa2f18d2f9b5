# Chappe — the two commands of the README are `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: run build test test-embedded test-external bench lint spec-coverage

## run: start a homeserver with nothing configured (SQLite + embedded NATS in ./chappe-data)
run:
	$(GO) run ./cmd/chappe serve

## build: a static binary in bin/chappe
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/chappe ./cmd/chappe

## test: vet, then every test with the embedded default; again against
## PostgreSQL and external NATS when CHAPPE_TEST_POSTGRES / CHAPPE_TEST_NATS are set
test: test-embedded test-external

test-embedded:
	$(GO) vet ./...
	CHAPPE_TEST_POSTGRES= CHAPPE_TEST_NATS= $(GO) test -tags goolm -count=1 -timeout 15m ./...

test-external:
	@if [ -n "$$CHAPPE_TEST_POSTGRES" ] || [ -n "$$CHAPPE_TEST_NATS" ]; then \
		echo "== again with CHAPPE_TEST_POSTGRES=$$CHAPPE_TEST_POSTGRES CHAPPE_TEST_NATS=$$CHAPPE_TEST_NATS"; \
		$(GO) test -tags goolm -count=1 -timeout 15m ./... ; \
	fi

## bench: the Go benchmarks (figures in docs/performance.md)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

## spec-coverage: rewrite docs/spec-coverage.md from the spec in ../shared/matrix-spec
spec-coverage:
	$(GO) run ./cmd/spec-coverage -spec ../shared/matrix-spec -out docs/spec-coverage.md

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet -tags goolm ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags goolm ./...
