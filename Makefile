# lbgpt: the daemon (lbgptd), its client (lbgpt), the simulator (lbgpt-sim)
# and the benchmark harness (lbgpt-bench).
GO ?= go
BIN ?= bin
# FUZZTIME (say 60s, or 1000000x) overrides every fuzzer's budget below.
FUZZTIME ?=

# Install locations of `make install`: per user by default.
PREFIX ?= $(HOME)/.local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
XDG_CONFIG_HOME ?= $(HOME)/.config
UNITDIR ?= $(XDG_CONFIG_HOME)/systemd/user
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(XDG_CONFIG_HOME)/fish/completions

# make deb: nfpm, pinned, run with go run (nothing installed, go.mod untouched).
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0
DEB_VERSION ?= 0.1.0~dev
DEB_ARCH ?= $(shell $(GO) env GOARCH)

.PHONY: all build gen install deb test torture demo bench fuzz fuzz-input vet clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Man pages and shell completions from the binaries' own --help, and the
# units with ExecStart in UNIT_BINDIR, under $(BIN)/gen.
UNIT_BINDIR ?= $(BINDIR)
gen: build
	$(GO) run ./internal/docgen -bin $(BIN) -out $(BIN)/gen -version $(DEB_VERSION)
	mkdir -p $(BIN)/gen/user $(BIN)/gen/system
	for u in lbgptd.socket lbgptd.service; do \
		sed 's|@BINDIR@|$(UNIT_BINDIR)|g' packaging/$$u > $(BIN)/gen/user/$$u && \
		sed 's|@BINDIR@|$(UNIT_BINDIR)|g' packaging/system/$$u > $(BIN)/gen/system/$$u || exit 1; \
	done

# Per-user install: binaries, user units, man pages, completions. Then:
#   systemctl --user enable --now lbgptd.socket
install: gen
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -d -m 0700 $(DESTDIR)$(XDG_CONFIG_HOME)/lbgpt
	install -m 0755 $(BIN)/lbgpt $(BIN)/lbgptd $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BIN)/gen/user/lbgptd.socket $(BIN)/gen/user/lbgptd.service $(DESTDIR)$(UNITDIR)/
	install -m 0644 $(BIN)/gen/man/lbgpt.1 $(BIN)/gen/man/lbgptd.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BIN)/gen/completions/bash/lbgpt $(BIN)/gen/completions/bash/lbgptd $(DESTDIR)$(BASHCOMPDIR)/
	install -m 0644 $(BIN)/gen/completions/zsh/_lbgpt $(BIN)/gen/completions/zsh/_lbgptd $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 0644 $(BIN)/gen/completions/fish/lbgpt.fish $(BIN)/gen/completions/fish/lbgptd.fish $(DESTDIR)$(FISHCOMPDIR)/
	-[ -n "$(DESTDIR)" ] || systemctl --user daemon-reload 2>/dev/null
	@echo "installed; start with: systemctl --user enable --now lbgptd.socket"

