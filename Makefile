# Phoenix: make run (the whole mall on :8080 and :8081), make test, make bench.
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOSEC := github.com/securego/gosec/v2/cmd/gosec@v2.30.0
ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
# The version every role reports in its heartbeat (the admin's flow view).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

.PHONY: run topology test faults build vet lint css css-check bench lighthouse clean

run:
	@.ci/ensure-packages redis-server postgres
	$(GO) run ./cmd/phoenix dev

# The production shape on this machine: nginx (TLS) in front of two shops
# and two admins, two workers, a Redis Cluster of 3 primaries with replicas,
# PostgreSQL; each role its own process. Ctrl-C stops everything.
topology: build
	@.ci/ensure-packages redis-server redis-cli postgres nginx
	./phoenix dev -topology cluster

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w -X main.version=$(VERSION)" -o phoenix ./cmd/phoenix

# prometheus gives the alert tests promtool and a real Prometheus server.
test: vet lint css-check
	@.ci/ensure-packages redis-server redis-cli postgres chromium nginx prometheus
	$(GO) test -race -timeout 25m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

lint:
	$(GO) run $(STATICCHECK) ./...
	# tools/ holds developer tools that build and run local programs by
	# design; gosec's subprocess and file rules do not apply to them.
	$(GO) run $(GOSEC) -quiet -exclude-dir=tools ./...
	# The delivery pipeline; actionlint runs shellcheck on its scripts.
	@.ci/ensure-packages shellcheck
	$(GO) run $(ACTIONLINT) .github/workflows/ci.yml

# Pico CSS from its Sass sources (npm, pinned) with only the modules the
# pages use (tools/css/pico.scss), then the precompressed copies. The
# result is committed: nothing is built at run time.
PICO_CSS = assets/css/pico-2.1.1.custom.min.css
SASS = cd tools/css && npx sass --no-source-map --style=compressed --quiet-deps --load-path=node_modules pico.scss
css:
	cd tools/css && npm ci --no-audit --no-fund --ignore-scripts
	$(SASS) $(CURDIR)/$(PICO_CSS)
	$(GO) generate .

# Fails when the committed Pico build is not what tools/css/pico.scss makes.
css-check:
	cd tools/css && npm ci --no-audit --no-fund --ignore-scripts
	@out=$$(mktemp -d) && $(SASS) "$$out/pico.css" && cmp -s "$$out/pico.css" $(CURDIR)/$(PICO_CSS) || \
		{ echo "$(PICO_CSS) is stale: run make css"; exit 1; }

# The topology's fault tests in several rounds (make test runs one).
FAULT_ROUNDS ?= 3
faults:
	@.ci/ensure-packages redis-server redis-cli postgres nginx
	PHOENIX_FAULT_ROUNDS=$(FAULT_ROUNDS) $(GO) test -race -count=1 -timeout 30m -run 'TestTopology_' -v ./cmd/phoenix

# Measures on this machine and rewrites BENCHMARKS.md (about 10 minutes).
bench:
	@.ci/ensure-packages redis-server postgres wrk
	$(GO) run ./tools/bench

# Scores every page of both roles, both languages, mobile and desktop, with
# Lighthouse (npm, pinned) and writes the scores into BENCHMARKS.md (about
# 30 minutes on two cores with 3 runs each; RUNS=1, about 10, for a quick look).
RUNS ?= 3
lighthouse:
	@.ci/ensure-packages redis-server postgres chromium cjk-font
	cd tools/lighthouse && npm ci --no-audit --no-fund
	$(GO) run ./tools/lighthouse -runs $(RUNS)

clean:
	rm -f phoenix
