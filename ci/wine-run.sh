#!/usr/bin/env bash
# Runs a Windows executable under Wine: cargo's runner for x86_64-pc-windows-gnu
# (CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER), set by mk/windows.mk.
#
#   ci/wine-run.sh path/to/program.exe [args...]
#
# Uses a throwaway prefix under target/ (made by scripts/setup-windows.sh, or here on
# first use) and places the Wine-only bcryptprimitives.dll shim beside the executable:
# Wine 8.0 lacks ProcessPrng, which Rust's std imports (see ci/wine-shim/).
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 program.exe [args...]" >&2; exit 2; }

PROG="wine-run"
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
pifork_paths
wine="${WINE:-/usr/lib/wine/wine64}"
shim="$TARGET_DIR/wine-shim/bcryptprimitives.dll"

[[ -x $wine ]] || { echo "wine-run: $wine not found; run 'make setup-windows'" >&2; exit 2; }

exe="$1"
shift
exe_dir="$(dirname "$exe")"
if [[ -f $shim ]] && ! cmp -s "$shim" "$exe_dir/bcryptprimitives.dll"; then
    cp "$shim" "$exe_dir/bcryptprimitives.dll"
fi

export WINEPREFIX="${WINEPREFIX:-$TARGET_DIR/wine-prefix}"
export WINEDEBUG=-all
# The shim beside the executable, not a builtin of the same name; no Gecko or Mono
# download prompts; no display needed.
export WINEDLLOVERRIDES="bcryptprimitives=n,b;mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
mkdir -p "$WINEPREFIX"
exec "$wine" "$exe" "$@"
