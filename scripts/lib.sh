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

# fetch_arm64_debs APT_DIR MIRROR SUITE KEYRING: downloads Debian's current arm64 kernel package
# and busybox-static into APT_DIR/debs through a private apt configuration kept in APT_DIR (the
# host's apt setup is not touched; no emulation needed). Sets KPKG to the kernel package's name.
fetch_arm64_debs() {
    local dir=$1 mirror=$2 suite=$3 keyring=$4
    [[ -r $keyring ]] || die "$keyring missing (package debian-archive-keyring)"
    rm -rf "$dir"
    mkdir -p "$dir"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d,debs}
    : >"$dir/status"
    echo "deb [arch=arm64 signed-by=$keyring] $mirror $suite main" >"$dir/etc/sources.list"
    local opts=(
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
    if [[ $(id -u) -eq 0 ]]; then opts+=(-o "APT::Sandbox::User=root"); fi
    log "fetching the arm64 package index of Debian $suite"
    apt-get "${opts[@]}" update -qq </dev/null
    KPKG=$(apt-cache "${opts[@]}" depends linux-image-arm64 |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-arm64$/ { print $2; exit }')
    [[ -n $KPKG ]] || die "could not resolve linux-image-arm64 in Debian $suite"
    log "downloading $KPKG and busybox-static (arm64)"
    (cd "$dir/debs" && apt-get "${opts[@]}" download "$KPKG" busybox-static </dev/null >/dev/null)
}
