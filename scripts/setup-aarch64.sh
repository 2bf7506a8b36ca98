#!/usr/bin/env bash
# Installs what the aarch64 appliance build and its user-mode tests need:
#   - the Rust std for aarch64-unknown-linux-musl (rustup),
#   - qemu-user-static (runs aarch64 test binaries on an x86_64 host),
#   - gcc-aarch64-linux-gnu (used as the linker for the static musl binary).
# Idempotent: anything already present is left alone. Works non-interactively
# (CI=true, no stdin), as root or through sudo.
set -euo pipefail

TARGET="${AARCH64_TARGET:-aarch64-unknown-linux-musl}"
APT_PACKAGES=(qemu-user-static gcc-aarch64-linux-gnu)

PROG=setup-aarch64
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- Rust target -------------------------------------------------------------
need_rust_target "$TARGET"

# ---- Debian packages ---------------------------------------------------------
need_packages "${APT_PACKAGES[@]}"

command -v qemu-aarch64-static >/dev/null 2>&1 || die "qemu-aarch64-static not on PATH after install"
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || die "aarch64-linux-gnu-gcc not on PATH after install"
log "ready: $(qemu-aarch64-static --version | head -n1); $(aarch64-linux-gnu-gcc --version | head -n1)"

# ---- binfmt_misc -------------------------------------------------------------
# The spawn start method re-executes the current binary. Under qemu-user that exec goes to
# the host kernel, which needs binfmt_misc to hand an aarch64 ELF to qemu. Register it once
# (flag F: the kernel keeps the interpreter open, so it works in any mount namespace).
BINFMT=/proc/sys/fs/binfmt_misc
if ! [[ -e $BINFMT/register ]]; then
    need_root "mount binfmt_misc"
    "${SUDO[@]}" mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
registered=""
for entry in "$BINFMT"/*; do
    [[ -f $entry && $(basename "$entry") != register && $(basename "$entry") != status ]] || continue
    if grep -qx enabled "$entry" && grep -q '^magic 7f454c460201010000000000000000000200b700' "$entry"; then
        registered=$(basename "$entry")
    fi
done
if [[ -n $registered ]]; then
    log "binfmt_misc: aarch64 already handled by '$registered'"
else
    need_root "register qemu-aarch64 in binfmt_misc (the spawn start method needs it under qemu-user)"
    qemu=$(readlink -f "$(command -v qemu-aarch64-static)")
    line=':pifork-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':F'
    printf '%s' "$line" | "${SUDO[@]}" tee "$BINFMT/register" >/dev/null
    log "binfmt_misc: registered $qemu for aarch64 ELF binaries"
fi
