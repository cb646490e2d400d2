# logdoctor build, run and test entry points. The README's quick start is
# `make run` and `make test`; .ci/run runs `make test`.
SHELL       := /bin/bash
GO          ?= go
BIN         ?= bin/logdoctor
PKG         := github.com/logdoctor/logdoctor
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION) -X $(PKG)/internal/buildinfo.Commit=$(COMMIT)
FUZZTIME    ?= 30s
# staticcheck, pinned: `make lint` installs this version into bin/ from the
# module proxy, so every machine checks with the same rules.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := bin/staticcheck-$(STATICCHECK_VERSION)

.PHONY: build run image test test-deps bench lint fuzz clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/logdoctor

# The main job: an end-to-end canary through the embedded pipeline into the
# embedded Elasticsearch, counted exactly once (docs/commands/smoke.md).
run: build
	$(BIN) smoke

# A minimal OCI image (docker-save tarball) built without a Docker daemon:
# empty base, the static binary at /logdoctor, non-root user 65532.
# `docker load -i bin/logdoctor-image.tar` or `crane push` it; see
# docs/debug-containers.md. IMAGE_TAG names it.
IMAGE_TAG   ?= logdoctor:$(VERSION)
# tools/ is a module of its own so that go-containerregistry stays out of
# the binary's dependencies.
image: build
	cd tools && $(GO) run ./mkimage -binary ../$(BIN) -out ../bin/logdoctor-image.tar -tag '$(IMAGE_TAG)'

test-deps:
	@scripts/test-deps.sh

test: test-deps
	$(GO) test -race -timeout 12m ./...
	cd tools && $(GO) test -race -timeout 5m ./...

bench: build
	@scripts/bench.sh

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	cd tools && $(GO) vet ./... && $(GO) mod tidy -diff
	$(STATICCHECK) ./...
	GOARCH=386 $(GO) build ./... && GOARCH=arm $(GO) build ./...

$(STATICCHECK):
	mkdir -p bin
	GOBIN=$(CURDIR)/bin/.staticcheck $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv bin/.staticcheck/staticcheck $@ && rmdir bin/.staticcheck

# Runs every fuzz target for FUZZTIME each; the seed corpora live in
# testdata/fuzz of each package and run with every `go test`.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
