#!/usr/bin/env bash
# Boots a real aarch64 Linux kernel under QEMU system emulation (TCG, virt
# machine, 4 x Cortex-A72, 2 GiB: the Raspberry Pi 4's CPU layout) and runs the
# static aarch64 pifork binary there. Checks (see ci/vm/init.sh):
#   1. `pifork info` runs and reports 4 CPUs and the pidfd backend;
#   2. the kernel sees 4 CPUs;
#   3. `pifork pi --json` runs one worker pinned on each CPU;
#   4. SIGKILL of the parent leaves no worker alive after 2 s.
#
# Usage: ci/test-vm.sh [PATH_TO_AARCH64_PIFORK]
#   (default: $AARCH64_BIN, else target/aarch64-unknown-linux-musl/release/pifork)
#
# Host side needs no emulation: Debian's arm64 kernel and busybox-static are
# downloaded as .debs through a private apt configuration (arm64 indices kept
# under target/vm/apt; the host's apt setup is not touched) and unpacked with
# dpkg-deb. qemu-system-arm and cpio are installed with apt when missing (on
# Debian bookworm qemu-system-arm comes from bookworm-backports, through a
# temporary source list, so that it matches the backported qemu-utils; see
# need_qemu_system in scripts/lib.sh).
#
# Environment:
#   PIFORK_VM_DIR       cache and work directory (default: <target dir>/vm)
#   PIFORK_VM_REFRESH=1 download the kernel and busybox again
#   PIFORK_VM_TIMEOUT   hard limit for the whole VM run in seconds (default 300)
#   PIFORK_VM_PI_TERMS  terms for the pinned pi run (default 600000000)
#   PIFORK_VM_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#   PIFORK_VM_SUITE     Debian suite of the kernel and busybox (default bookworm)
set -euo pipefail

PROG=test-vm
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
pifork_paths
aarch64_bin "${1:-}"
VM_DIR=${PIFORK_VM_DIR:-$TARGET_DIR/vm}
MIRROR=${PIFORK_VM_MIRROR:-http://deb.debian.org/debian}
SUITE=${PIFORK_VM_SUITE:-bookworm}
QEMU_TIMEOUT=${PIFORK_VM_TIMEOUT:-300}
PI_TERMS=${PIFORK_VM_PI_TERMS:-600000000}
NCPUS=4
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

T_START=$(now)

# ---- host tools -----------------------------------------------------------------
need_qemu_system "$MIRROR"
command -v cpio >/dev/null 2>&1 || need_packages cpio
for tool in dpkg-deb gzip timeout python3 awk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH"
done
log "$(qemu-system-aarch64 --version | head -n 1)"

[[ -f $BIN ]] || die "no aarch64 pifork binary at $BIN (run 'make build-aarch64' first)"
T_TOOLS=$(now)

# ---- arm64 kernel and busybox from the Debian archive ---------------------------
mkdir -p "$VM_DIR"
KERNEL=$VM_DIR/vmlinuz
BUSYBOX=$VM_DIR/busybox
if [[ ${PIFORK_VM_REFRESH:-0} == 1 || ! -s $KERNEL || ! -s $BUSYBOX ]]; then
    APT_DIR=$VM_DIR/apt
    fetch_arm64_debs "$APT_DIR" "$MIRROR" "$SUITE" "$KEYRING"
    EXTRACT=$APT_DIR/extract
    mkdir -p "$EXTRACT"
    dpkg-deb --fsys-tarfile "$APT_DIR"/debs/"$KPKG"_*.deb |
        tar -x -C "$EXTRACT" --wildcards './boot/vmlinuz-*'
    dpkg-deb -x "$APT_DIR"/debs/busybox-static_*.deb "$EXTRACT"
    # shellcheck disable=SC2012
    kfile=$(ls "$EXTRACT"/boot/vmlinuz-* | head -n 1)
    [[ -s $kfile && -s $EXTRACT/bin/busybox ]] || die "kernel or busybox missing from the downloaded packages"
    cp "$kfile" "$KERNEL.tmp" && mv "$KERNEL.tmp" "$KERNEL"
    cp "$EXTRACT/bin/busybox" "$BUSYBOX.tmp" && mv "$BUSYBOX.tmp" "$BUSYBOX"
    basename "$kfile" >"$VM_DIR/kernel-version"
    # Keep the small index (for the next refresh) but not the 60 MB kernel package.
    rm -rf "$EXTRACT" "$APT_DIR/debs" "$APT_DIR/cache"
else
    log "using cached kernel $(cat "$VM_DIR/kernel-version" 2>/dev/null || echo vmlinuz) and busybox in $VM_DIR"
fi
T_FETCH=$(now)

# ---- initramfs ------------------------------------------------------------------
INITRD_ROOT=$VM_DIR/initramfs
INITRD=$VM_DIR/initramfs.cpio.gz
rm -rf "$INITRD_ROOT"
mkdir -p "$INITRD_ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp}
install -m 0755 "$BUSYBOX" "$INITRD_ROOT/bin/busybox"
install -m 0755 "$BIN" "$INITRD_ROOT/bin/pifork"
install -m 0755 "$ROOT/ci/vm/init.sh" "$INITRD_ROOT/init"
cat >"$INITRD_ROOT/etc/pifork-vm.conf" <<EOF
PI_TERMS=$PI_TERMS
PI_TIMEOUT=$((QEMU_TIMEOUT * 2 / 3))
EXPECT_CPUS=$NCPUS
EOF
(cd "$INITRD_ROOT" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$INITRD.tmp"
mv "$INITRD.tmp" "$INITRD"
log "initramfs $(stat -c %s "$INITRD") bytes (pifork $(stat -c %s "$BIN") bytes)"

# ---- boot, run, power off -------------------------------------------------------
CONSOLE=$VM_DIR/console.log
log "booting: qemu-system-aarch64 -M virt -cpu cortex-a72 -smp $NCPUS -m 2048 (TCG), limit ${QEMU_TIMEOUT}s"
T_BOOT=$(now)
rc=0
timeout --kill-after=10 "$QEMU_TIMEOUT" qemu-system-aarch64 \
    -M virt -cpu cortex-a72 -smp "$NCPUS" -m 2048 \
    -nographic -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyAMA0 panic=-1 quiet" \
    </dev/null 2>&1 | tee "$CONSOLE" || rc=${PIPESTATUS[0]}
T_END=$(now)
BOOT_S=$(since "$T_BOOT")
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    log "QEMU killed after ${QEMU_TIMEOUT}s (timeout)"
elif [[ $rc -ne 0 ]]; then
    log "QEMU exited with status $rc"
fi
log "timing: tools $(awk -v a="$T_START" -v b="$T_TOOLS" 'BEGIN{printf "%.1f", b-a}')s," \
    "kernel+busybox $(awk -v a="$T_TOOLS" -v b="$T_FETCH" 'BEGIN{printf "%.1f", b-a}')s," \
    "boot-run-poweroff ${BOOT_S}s, total $(awk -v a="$T_START" -v b="$T_END" 'BEGIN{printf "%.1f", b-a}')s"

if python3 "$ROOT/ci/vm/check-console.py" "$CONSOLE" "$NCPUS"; then
    log "PASS (console log: $CONSOLE)"
else
    die "FAIL (console log: $CONSOLE)"
fi
