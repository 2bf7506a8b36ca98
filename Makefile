# pifork — build, test, benchmark, cross-build for the Raspberry Pi 4.
#
#   make check          the quick loop: cargo fmt --check, clippy -D warnings, cargo test
#   make run            static release build, then `pifork pi` with the defaults
#   make test           everything CI checks (.ci/run): format, lints, the library's layering
#                       (built alone, no import circles), host tests on both process backends,
#                       the library's example programs under every start method,
#                       the aarch64 suite under qemu-user, the 4-core VM test (ci/),
#                       the Windows spawn backend's tests under Wine, the systemd unit, lintian
#                       on the .deb, the service deployed on an emulated Pi 4 running Debian
#                       with systemd, and pifork-mpi under mpirun (see mk/mpi.mk)
#   make install / deploy HOST=user@host / deb    see mk/service.mk
#   make bench          kernel, start methods, scaling; then pifork against CPython,
#                       the start+join round trips over 7 separate runs, and what the
#                       service pays to save a finished chunk; then the library's Pool, Queue
#                       and locks beside CPython's multiprocessing (make bench-toolkit)
#   make build-aarch64  static aarch64 binary for the Pi (see mk/aarch64.mk for the rest)
#   make mca            the kernel's predicted speed on the Pi 4's Cortex-A72 (llvm-mca)
#   make man            doc/pifork.1 from the program's --help (a test checks it is current)
#   make build-mpi / test-mpi / build-aarch64-mpi / deploy-cluster HOSTS="pi1 pi2"
#                       pifork-mpi for a Pi cluster under MPI (see mk/mpi.mk)

CARGO   ?= cargo
# The binary is static on every machine, as on the Pi: musl, for this machine's CPU.
STATIC_TARGET ?= $(shell uname -m)-unknown-linux-musl
TARGET_DIR    ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
RELEASE       := $(abspath $(TARGET_DIR)/$(STATIC_TARGET)/release/pifork)

.PHONY: all build setup-static run check test test-host examples check-tools fmt-check clippy layers bench bench-toolkit man clean

all: build

setup-static:
	@bash -c '. scripts/lib.sh && need_rust_target $(STATIC_TARGET)'

build: setup-static
	$(CARGO) build --release --target $(STATIC_TARGET)
	@if command -v file >/dev/null 2>&1 && file -L '$(RELEASE)' | grep -q 'dynamically linked'; then \
	    echo "build: error: $(RELEASE) is dynamically linked" >&2; exit 1; \
	fi

run: build
	$(RELEASE) pi

# rustfmt and clippy come with the default rustup profile, but not with every install.
check-tools:
	@command -v $(CARGO) >/dev/null || { echo "make: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
	@if ! $(CARGO) fmt --version >/dev/null 2>&1 || ! $(CARGO) clippy --version >/dev/null 2>&1; then \
	    rustup component add rustfmt clippy; \
	fi

fmt-check: check-tools
	$(CARGO) fmt --all -- --check

clippy: check-tools
	$(CARGO) clippy --all-targets -- -D warnings

# The quick loop while working: the default members (the library and the appliance), once.
check: fmt-check clippy
	$(CARGO) test

# The library is a crate of its own (crates/pifork): it depends on none of the appliance's
# crates, has no import circles between its modules (rustc accepts those; the script does not),
# and the docs of the workspace (the derive included) have no broken links. The appliance can
# reach only its public API: the crate edge enforces that.
layers: check-tools
	@deps=$$($(CARGO) tree -p pifork -e normal --prefix none | awk '{ print $$1 }' | sort -u); \
	for dep in argh env_logger crc pifork-pi; do \
	    if printf '%s\n' "$$deps" | grep -qx "$$dep"; then \
	        echo "layers: the library depends on $$dep" >&2; exit 1; \
	    fi; \
	done; echo "layers: the library depends on: $$(printf '%s ' $$deps)"
	python3 scripts/check-layers.py crates/pifork/src
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --no-deps -p pifork -p pifork-derive -p pifork-pi --features pifork/derive

# The suite runs twice: once on the backend the kernel offers (pidfd here), once with the
# pipe fallback forced, so both stay tested wherever the suite runs; then once more on the
# static build that `make run` and `make bench` use.
test-host: setup-static
	$(CARGO) test
	PIFORK_BACKEND=pipe $(CARGO) test
	$(CARGO) test --target $(STATIC_TARGET)
	$(MAKE) --no-print-directory examples

# The library's programs on the pool, futures and sharing (crates/pifork/examples), each
# checking its own result, run under every start method.
EXAMPLES := pi_pool pi_futures pi_queue pi_shared mapreduce producer_consumer barrier_lock
examples:
	$(CARGO) build -q -p pifork --examples
	@for e in $(EXAMPLES); do for m in fork spawn forkserver; do \
	    '$(TARGET_DIR)/debug/examples/'$$e $$m > /dev/null \
	        || { echo "examples: $$e under $$m failed" >&2; exit 1; }; \
	done; echo "examples: $$e ran under fork, spawn and forkserver"; done

test: fmt-check clippy layers test-host test-aarch64 test-vm test-windows verify-unit lint-deb test-system test-mpi

# pifork's own figures, then the CPython reference programs in the same session; then the
# library's process toolkit, each figure beside CPython's multiprocessing in the same run.
bench: build
	python3 bench/report.py --pifork $(RELEASE)
	$(MAKE) --no-print-directory bench-toolkit

# The Pool (map at chunk size 1 and auto, against CPython's Pool.map and std threads; the
# apply_async round trip; a worker's death), the Queue (8-byte items, 64 KiB items), and the
# locks, Condition, Barrier and a shared Value (crates/pifork/examples/*_bench.rs).
bench-toolkit:
	$(CARGO) run --release -q -p pifork --example pool_bench
	$(CARGO) run --release -q -p pifork --example queue_bench
	$(CARGO) run --release -q -p pifork --example sync_bench -- --python

man:
	$(CARGO) build
	python3 scripts/manpage.py '$(TARGET_DIR)/debug/pifork' > doc/pifork.1

clean:
	$(CARGO) clean

include mk/aarch64.mk
include mk/windows.mk
include mk/service.mk
include mk/mpi.mk
