# Shared by the set-up and test scripts: messages, privileges, Debian packages, Rust targets.
# Source it after setting PROG (the name messages start with).

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# Sets SUDO to what runs a command as root: nothing as root, `sudo -n` with passwordless sudo;
# dies otherwise, naming what needed root ($*).
SUDO=()
need_root() {
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "need root or passwordless sudo to $* (or do it yourself and re-run)"
    fi
}

# need_rust_target TARGET: adds the Rust standard library for TARGET if it is missing.
need_rust_target() {
    command -v rustup >/dev/null 2>&1 || die "rustup not found on PATH; install Rust via rustup first"
    if rustup target list --installed | grep -qx "$1"; then
        log "rust target $1 already installed"
    else
        log "adding rust target $1"
        rustup target add "$1"
    fi
}

# need_packages PACKAGE...: installs the Debian packages that are not installed yet
# (apt-get update first), non-interactively.
need_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            log "package $pkg already installed"
        else
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found; install ${missing[*]} with your package manager"
    need_root "install ${missing[*]}"
    log "installing ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" </dev/null
}
