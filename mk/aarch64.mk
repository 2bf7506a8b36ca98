# aarch64 appliance build (Raspberry Pi 4: BCM2711, 4 x Cortex-A72) and its
# tests. Included by the top-level Makefile.
#
#   make setup-aarch64   rust target + qemu-user-static + aarch64 cross gcc +
#                        binfmt_misc (root): what the tests under emulation need
#   make build-aarch64   static, stripped release binary; fails above 1.5 MiB.
#                        Needs only the Rust target (no root, no Debian packages)
#   make test-aarch64    whole test suite under qemu-aarch64-static, twice
#                        (pidfd backend, then PIFORK_BACKEND=pipe)
#   make cross-test      the test suite through `cross` (Docker or Podman)
#   make test-vm         boot an aarch64 kernel in qemu-system-aarch64 and run
#                        the appliance checks there (ci/test-vm.sh)
#   make mca             predict the kernel loops on a Cortex-A72 with llvm-mca
#                        (scripts/mca.py; installs Debian's llvm package)
#
# CPU tuning decision: no -C target-cpu. The baseline of
# aarch64-unknown-linux-musl is generic armv8-a with neon (plus crt-static);
# `rustc --print cfg -C target-cpu=cortex-a72` adds the target features aes,
# sha2, crc and pmuv3. Those are optional ARMv8.0 extensions that not every
# aarch64 CPU has; the Raspberry Pi 4's own BCM2711 has crc32 but none of the
# crypto extensions (aes, sha2), so a cortex-a72 build could even die with
# SIGILL on the board it was tuned for. Scheduling-only tuning (-Z tune-cpu)
# needs a nightly compiler, and subtracting the features again
# (-C target-cpu=cortex-a72 -C target-feature=-aes,-sha2,-crc,-pmuv3) would be
# a fragile list to keep in step with LLVM for no measurable gain on this
# scalar floating-point workload. So the binary stays on the baseline and runs
# on any aarch64 Linux.
#
# Linker: aarch64-linux-gnu-gcc (Debian's gcc-aarch64-linux-gnu, installed by
# setup-aarch64) drives the link when it is there; Rust's musl target brings
# its own self-contained crt objects and libc, so no aarch64 libc package is
# needed. Without that gcc the rust-lld shipped with the Rust toolchain links
# instead, so building for the Pi (build-aarch64, and with it deb and deploy)
# needs nothing but the Rust target: no root, no apt, no binfmt_misc.

# This fragment must not change the including Makefile's default goal.
AARCH64_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

AARCH64_TARGET     ?= aarch64-unknown-linux-musl
AARCH64_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
AARCH64_BIN        ?= $(AARCH64_TARGET_DIR)/$(AARCH64_TARGET)/release/pifork
AARCH64_DEBUG_BIN  ?= $(AARCH64_TARGET_DIR)/$(AARCH64_TARGET)/debug/pifork
AARCH64_MAX_BYTES  ?= 1572864
AARCH64_RUNNER     ?= qemu-aarch64-static
AARCH64_LINKER     ?= $(if $(shell command -v aarch64-linux-gnu-gcc 2>/dev/null),aarch64-linux-gnu-gcc,rust-lld)
AARCH64_CARGO      ?= cargo
# Upper bound for each `cargo test` run under emulation (build included), so a
# hung test cannot eat the whole CI budget; timeout(1) kills the whole
# process group, runner and workers included.
AARCH64_TEST_TIMEOUT ?= 900

# CARGO_TARGET_<TRIPLE>_{LINKER,RUNNER}, with the triple upper-cased.
AARCH64_TRIPLE_ENV = $(shell printf '%s' '$(AARCH64_TARGET)' | tr 'a-z.-' 'A-Z__')
AARCH64_ENV = CARGO_TARGET_$(AARCH64_TRIPLE_ENV)_LINKER=$(AARCH64_LINKER) \
              CARGO_TARGET_$(AARCH64_TRIPLE_ENV)_RUNNER=$(AARCH64_RUNNER)

AARCH64_MCA_BIN    ?= $(AARCH64_TARGET_DIR)/$(AARCH64_TARGET)/mca/pifork

.PHONY: setup-aarch64 setup-aarch64-rust build-aarch64 test-aarch64 cross-test test-vm mca

setup-aarch64:
	AARCH64_TARGET=$(AARCH64_TARGET) bash scripts/setup-aarch64.sh

# The Rust standard library for the target: all a build needs.
setup-aarch64-rust:
	@bash -c 'PROG=setup-aarch64; . scripts/lib.sh && need_rust_target $(AARCH64_TARGET)'

build-aarch64: setup-aarch64-rust
	$(AARCH64_ENV) CARGO_PROFILE_RELEASE_STRIP=symbols \
	    $(AARCH64_CARGO) build --release --target $(AARCH64_TARGET)
	@size=$$(stat -c %s '$(AARCH64_BIN)'); \
	if command -v file >/dev/null 2>&1; then file '$(AARCH64_BIN)'; fi; \
	if command -v file >/dev/null 2>&1 && file '$(AARCH64_BIN)' | grep -q 'dynamically linked'; then \
	    echo "build-aarch64: error: $(AARCH64_BIN) is dynamically linked" >&2; exit 1; \
	fi; \
	echo "build-aarch64: $(AARCH64_BIN): $$size bytes ($$((size / 1024)) KiB), limit $(AARCH64_MAX_BYTES) bytes"; \
	if [ "$$size" -gt $(AARCH64_MAX_BYTES) ]; then \
	    echo "build-aarch64: error: binary is $$size bytes, over the $(AARCH64_MAX_BYTES)-byte (1.5 MiB) limit" >&2; \
	    exit 1; \
	fi

# The integration tests start the aarch64 binary (CARGO_BIN_EXE_pifork) through
# $PIFORK_RUNNER, so they need no binfmt_misc registration on the host.
test-aarch64: setup-aarch64
	$(AARCH64_ENV) $(AARCH64_CARGO) build --target $(AARCH64_TARGET)
	@echo "== pifork info under $(AARCH64_RUNNER) (default backend) =="
	$(AARCH64_RUNNER) $(AARCH64_DEBUG_BIN) info
	@echo "== pifork info under $(AARCH64_RUNNER) (PIFORK_BACKEND=pipe) =="
	PIFORK_BACKEND=pipe $(AARCH64_RUNNER) $(AARCH64_DEBUG_BIN) info
	@echo "== cargo test --target $(AARCH64_TARGET) under $(AARCH64_RUNNER) (default backend) =="
	$(AARCH64_ENV) PIFORK_RUNNER=$(AARCH64_RUNNER) \
	    timeout -k 30 $(AARCH64_TEST_TIMEOUT) $(AARCH64_CARGO) test --target $(AARCH64_TARGET)
	@echo "== cargo test --target $(AARCH64_TARGET) under $(AARCH64_RUNNER) (PIFORK_BACKEND=pipe) =="
	$(AARCH64_ENV) PIFORK_RUNNER=$(AARCH64_RUNNER) PIFORK_BACKEND=pipe \
	    timeout -k 30 $(AARCH64_TEST_TIMEOUT) $(AARCH64_CARGO) test --target $(AARCH64_TARGET)

# Not part of `make test`: needs `cross` and a container engine.
cross-test:
	@if ! command -v cross >/dev/null 2>&1; then \
	    echo "cross-test: 'cross' is not on PATH." >&2; \
	    echo "cross-test: install it with 'cargo install cross'; it also needs a running Docker or Podman." >&2; \
	    echo "cross-test: without containers, 'make test-aarch64' runs the same suite under qemu-aarch64-static." >&2; \
	    exit 1; \
	fi
	CROSS_CONFIG=cross/Cross.toml cross test --target $(AARCH64_TARGET)

test-vm: setup-aarch64 build-aarch64
	AARCH64_BIN='$(AARCH64_BIN)' bash ci/test-vm.sh '$(AARCH64_BIN)'

# The release build with symbols (profile "mca": release, not stripped), so that the kernel
# loops are found by function name; llvm-mca and llvm-objdump come from Debian's llvm.
mca: setup-aarch64
	@bash -c '. scripts/lib.sh && need_packages llvm'
	$(AARCH64_ENV) $(AARCH64_CARGO) build --profile mca --target $(AARCH64_TARGET)
	python3 scripts/mca.py '$(AARCH64_MCA_BIN)' \
	    "$$(command -v llvm-mca || ls /usr/lib/llvm-*/bin/llvm-mca | tail -1)" \
	    "$$(command -v llvm-objdump || ls /usr/lib/llvm-*/bin/llvm-objdump | tail -1)"

.DEFAULT_GOAL := $(AARCH64_SAVED_DEFAULT_GOAL)
