# The README's test command is `make test`; CI runs exactly that (.ci/run).
GO ?= go
FUZZTIME ?= 5s

.PHONY: test vet lint fmt-check unit chaos fuzz-smoke fuzz-long pam-fuzz bash-fuzz nss-fuzz bench pam bash nss promtool

# deb-test installs the package on this machine and refuses a host that already has tacagent's paths: it
# runs before the other tests, which start daemons (each with its own spool file, never the host's).
test: fmt-check vet lint promtool pam bash nss deb-test unit chaos fuzz-smoke

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

# The Debian package (docs/packaging.md): dist/tacagent_$(DEB_VERSION)_$(DEB_ARCH).deb, built by
# internal/pkgdeb/mkdeb (nfpm as a library) from what the targets below build. Needs dpkg-dev (multiarch
# tuple, dpkg-shlibdeps). The NSS module goes in when nss/ has a Makefile.
DEB_ARCH ?= $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null || echo amd64)
DEB_MULTIARCH ?= $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
# A tag vX.Y.Z gives X.Y.Z; otherwise 0~gitDATE.REVISION (sorts before any release).
DEB_VERSION ?= $(shell t=$$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null) && echo $${t\#v} || \
	echo 0~git$$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd).$$(git rev-parse --short=12 HEAD))
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
GEN := build/gen

.PHONY: man deb deb-test nss-if-present

# tacagent(8) and tacagent-COMMAND(8), and the bash and zsh completion, from the CLI's command tree.
man: build/tacagent
	rm -rf $(GEN) && build/tacagent gendocs $(GEN)

# PIE with full RELRO and BIND_NOW, as Debian's hardening wants of every binary.
build/tacagent: FORCE
	mkdir -p build
	CGO_CFLAGS="-O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong" $(GO) build -trimpath -buildmode=pie \
		-ldflags='-linkmode=external -extldflags "-Wl,-z,relro,-z,now"' -o $@ ./cmd/tacagent

nss-if-present:
	@if [ -f nss/Makefile ]; then $(MAKE) -C nss; fi

deb: pam bash nss-if-present man
	rm -f dist/tacagent_*.deb
	$(GO) run ./internal/pkgdeb/mkdeb -version '$(DEB_VERSION)' -arch $(DEB_ARCH) -multiarch $(DEB_MULTIARCH) \
		-binary build/tacagent -pam pam/pam_tacagent.so -bash-hook bash/tacagent_hook.so \
		$$([ -f nss/libnss_tacagent.so.2 ] && echo -nss nss/libnss_tacagent.so.2) \
		-gendir $(GEN) -commit $$(git rev-parse --short=12 HEAD) -out dist

# Builds the .deb, runs lintian on it (no error, no warning: contrib/debian/lintian-overrides says why
# for the two it overrides), then internal/pkgdeb's TestInstallDemoPAMPurge installs it with dpkg, runs
# the installed `tacagent demo`, logs in with pamtester through the installed module and daemon,
# upgrades, removes and purges, and checks that nothing is left (as root; it skips otherwise, except
# under CI=true, where it fails). DEB_TEST_SANDBOX=1 runs the install test in scripts/overlay-run.sh's
# mount namespace (the host's /etc, /usr, /var untouched), for a shared machine.
DEB_TEST_SANDBOX ?=
deb-test: deb
	@if command -v lintian >/dev/null; then \
		echo "lintian dist/tacagent_$(DEB_VERSION)_$(DEB_ARCH).deb"; \
		lintian --fail-on error,warning dist/tacagent_$(DEB_VERSION)_$(DEB_ARCH).deb; \
	elif [ "$$CI" = true ]; then echo "CI needs lintian (.ci/run)"; exit 1; \
	else echo "lintian is not installed: not checking the package"; fi
	TACAGENT_DEB=$(CURDIR)/dist/tacagent_$(DEB_VERSION)_$(DEB_ARCH).deb $(if $(DEB_TEST_SANDBOX),scripts/overlay-run.sh) \
		$(GO) test -count=1 -timeout 3m -run '^TestInstallDemoPAMPurge$$' -v ./internal/pkgdeb

.PHONY: FORCE
FORCE:
