#!/usr/bin/env bash
# Installs what the Windows build and its tests under Wine need:
#   - the Rust std for x86_64-pc-windows-gnu (rustup),
#   - gcc-mingw-w64-x86-64 (linker for that target, and compiler of the shim below),
#   - wine64 (runs the Windows test executables on Linux),
# then builds the Wine-only bcryptprimitives.dll shim (ci/wine-shim/) and creates
# the throwaway Wine prefix once (its first start is slow).
# Idempotent: anything already present is left alone. Works non-interactively
# (CI=true, no stdin), as root or through passwordless sudo.
set -euo pipefail

PROG=setup-windows
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
pifork_paths
cd "$ROOT"

TARGET="${WINDOWS_TARGET:-x86_64-pc-windows-gnu}"
APT_PACKAGES=(wine64 gcc-mingw-w64-x86-64)
WINE="${WINE:-/usr/lib/wine/wine64}"
MINGW_GCC=x86_64-w64-mingw32-gcc
SHIM_SRC=ci/wine-shim/bcryptprimitives.c
SHIM_DLL="$TARGET_DIR/wine-shim/bcryptprimitives.dll"
PREFIX="${WINEPREFIX:-$TARGET_DIR/wine-prefix}"
PREFIX_TIMEOUT="${WINE_PREFIX_TIMEOUT:-180}"

# ---- Rust target -------------------------------------------------------------
need_rust_target "$TARGET"

# ---- Debian packages ---------------------------------------------------------
need_packages "${APT_PACKAGES[@]}"

[[ -x $WINE ]] || die "$WINE not found after installing wine64"
command -v "$MINGW_GCC" >/dev/null 2>&1 || die "$MINGW_GCC not on PATH after install"

# ---- the Wine-only ProcessPrng shim -------------------------------------------
if [[ -f $SHIM_DLL && $SHIM_DLL -nt $SHIM_SRC ]]; then
    log "shim $SHIM_DLL up to date"
else
    log "building $SHIM_DLL"
    mkdir -p "$(dirname "$SHIM_DLL")"
    "$MINGW_GCC" -shared -O2 -Wall -Wextra -Werror -o "$SHIM_DLL.tmp" "$SHIM_SRC" -ladvapi32
    mv "$SHIM_DLL.tmp" "$SHIM_DLL"
fi

# ---- the Wine prefix ------------------------------------------------------------
# Created once here, with a timeout: the first start of Wine sets up a whole Windows tree.
# Gecko and Mono are not wanted (they would ask to be downloaded).
if [[ -f $PREFIX/system.reg ]]; then
    log "wine prefix $PREFIX already exists"
else
    log "creating wine prefix $PREFIX (first start of wine; takes a while)"
    mkdir -p "$PREFIX"
    if ! WINEPREFIX="$PREFIX" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY= \
        timeout -k 10 "$PREFIX_TIMEOUT" "$WINE" wineboot --init </dev/null >/dev/null 2>&1; then
        rm -rf "$PREFIX"
        die "wine did not set up its prefix within ${PREFIX_TIMEOUT}s"
    fi
    # Let wineserver finish writing the registry before anyone uses the prefix.
    WINEPREFIX="$PREFIX" timeout -k 5 60 /usr/lib/wine/wineserver -w || true
    [[ -f $PREFIX/system.reg ]] || die "wine prefix $PREFIX is incomplete (no system.reg)"
fi

log "ready: $("$WINE" --version); $("$MINGW_GCC" --version | head -n1)"
