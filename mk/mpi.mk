# pifork-mpi, the pi computation across the ranks of an MPI job (a Pi cluster): the crate
# crates/pifork-mpi (not a default member of the workspace), on Debian's Open MPI, linked
# dynamically (Debian ships no static libmpi).
# Included by the top-level Makefile.
#
#   make build-mpi          release pifork-mpi for this machine (installs Open MPI, libclang)
#   make test-mpi           clippy of pifork-mpi; 1 to 4 ranks against pifork pi, bad
#                           input, a rank SIGKILLed, two hosts as two network namespaces over
#                           ssh (ci/test-mpi.sh); the aarch64 build under qemu-user
#   make build-aarch64-mpi  aarch64 pifork-mpi against Debian's arm64 Open MPI in a private
#                           sysroot under the target directory (scripts/setup-aarch64-mpi.sh)
#   make bench-mpi [MPI_BENCH_TERMS=1e10]
#                           1, 2, 4 ranks against pifork pi with as many workers (bench/mpi.sh)
#   make deploy-cluster HOSTS="pi1 pi2 ..." [SSH_OPTS=...] [CLUSTER_PREFIX=/usr/local]
#                           copy the aarch64 pifork-mpi to every host, print the mpirun line

# This fragment must not change the including Makefile's default goal.
MPI_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

MPI_PACKAGES   := openmpi-bin libopenmpi-dev libclang1-14 libclang-common-14-dev \
                  openssh-server openssh-client iproute2 util-linux procps
MPI_BIN        := $(abspath $(TARGET_DIR)/release/pifork-mpi)
MPI_REF_BIN    := $(abspath $(TARGET_DIR)/release/pifork)
MPI_SYSROOT    := $(abspath $(TARGET_DIR)/aarch64-mpi-sysroot)
MPI_AARCH64    := aarch64-unknown-linux-gnu
MPI_AARCH64_BIN := $(abspath $(TARGET_DIR)/$(MPI_AARCH64)/release/pifork-mpi)
MPI_SYSROOT_LIB := $(MPI_SYSROOT)/usr/lib/aarch64-linux-gnu
# The cross build: rsmpi finds the arm64 Open MPI through the sysroot's mpicc, bindgen reads
# the arm64 headers, the linker resolves libmpi's own libraries in the sysroot.
MPI_AARCH64_ENV := MPICC=$(MPI_SYSROOT)/mpicc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu='-I/usr/aarch64-linux-gnu/include' \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C link-arg=-Wl,-rpath-link,$(MPI_SYSROOT_LIB)/openmpi/lib -C link-arg=-Wl,-rpath-link,$(MPI_SYSROOT_LIB) -C link-arg=-Wl,-rpath-link,$(MPI_SYSROOT)/lib/aarch64-linux-gnu'
CLUSTER_PREFIX ?= /usr/local
HOSTS          ?=
MPI_BENCH_TERMS ?= 1e10

.PHONY: setup-mpi build-mpi test-mpi build-aarch64-mpi test-aarch64-mpi bench-mpi deploy-cluster

setup-mpi:
	@bash -c '. scripts/lib.sh && PROG=setup-mpi && need_packages $(MPI_PACKAGES)'

build-mpi: setup-mpi
	$(CARGO) build --release -p pifork-mpi
	@echo "build-mpi: $(MPI_BIN): $$(stat -c %s '$(MPI_BIN)') bytes, needs $$(ldd '$(MPI_BIN)' | awk '/libmpi/ { print $$1 }')"

test-mpi: build-mpi test-aarch64-mpi
	$(CARGO) clippy -p pifork-mpi --all-targets -- -D warnings
	$(CARGO) build --release --bin pifork
	bash ci/test-mpi.sh '$(MPI_BIN)' '$(MPI_REF_BIN)'

build-aarch64-mpi:
	bash scripts/setup-aarch64-mpi.sh '$(MPI_SYSROOT)'
	$(MPI_AARCH64_ENV) $(CARGO) build --release -p pifork-mpi --target $(MPI_AARCH64)
	@readelf -h '$(MPI_AARCH64_BIN)' | grep -q 'Machine:.*AArch64' && \
	    readelf -l '$(MPI_AARCH64_BIN)' | grep -q 'program interpreter' || \
	    { echo "build-aarch64-mpi: $(MPI_AARCH64_BIN) is not a dynamic aarch64 binary" >&2; exit 1; }
	@echo "build-aarch64-mpi: $(MPI_AARCH64_BIN): $$(stat -c %s '$(MPI_AARCH64_BIN)') bytes; needs glibc $$(readelf -W --dyn-syms '$(MPI_AARCH64_BIN)' | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | cut -d_ -f2) or newer"

# A singleton (no mpirun) under qemu-user, its libraries from the sysroot: the bits of the host's
# pifork pi.
test-aarch64-mpi: build-aarch64-mpi
	$(CARGO) build --release --bin pifork
	@want=$$('$(MPI_REF_BIN)' pi --terms 1e8 --json | sed -n 's/.*"estimate":\([^,]*\),.*/\1/p'); \
	out=$$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 \
	    qemu-aarch64-static -L '$(MPI_SYSROOT)' '$(MPI_AARCH64_BIN)' pi --terms 1e8 --json </dev/null) || \
	    { echo "test-aarch64-mpi: the aarch64 singleton failed" >&2; exit 1; }; \
	got=$$(printf '%s' "$$out" | sed -n 's/.*"estimate":\([^,]*\),.*/\1/p'); \
	echo "test-aarch64-mpi: aarch64 singleton under qemu: $$got, pifork pi: $$want"; \
	[ -n "$$got" ] && [ "$$got" = "$$want" ] || { echo "test-aarch64-mpi: different bits: $$out" >&2; exit 1; }

bench-mpi: build-mpi
	$(CARGO) build --release --bin pifork
	bash bench/mpi.sh '$(MPI_BIN)' '$(MPI_REF_BIN)' $(MPI_BENCH_TERMS)

deploy-cluster: build-aarch64-mpi
	HOSTS='$(HOSTS)' SSH_OPTS='$(SSH_OPTS)' CLUSTER_PREFIX='$(CLUSTER_PREFIX)' \
	    bash scripts/deploy-cluster.sh '$(MPI_AARCH64_BIN)'

.DEFAULT_GOAL := $(MPI_SAVED_DEFAULT_GOAL)