# The Debian package: $(BIN)/lbgpt_$(DEB_VERSION)_$(DEB_ARCH).deb.
deb:
	$(MAKE) gen UNIT_BINDIR=/usr/bin CGO_ENABLED=0
	BIN=$(BIN) DEB_VERSION=$(DEB_VERSION) DEB_ARCH=$(DEB_ARCH) \
		$(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(BIN)/

# The whole suite, as CI runs it (.ci/run): what the tests need installed
# when missing (.ci/setup: Debian packages, npm packages), vet, every test with the race
# detector (the slow ones too: -tags slow), the tests that judge by data,
# a short fault suite, then the fuzzers of input briefly (2000 executions
# each; every fuzz target's seeds also run as tests above; make fuzz runs
# them all with the full budgets).
test:
	./.ci/setup
	$(GO) vet -tags slow ./...
	$(GO) test -race -shuffle=on -count=1 -tags slow ./...
	# Tests that judge by data, too slow under the race detector (they skip there):
	$(GO) test -count=1 -run '^(TestModelIsFitted|TestSemanticQuality|TestEstimate)$$' ./cache/verify/fit/ ./cmd/lbgpt-bench/ ./internal/tokens/
	LBGPT_TORTURE_ROUNDS=2 $(GO) test -tags torture -count=1 -run '^TestTorture' ./internal/e2e/
	$(MAKE) fuzz-input FUZZTIME=$(or $(FUZZTIME),2000x)

# The fault suite (docs/reliability.md): lbgptd killed with SIGKILL under
# load, round after round (LBGPT_TORTURE_ROUNDS, default 3), and every fault
# test of the suite run again and again. make test runs a short version.
torture:
	$(GO) test -tags torture -race -count=1 -v -run '^TestTorture' ./internal/e2e/
	$(GO) test -race -count=5 -run 'Damaged|Oversized|Hanging|Unauthenticated|NonUnix|Kill9|DownBackend|Malformed|BrokenBeforeContent|AnswerBeforeStop|StopAnswersEveryConnect|SendNever' ./cache/ ./daemon/

# Budgets are execution counts, about 10 s each here: with a duration,
# go1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" when the time runs out mid-execution (golang/go#75804, fixed in
# go1.27); a count has no deadline to race.
fuzz: fuzz-input
	$(GO) test -run '^$$' -fuzz '^FuzzQuickKey$$' -fuzztime $(or $(FUZZTIME),100000x) -fuzzminimizetime 2s ./cache/
	$(GO) test -run '^$$' -fuzz '^FuzzChatRoundTrip$$' -fuzztime $(or $(FUZZTIME),5000x) -fuzzminimizetime 2s ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzResponseRoundTrip$$' -fuzztime $(or $(FUZZTIME),5000x) -fuzzminimizetime 2s ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzAskUsage$$' -fuzztime $(or $(FUZZTIME),20000x) -fuzzminimizetime 2s ./provider/
	$(GO) test -run '^$$' -fuzz '^FuzzJudge$$' -fuzztime $(or $(FUZZTIME),15000x) -fuzzminimizetime 2s ./cache/
	$(GO) test -run '^$$' -fuzz '^FuzzVector$$' -fuzztime $(or $(FUZZTIME),150000x) -fuzzminimizetime 2s ./cache/embed/
	$(GO) test -run '^$$' -fuzz '^FuzzKey$$' -fuzztime $(or $(FUZZTIME),100000x) -fuzzminimizetime 2s ./cache/
	$(GO) test -run '^$$' -fuzz '^FuzzWriteString$$' -fuzztime $(or $(FUZZTIME),150000x) -fuzzminimizetime 2s ./cache/
	$(GO) test -run '^$$' -fuzz '^FuzzAssembleChat$$' -fuzztime $(or $(FUZZTIME),30000x) -fuzzminimizetime 2s ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzSchemaInstance$$' -fuzztime $(or $(FUZZTIME),15000x) -fuzzminimizetime 2s ./internal/sim/

# The fuzzers of what a client sends and of the configuration file: make
# test runs these (its time bound); make fuzz runs them and the others above.
fuzz-input:
	$(GO) test -run '^$$' -fuzz '^FuzzLineReader$$' -fuzztime $(or $(FUZZTIME),300000x) -fuzzminimizetime 2s ./rpc/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),150000x) -fuzzminimizetime 2s ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(or $(FUZZTIME),5000x) -fuzzminimizetime 2s ./daemon/
	$(GO) test -run '^$$' -fuzz '^FuzzQuickMessage$$' -fuzztime $(or $(FUZZTIME),100000x) -fuzzminimizetime 2s ./daemon/
	$(GO) test -run '^$$' -fuzz '^FuzzSplitChatParams$$' -fuzztime $(or $(FUZZTIME),100000x) -fuzzminimizetime 2s ./daemon/
	$(GO) test -run '^$$' -fuzz '^FuzzValid$$' -fuzztime $(or $(FUZZTIME),300000x) -fuzzminimizetime 2s ./internal/jsonx/

# A private daemon on simulated backends: no API key needed.
demo: build
	$(BIN)/lbgpt demo

# Benchmarks print figures; docs/benchmarks.md keeps the results table.
# Each scenario runs for about a minute or two on two cores.
bench: build
	$(GO) test -race -count=1 -tags benchsmoke -run '^TestMultihostRuns$$' ./cmd/lbgpt-bench/
	$(BIN)/lbgpt-bench -json -scenario overhead
	$(BIN)/lbgpt-bench -json -scenario goodput
	$(BIN)/lbgpt-bench -json -scenario faults
	$(BIN)/lbgpt-bench -json -scenario semantic-quality -pairs testdata/semantic/dev-set.jsonl -split dev
	$(BIN)/lbgpt-bench -json -scenario cache
	$(BIN)/lbgpt-bench -json -scenario http
	$(BIN)/lbgpt-bench -json -scenario multihost

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
