#!/usr/bin/env bash
# Prepares the aarch64 build of pifork-mpi (make build-aarch64-mpi): the Rust target
# aarch64-unknown-linux-gnu, the aarch64 cross gcc, qemu-user, libclang for the MPI bindings,
# and a private sysroot with Debian's arm64 Open MPI libraries and headers and what they
# load, made from the packages' files (apt-get download + dpkg-deb -x). Installing the arm64
# -dev packages into the host as a foreign architecture would remove the host's own toolchain.
# The sysroot also carries an `mpicc` that answers `-show` for the cross gcc, which is how the
# MPI bindings find the headers and libraries to build against.
#
# Usage: scripts/setup-aarch64-mpi.sh SYSROOT
#   PIFORK_MPI_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   PIFORK_MPI_SUITE    Debian suite (default bookworm: glibc 2.36, as Raspberry Pi OS bookworm)
# Idempotent: a complete sysroot (its stamp file) is left alone.
set -euo pipefail

PROG=setup-aarch64-mpi
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

SYSROOT=${1:?usage: setup-aarch64-mpi.sh SYSROOT}
MIRROR=${PIFORK_MPI_MIRROR:-http://deb.debian.org/debian}
SUITE=${PIFORK_MPI_SUITE:-bookworm}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
STAMP=$SYSROOT/.pifork-sysroot-$SUITE

need_rust_target aarch64-unknown-linux-gnu
need_packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libclang1-14 \
    libclang-common-14-dev debian-archive-keyring

if [[ -f $STAMP ]]; then
    log "sysroot $SYSROOT ready"
    exit 0
fi

APT_DIR=$SYSROOT.apt
arm64_apt "$APT_DIR" "$MIRROR" "$SUITE" "$KEYRING"
# libopenmpi3 and everything it loads (a run under qemu-user needs them all, glibc included);
# of libopenmpi-dev only its own files: the headers and the libmpi.so link.
mapfile -t PKGS < <(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
    --no-conflicts --no-breaks --no-replaces --no-enhances libopenmpi3 </dev/null |
    grep -v '^[ <]' | sort -u)
((${#PKGS[@]} > 10)) || die "could not resolve libopenmpi3's dependencies in Debian $SUITE"
log "downloading libopenmpi-dev and ${#PKGS[@]} packages (arm64)"
(cd "$APT_DIR/debs" && apt-get "${APT_OPTS[@]}" download libopenmpi-dev "${PKGS[@]}" \
    </dev/null >/dev/null)

rm -rf "$SYSROOT"
mkdir -p "$SYSROOT"
for deb in "$APT_DIR"/debs/*.deb; do
    dpkg-deb -x "$deb" "$SYSROOT"
done
rm -rf "$APT_DIR"
LIB=$SYSROOT/usr/lib/aarch64-linux-gnu
[[ -f $LIB/openmpi/include/mpi.h && -e $LIB/openmpi/lib/libmpi.so ]] ||
    die "mpi.h or libmpi.so missing from the arm64 Open MPI packages"
# Absolute symbolic links point into the host; make them point into the sysroot.
find "$SYSROOT" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    ln -sfn "$SYSROOT$(readlink "$link")" "$link"
done

# The compiler wrapper, for the cross gcc and this sysroot. `-show` is what rsmpi's build reads.
cat >"$SYSROOT/mpicc" <<EOF
#!/bin/sh
# mpicc for aarch64-linux-gnu-gcc against the Open MPI in $SYSROOT.
flags="-I$LIB/openmpi/include -L$LIB/openmpi/lib -L$LIB -Wl,-rpath-link,$LIB/openmpi/lib -Wl,-rpath-link,$LIB -Wl,-rpath-link,$SYSROOT/lib/aarch64-linux-gnu -lmpi"
if [ "\${1:-}" = -show ]; then
    echo aarch64-linux-gnu-gcc \$flags
    exit 0
fi
# shellcheck disable=SC2086
exec aarch64-linux-gnu-gcc "\$@" \$flags
EOF
chmod +x "$SYSROOT/mpicc"
touch "$STAMP"
log "sysroot $SYSROOT ready: $(du -sh "$SYSROOT" | cut -f1)"
