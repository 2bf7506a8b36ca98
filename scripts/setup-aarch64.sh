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

log() { printf 'setup-aarch64: %s\n' "$*"; }
die() { printf 'setup-aarch64: error: %s\n' "$*" >&2; exit 1; }

# ---- Rust target -------------------------------------------------------------
command -v rustup >/dev/null 2>&1 || die "rustup not found on PATH; install Rust via rustup first"
if rustup target list --installed | grep -qx "$TARGET"; then
    log "rust target $TARGET already installed"
else
    log "adding rust target $TARGET"
    rustup target add "$TARGET"
fi

# ---- Debian packages ---------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        log "package $pkg already installed"
    else
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found; install ${missing[*]} with your package manager"
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "need root or passwordless sudo to install: ${missing[*]} (or install them yourself and re-run)"
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "installing ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" </dev/null
fi

command -v qemu-aarch64-static >/dev/null 2>&1 || die "qemu-aarch64-static not on PATH after install"
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || die "aarch64-linux-gnu-gcc not on PATH after install"
log "ready: $(qemu-aarch64-static --version | head -n1); $(aarch64-linux-gnu-gcc --version | head -n1)"

# ---- binfmt_misc -------------------------------------------------------------
# The spawn start method re-executes the current binary. Under qemu-user that exec goes to
# the host kernel, which needs binfmt_misc to hand an aarch64 ELF to qemu. Register it once
# (flag F: the kernel keeps the interpreter open, so it works in any mount namespace).
BINFMT=/proc/sys/fs/binfmt_misc
if ! [[ -e $BINFMT/register ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
    fi
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
elif [[ -w $BINFMT/register ]] || { [[ -e $BINFMT/register ]] && sudo -n true 2>/dev/null; }; then
    qemu=$(readlink -f "$(command -v qemu-aarch64-static)")
    line=':pifork-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':F'
    if [[ -w $BINFMT/register ]]; then
        printf '%s' "$line" > "$BINFMT/register"
    else
        printf '%s' "$line" | sudo -n tee "$BINFMT/register" >/dev/null
    fi
    log "binfmt_misc: registered $qemu for aarch64 ELF binaries"
else
    die "cannot register qemu-aarch64 in binfmt_misc (needs root); the spawn start method cannot run aarch64 binaries without it"
fi
