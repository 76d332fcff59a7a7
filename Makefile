# mcpreload — every task the project needs, from a fresh machine.
#
#   make demo    the main job on the embedded default, watch it happen
#   make test    build every wasm fixture from source, run all tests with -race
#   make check   gofmt, go vet, golangci-lint, go mod tidy clean, then the tests
#   make bench   benchmarks: a table on stdout, JSON in build/bench/
#   make cover   coverage per package
#   make soak    the long soak test (200 reloads under traffic)

GO            ?= go
GOLANGCI_VER  := v2.15.0
WAZERO_VER    := v1.12.0
BIN           := bin
TOOLS         := build/tools
# Test binaries report wazero's version as "dev", which would key the on-disk
# compilation cache apart from the binaries'. Pin it so every test package and
# every binary share build/cache/wazero (compiles drop from seconds to ms).
TEST_LDFLAGS  := -X github.com/tetratelabs/wazero/internal/version.version=$(WAZERO_VER)
TEST_FLAGS    ?= -race -timeout 20m
PKGS          := ./...

.PHONY: all build wasm test check fmt vet lint tidy-check bench cover demo soak clean

all: build

build: wasm
	$(GO) build -o $(BIN)/mcpreload-node ./cmd/node
	$(GO) build -o $(BIN)/mcpreload-publisher ./cmd/publisher

# Every example tool module, compiled from source into build/wasm/.
wasm:
	$(GO) run ./internal/wasmbuild/cmd/buildwasm

test: wasm
	$(GO) test $(TEST_FLAGS) -ldflags "$(TEST_LDFLAGS)" $(PKGS)

check: fmt vet lint tidy-check test

# The full soak: 200 reloads across a 5-node fleet under MCP traffic
# (make test runs a shorter one).
soak: wasm
	$(GO) test -race -ldflags "$(TEST_LDFLAGS)" -timeout 30m -run TestSoak ./test -soak.reloads=200 -v

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./guest/... ./examples/...

$(TOOLS)/golangci-lint:
	GOBIN=$(CURDIR)/$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VER)

lint: $(TOOLS)/golangci-lint
	$(TOOLS)/golangci-lint run ./...

tidy-check:
	@cp go.mod build/go.mod.bak 2>/dev/null || (mkdir -p build && cp go.mod build/go.mod.bak); cp go.sum build/go.sum.bak
	$(GO) mod tidy
	@if ! cmp -s go.mod build/go.mod.bak || ! cmp -s go.sum build/go.sum.bak; then \
		echo "go mod tidy changed go.mod/go.sum: commit the tidy result"; \
		cp build/go.mod.bak go.mod; cp build/go.sum.bak go.sum; exit 1; fi

bench: wasm
	$(GO) run -ldflags "$(TEST_LDFLAGS)" ./test/bench -out build/bench/latest.json

# Coverage per package, counting every test that exercises a package (the
# integration tests in test/ cover the saga runner and the node agent).
cover: wasm
	$(GO) test -ldflags "$(TEST_LDFLAGS)" -coverpkg=./... -coverprofile=build/cover.out $(PKGS) > /dev/null
	@awk -F'[: ,]' 'NR > 1 { key = $$1 ":" $$2 "," $$3; n[key] = $$4; if ($$5 > 0) hit[key] = 1 } \
	  END { for (k in n) { split(k, a, ":"); pkg = a[1]; sub(/\/[^\/]*$$/, "", pkg); total[pkg] += n[k]; if (hit[k]) cov[pkg] += n[k] } \
	  for (p in total) printf "%-55s %5.1f%%  (%d statements)\n", p, 100 * cov[p] / total[p], total[p] }' build/cover.out | sort

demo: build
	$(GO) run ./internal/cmd/demo -bin $(BIN)

clean:
	rm -rf $(BIN) build
