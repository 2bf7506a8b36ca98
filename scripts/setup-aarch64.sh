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
