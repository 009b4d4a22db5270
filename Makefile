# The README's test command is `make test`; CI runs exactly that (.ci/run).
GO ?= go
FUZZTIME ?= 5s

.PHONY: test vet lint fmt-check unit chaos fuzz-smoke fuzz-long pam-fuzz bash-fuzz nss-fuzz bench pam bash nss promtool

test: fmt-check vet lint promtool pam bash nss unit chaos fuzz-smoke

# The PAM module, pam/pam_tacagent.so (C: docs/pam.md says why); needs gcc and libpam0g-dev.
pam:
	$(MAKE) -C pam

# The NSS module, nss/libnss_tacagent.so.2 (C: docs/nss.md), and its test host; needs gcc. Its end-to-end
# tests (getent and a real sshd in a private mount namespace) run in `unit`.
nss:
	$(MAKE) -C nss all tests

# The bash front end (docs/bash.md): bash/tacagent_hook.so (a loadable builtin), bash/tacagent_plugin.so
# (SONiC's on_shell_execve) and its harness; needs gcc and bash-builtins. Its end-to-end tests run in `unit`.
bash:
	$(MAKE) -C bash all tests

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The alert rules in contrib/prometheus: syntax, then their unit tests (promtool, Debian package prometheus).
promtool:
	promtool check rules contrib/prometheus/tacagent.rules.yml
	cd contrib/prometheus && promtool test rules tacagent.rules.test.yml

# staticcheck, pinned in go.mod's tool block (`go get -tool honnef.co/go/tools/cmd/staticcheck@VERSION`).
lint:
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/chaos$$')

# The chaos suite in CI mode (docs/chaos.md), on its own so that no other package competes for the CPU
# while it measures timeouts; -timeout holds it to its 3-minute budget. Run from its directory, go test
# streams the output, so the summary table shows when it passes too.
chaos:
	cd chaos && $(GO) test -race -count=1 -timeout 3m

# Every fuzz target, briefly (CI). `make fuzz-long FUZZTIME=1m` runs each for a minute.
# The PAM module's C readers have libFuzzer targets (clang, installed by .ci/run): each runs FUZZTIME too,
# built and run in a temporary directory (new inputs are not kept).
fuzz-smoke:
	@./scripts/fuzz-all.sh $(FUZZTIME)
	@$(MAKE) --no-print-directory pam-fuzz
	@$(MAKE) --no-print-directory bash-fuzz
	@$(MAKE) --no-print-directory nss-fuzz

fuzz-long:
	@./scripts/fuzz-all.sh $(FUZZTIME)
	@$(MAKE) --no-print-directory pam-fuzz
	@$(MAKE) --no-print-directory bash-fuzz
	@$(MAKE) --no-print-directory nss-fuzz

pam-fuzz:
	@o=$$(mktemp -d) && trap 'rm -rf "$$o"' EXIT && $(MAKE) --no-print-directory -C pam fuzz FUZZTIME=$(FUZZTIME) O="$$o"

# The bash hook's command split (bash/fuzz/fuzz_words.c), the same way.
bash-fuzz:
	@o=$$(mktemp -d) && trap 'rm -rf "$$o"' EXIT && $(MAKE) --no-print-directory -C bash fuzz FUZZTIME=$(FUZZTIME) O="$$o"

# The NSS module's answer reader (nss/fuzz/fuzz_passwd.c), the same way.
nss-fuzz:
	@o=$$(mktemp -d) && trap 'rm -rf "$$o"' EXIT && $(MAKE) --no-print-directory -C nss fuzz FUZZTIME=$(FUZZTIME) O="$$o"

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./tacplus/ ./fsm/ ./agent/
