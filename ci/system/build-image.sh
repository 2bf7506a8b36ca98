#!/usr/bin/env bash
# Builds the emulated Raspberry Pi 4 that ci/test-system.sh boots:
#   OUT/vmlinuz      Debian's arm64 kernel (unpacked from its .deb on the host,
#                    not installed in the emulated chroot: that takes ~20 min)
#   OUT/initrd.img   busybox + the virtio/ext4 modules + ci/system/init
#   OUT/rootfs.img   ext4 image of a Debian arm64 root file system made with
#                    mmdebstrap: systemd, udev, openssh-server, systemd-networkd
#                    (DHCP), root's authorized key (ci/system/customize.sh)
#
# Usage: build-image.sh OUT_DIR PUBLIC_KEY_FILE
# Environment: PIFORK_SYSTEM_SUITE (default bookworm),
#              PIFORK_SYSTEM_MIRROR (default http://deb.debian.org/debian),
#              PIFORK_SYSTEM_IMAGE_MB (default 1024; the image file is sparse).
# Needs root (mmdebstrap's root mode and chroot), mmdebstrap, arch-test, a
# binfmt_misc entry running aarch64 ELF binaries through qemu-user, mkfs.ext4,
# cpio and dpkg-deb. ci/test-system.sh checks and installs all of that.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: build-image.sh OUT_DIR PUBLIC_KEY_FILE}
PUBKEY=${2:?usage: build-image.sh OUT_DIR PUBLIC_KEY_FILE}
SUITE=${PIFORK_SYSTEM_SUITE:-bookworm}
MIRROR=${PIFORK_SYSTEM_MIRROR:-http://deb.debian.org/debian}
IMAGE_MB=${PIFORK_SYSTEM_IMAGE_MB:-1024}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# dbus: as on Raspberry Pi OS, ordinary users reach systemd through the system bus
# (`systemctl show` as a user, what `pifork status` falls back to).
PACKAGES=systemd,systemd-sysv,udev,openssh-server,iproute2,procps,dbus
# Loaded in this order by the initramfs, each after its dependencies.
MODULES=(virtio_pci virtio_blk virtio_net crc32c_generic ext4 virtio-rng autofs4)

PROG=build-image
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap root mode, chroot)"
[[ -r $PUBKEY ]] || die "no public key at $PUBKEY"
[[ -r $KEYRING ]] || die "$KEYRING missing (package debian-archive-keyring)"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# The work tree lives on a private tmpfs when one can be mounted: dpkg's many
# fsyncs and the clean-up then cost nothing.
WORK=$OUT/work
cleanup() {
    if mountpoint -q "$WORK" 2>/dev/null; then umount -l "$WORK" || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK"
if mount -t tmpfs -o size=3g,mode=0755 pifork-image "$WORK" 2>/dev/null; then
    log "work tree on tmpfs"
fi

# ---- kernel, modules and busybox: arm64 .debs unpacked on the host -------------
T0=$(now)
APT_DIR=$WORK/apt
fetch_arm64_debs "$APT_DIR" "$MIRROR" "$SUITE" "$KEYRING"
KX=$WORK/kernel
mkdir -p "$KX"
dpkg-deb -x "$APT_DIR"/debs/"$KPKG"_*.deb "$KX"
dpkg-deb -x "$APT_DIR"/debs/busybox-static_*.deb "$KX"
KVER=${KPKG#linux-image-}
[[ -s $KX/boot/vmlinuz-$KVER ]] || die "no /boot/vmlinuz-$KVER in $KPKG"
cp "$KX/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
echo "$KVER" >"$OUT/kernel-version"

# ---- initramfs ------------------------------------------------------------------
# Module dependencies come from each module's .modinfo "depends=" field, so no
# depmod is needed on the host.
MODDIR=$KX/lib/modules/$KVER
declare -A MODPATH=() LOADED=()
while IFS= read -r f; do
    n=${f##*/}
    n=${n%.ko}
    MODPATH[${n//-/_}]=$f
done < <(find "$MODDIR/kernel" -name '*.ko')
ORDER=()
add_module() { # add_module NAME: dependencies first
    local name=${1//-/_} dep deps
    [[ -n ${LOADED[$name]:-} ]] && return 0
    [[ -n ${MODPATH[$name]:-} ]] || die "module $1 not found in $KPKG"
    LOADED[$name]=1
    deps=$(tr '\0' '\n' <"${MODPATH[$name]}" | sed -n 's/^depends=//p' | head -n 1)
    for dep in ${deps//,/ }; do add_module "$dep"; done
    ORDER+=("$name")
}
for m in "${MODULES[@]}"; do add_module "$m"; done
IR=$WORK/initramfs
mkdir -p "$IR"/{bin,modules,dev,proc,sys,newroot}
install -m 0755 "$KX/bin/busybox" "$IR/bin/busybox"
install -m 0755 "$HERE/init" "$IR/init"
: >"$IR/modules.order"
for name in "${ORDER[@]}"; do
    cp "${MODPATH[$name]}" "$IR/modules/$name.ko"
    echo "$name.ko" >>"$IR/modules.order"
done
(cd "$IR" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6) >"$OUT/initrd.img"
log "kernel $KVER, initramfs $(stat -c %s "$OUT/initrd.img") bytes (modules: ${ORDER[*]}) in $(secs "$T0")s"

# ---- root file system -----------------------------------------------------------
T1=$(now)
ROOTFS=$WORK/rootfs
log "mmdebstrap --arch=arm64 $SUITE ($PACKAGES)"
PIFORK_SYSTEM_PUBKEY=$PUBKEY mmdebstrap \
    --mode=root --arch=arm64 --variant=minbase --verbose \
    --include="$PACKAGES" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="bash '$HERE/customize.sh' \"\$1\"" \
    "$SUITE" "$ROOTFS" "$MIRROR" </dev/null
log "root file system: $(du -sm "$ROOTFS" | cut -f1) MB in $(secs "$T1")s"

T2=$(now)
rm -f "$OUT/rootfs.img"
truncate -s "${IMAGE_MB}M" "$OUT/rootfs.img"
mkfs.ext4 -q -F -L pifork-root -d "$ROOTFS" "$OUT/rootfs.img"
log "rootfs.img: ${IMAGE_MB} MB ext4 ($(du -m "$OUT/rootfs.img" | cut -f1) MB used) in $(secs "$T2")s"

T3=$(now)
cleanup
log "clean-up in $(secs "$T3")s; done in $(secs "$T0")s"
