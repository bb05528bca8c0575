# lbgpt: the daemon (lbgptd), its client (lbgpt), the simulator (lbgpt-sim)
# and the benchmark harness (lbgpt-bench).
GO ?= go
BIN ?= bin
FUZZTIME ?= 10s

.PHONY: all build test demo bench fuzz vet clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The whole suite, as CI runs it (.ci/run): vet, every test with the race
# detector, then each fuzz target briefly.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLineReader$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./rpc/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./daemon/
	$(GO) test -run '^$$' -fuzz '^FuzzSame$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./cache/verify/
	$(GO) test -run '^$$' -fuzz '^FuzzVector$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./cache/embed/

# A private daemon on simulated backends: no API key needed.
demo: build
	$(BIN)/lbgpt demo

# Benchmarks print figures; docs/benchmarks.md keeps the results table.
# Each scenario runs for about a minute or two on two cores.
bench: build
	$(BIN)/lbgpt-bench -json -scenario overhead
	$(BIN)/lbgpt-bench -json -scenario goodput
	$(BIN)/lbgpt-bench -json -scenario faults
	$(BIN)/lbgpt-bench -json -scenario semantic-quality -pairs testdata/semantic-pairs.jsonl

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
