# Windows (x86_64-pc-windows-gnu) build of the library's spawn backend, and its
# tests run for real under Wine. Included by the top-level Makefile.
#
#   make setup-windows   rust target + wine64 + mingw-w64 gcc, the Wine-only
#                        ProcessPrng shim and the Wine prefix (scripts/setup-windows.sh)
#   make build-windows   cargo build for the Windows target (library and binary)
#   make test-windows    clippy for the Windows target, then every Windows test
#                        executable (unit tests, binary, crates/pifork/tests/windows.rs)
#                        under Wine, then the binary's own start under Wine
#
# The test executables run through ci/wine-run.sh (cargo's runner for the
# target): a throwaway Wine prefix under target/, WINEDEBUG=-all, and the shim
# bcryptprimitives.dll beside each executable. The shim exists only because
# Debian bookworm's Wine 8.0 lacks ProcessPrng, which Rust's std imports; it is
# never part of a Windows build (see ci/wine-shim/).

# This fragment must not change the including Makefile's default goal.
WINDOWS_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

WINDOWS_TARGET     ?= x86_64-pc-windows-gnu
WINDOWS_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
WINDOWS_CARGO      ?= cargo
WINDOWS_WINE       ?= /usr/lib/wine/wine64
WINDOWS_RUNNER     ?= $(CURDIR)/ci/wine-run.sh
WINDOWS_LINKER     ?= x86_64-w64-mingw32-gcc
# Upper bound for the test run under Wine (build included), so a hung test
# cannot eat the whole CI budget.
WINDOWS_TEST_TIMEOUT ?= 480

WINDOWS_TRIPLE_ENV = $(shell printf '%s' '$(WINDOWS_TARGET)' | tr 'a-z.-' 'A-Z__')
WINDOWS_ENV = CARGO_TARGET_$(WINDOWS_TRIPLE_ENV)_LINKER=$(WINDOWS_LINKER) \
              CARGO_TARGET_$(WINDOWS_TRIPLE_ENV)_RUNNER=$(WINDOWS_RUNNER) \
              WINE=$(WINDOWS_WINE)
WINDOWS_PREFIX = $(abspath $(WINDOWS_TARGET_DIR))/wine-prefix
# The test targets that exist for Windows: the Linux-only suites (crates/pifork/tests/process/,
# tests/cli.rs, ...) are not built for it; crates/pifork/tests/windows.rs includes the portable
# ones of crates/pifork/tests/process/.
WINDOWS_TEST_TARGETS = --lib --bins --test windows

.PHONY: setup-windows build-windows test-windows

setup-windows:
	WINDOWS_TARGET=$(WINDOWS_TARGET) WINE=$(WINDOWS_WINE) bash scripts/setup-windows.sh

build-windows: setup-windows
	$(WINDOWS_ENV) $(WINDOWS_CARGO) build --target $(WINDOWS_TARGET)

# `cargo test` builds pifork.exe only for an integration test of its own package, and the
# Windows suite is the library's: the binary is built on its own, for its start under Wine at
# the end. wineserver outlives the tests by a few seconds (and any child a failed test left
# behind by longer): it is stopped at the end, pass or fail, in this prefix only.
test-windows: setup-windows
	@echo "== cargo clippy --target $(WINDOWS_TARGET) =="
	$(WINDOWS_ENV) $(WINDOWS_CARGO) clippy --target $(WINDOWS_TARGET) $(WINDOWS_TEST_TARGETS) -- -D warnings
	@echo "== cargo build --target $(WINDOWS_TARGET) --bin pifork =="
	$(WINDOWS_ENV) $(WINDOWS_CARGO) build --target $(WINDOWS_TARGET) --bin pifork
	@echo "== cargo test --target $(WINDOWS_TARGET) under Wine =="
	@status=0; \
	$(WINDOWS_ENV) timeout -k 30 $(WINDOWS_TEST_TIMEOUT) \
	    $(WINDOWS_CARGO) test --target $(WINDOWS_TARGET) $(WINDOWS_TEST_TARGETS) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	    echo "== pifork.exe under Wine: serves spawned children, points to Linux for the CLI =="; \
	    out=$$($(WINDOWS_RUNNER) $(WINDOWS_TARGET_DIR)/$(WINDOWS_TARGET)/debug/pifork.exe 2>&1); code=$$?; \
	    echo "$$out (exit $$code)"; \
	    if [ $$code -ne 2 ] || ! printf '%s' "$$out" | grep -q 'runs on Linux'; then \
	        echo "test-windows: pifork.exe should exit 2 with a pointer to Linux" >&2; status=1; \
	    fi; \
	fi; \
	WINEPREFIX=$(WINDOWS_PREFIX) timeout 30 $(dir $(WINDOWS_WINE))wineserver -k 2>/dev/null || true; \
	exit $$status

.DEFAULT_GOAL := $(WINDOWS_SAVED_DEFAULT_GOAL)
