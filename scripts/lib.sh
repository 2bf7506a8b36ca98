# Shared by the set-up and test scripts: messages, paths, privileges, Debian packages,
# QEMU system emulation, Rust targets.
# Source it after setting PROG (the name messages start with).

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# pifork_paths: sets ROOT to the repository and TARGET_DIR to cargo's target directory
# ($CARGO_TARGET_DIR, taken relative to ROOT, else ROOT/target), both absolute.
pifork_paths() {
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
}

# aarch64_bin [BINARY]: sets BIN to the static aarch64 pifork binary: BINARY, else $AARCH64_BIN,
# else TARGET_DIR/aarch64-unknown-linux-musl/release/pifork (so pifork_paths comes first);
# a relative path is taken from the current directory and made absolute.
aarch64_bin() {
    BIN=${1:-${AARCH64_BIN:-$TARGET_DIR/aarch64-unknown-linux-musl/release/pifork}}
    case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
}

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

# need_qemu_system [MIRROR]: installs qemu-system-arm when qemu-system-aarch64 is missing.
# On Debian bookworm it comes from bookworm-backports at MIRROR (default deb.debian.org),
# through a source list that is removed right after: bookworm's own qemu-system-arm (7.2)
# conflicts with the backported qemu-utils (10.x) some bookworm machines carry; the backported
# qemu-system-arm fits both. Elsewhere it is the distribution's own package.
need_qemu_system() {
    local mirror=${1:-http://deb.debian.org/debian} codename='' list saved rc=0
    command -v qemu-system-aarch64 >/dev/null 2>&1 && return 0
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    if [[ $codename != bookworm ]]; then
        need_packages qemu-system-arm
    else
        need_root "install qemu-system-arm"
        list=/etc/apt/sources.list.d/pifork-bookworm-backports.list
        log "installing qemu-system-arm from bookworm-backports"
        # The source list is removed even if the script ends early; the caller's EXIT
        # trap is put back afterwards.
        saved=$(trap -p EXIT)
        trap '"${SUDO[@]}" rm -f '"$list" EXIT
        echo "deb $mirror bookworm-backports main" | "${SUDO[@]}" tee "$list" >/dev/null
        { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null &&
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends -t bookworm-backports qemu-system-arm </dev/null; } || rc=$?
        "${SUDO[@]}" rm -f "$list"
        "${SUDO[@]}" apt-get update -qq </dev/null || true
        if [[ -n $saved ]]; then eval "$saved"; else trap - EXIT; fi
        [[ $rc -eq 0 ]] || die "installing qemu-system-arm from bookworm-backports failed (status $rc)"
    fi
    command -v qemu-system-aarch64 >/dev/null 2>&1 ||
        die "qemu-system-aarch64 not on PATH after installing qemu-system-arm"
}

# arm64_apt APT_DIR MIRROR SUITE KEYRING: a private apt configuration for Debian's arm64 packages
# kept in APT_DIR (the host's apt setup is not touched; no emulation needed), its index fetched.
# Sets APT_OPTS to the options that make apt-get and apt-cache use it.
APT_OPTS=()
arm64_apt() {
    local dir=$1 mirror=$2 suite=$3 keyring=$4
    [[ -r $keyring ]] || die "$keyring missing (package debian-archive-keyring)"
    rm -rf "$dir"
    mkdir -p "$dir"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d,debs}
    : >"$dir/status"
    echo "deb [arch=arm64 signed-by=$keyring] $mirror $suite main" >"$dir/etc/sources.list"
    APT_OPTS=(
        -o "Dir::State=$dir"
        -o "Dir::State::Lists=$dir/lists"
        -o "Dir::State::status=$dir/status"
        -o "Dir::Cache=$dir/cache"
        -o "Dir::Etc::SourceList=$dir/etc/sources.list"
        -o "Dir::Etc::SourceParts=$dir/etc/sources.list.d"
        -o "Dir::Etc::Preferences=$dir/etc/preferences"
        -o "Dir::Etc::PreferencesParts=$dir/etc/preferences.d"
        -o "APT::Architecture=arm64"
        -o "APT::Architectures=arm64"
        -o "Acquire::Languages=none"
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
    )
    # As root apt would hand downloads to the _apt user, which cannot write here.
    if [[ $(id -u) -eq 0 ]]; then APT_OPTS+=(-o "APT::Sandbox::User=root"); fi
    log "fetching the arm64 package index of Debian $suite"
    apt-get "${APT_OPTS[@]}" update -qq </dev/null
}

# fetch_arm64_debs APT_DIR MIRROR SUITE KEYRING: downloads Debian's current arm64 kernel package
# and busybox-static into APT_DIR/debs through a private apt configuration (arm64_apt). Sets
# KPKG to the kernel package's name.
fetch_arm64_debs() {
    local dir=$1 suite=$3
    arm64_apt "$@"
    KPKG=$(apt-cache "${APT_OPTS[@]}" depends linux-image-arm64 |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-arm64$/ { print $2; exit }')
    [[ -n $KPKG ]] || die "could not resolve linux-image-arm64 in Debian $suite"
    log "downloading $KPKG and busybox-static (arm64)"
    (cd "$dir/debs" && apt-get "${APT_OPTS[@]}" download "$KPKG" busybox-static </dev/null >/dev/null)
}
