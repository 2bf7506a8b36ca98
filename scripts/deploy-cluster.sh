#!/usr/bin/env bash
# Copies the aarch64 pifork-mpi to every host of a Pi cluster over ssh, to the same path on
# each (mpirun starts it by that path), after checking that the host is aarch64, has mpirun
# (Debian's openmpi-bin) and a glibc new enough; then prints the hostfile and mpirun line.
#
# Usage: HOSTS="pi1 pi2 ..." [SSH_OPTS=...] [CLUSTER_PREFIX=/usr/local] [DEPLOY_TIMEOUT=300]
#        [CLUSTER_ARCH=aarch64] scripts/deploy-cluster.sh BINARY
#        (normally `make deploy-cluster HOSTS=...`; CLUSTER_ARCH is the `uname -m` the hosts
#        must have, the binary's: make test-mpi deploys this machine's build to a namespace)
# A host is user@host or host; the remote user is root or has passwordless sudo.
set -euo pipefail

PROG=deploy-cluster
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

BIN=${1:?usage: deploy-cluster.sh BINARY}
read -r -a HOST_LIST <<<"${HOSTS:-}"
((${#HOST_LIST[@]})) || die 'HOSTS="pi1 pi2 ..." is required'
PREFIX=${CLUSTER_PREFIX:-/usr/local}
LIMIT=${DEPLOY_TIMEOUT:-300}
ARCH=${CLUSTER_ARCH:-aarch64}
# Word splitting of SSH_OPTS is intended: it holds several options.
read -r -a OPTS <<<"${SSH_OPTS:-}"
OPTS+=(-o ConnectTimeout=30 -o BatchMode=yes)
[[ -f $BIN ]] || die "no binary at $BIN (make build-aarch64-mpi)"
# The newest glibc symbol version the binary needs.
GLIBC=$(readelf -W --dyn-syms "$BIN" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | cut -d_ -f2)
[[ -n $GLIBC ]] || die "$BIN needs no glibc: not a pifork-mpi build"
[[ $PREFIX == /* && $PREFIX != *[\'\ ]* ]] || die "CLUSTER_PREFIX must be an absolute path without quotes or spaces"

remote() { local host=$1; shift; timeout -k 10 "$LIMIT" ssh "${OPTS[@]}" "$host" "$@" </dev/null; }

# Every host is checked before anything is copied.
for host in "${HOST_LIST[@]}"; do
    arch=$(remote "$host" uname -m) || die "$host: ssh failed"
    [[ $arch == "$ARCH" ]] || die "$host is $arch, not $ARCH"
    remote "$host" 'command -v mpirun' >/dev/null ||
        die "$host has no mpirun: run 'sudo apt install openmpi-bin' there"
    have=$(remote "$host" 'getconf GNU_LIBC_VERSION' | awk '{ print $2 }')
    [[ $(printf '%s\n%s\n' "$GLIBC" "$have" | sort -V | head -1) == "$GLIBC" ]] ||
        die "$host has glibc $have; pifork-mpi needs $GLIBC or newer (Debian 12 / Raspberry Pi OS bookworm)"
    log "$host: $arch, $(remote "$host" 'mpirun --version | head -n 1'), glibc $have"
done
for host in "${HOST_LIST[@]}"; do
    stage=$(remote "$host" 'mktemp /tmp/pifork-mpi.XXXXXX')
    timeout -k 10 "$LIMIT" ssh "${OPTS[@]}" "$host" "cat >'$stage'" <"$BIN"
    remote "$host" "set -e; s=''; [ \$(id -u) -eq 0 ] || s='sudo -n'; \
        \$s install -D -m 755 '$stage' '$PREFIX/bin/pifork-mpi'; rm -f '$stage'"
    log "$host: $PREFIX/bin/pifork-mpi installed"
done

echo
echo "hostfile (one rank per Pi; its workers use the Pi's cores):"
for host in "${HOST_LIST[@]}"; do echo "  ${host#*@} slots=1"; done
echo "run from any of them:"
echo "  mpirun --hostfile hostfile --bind-to none --map-by ppr:1:node $PREFIX/bin/pifork-mpi pi --terms 1e12"
