#!/usr/bin/env bash
# Deploys pifork as a systemd service to a Raspberry Pi (or any systemd Linux
# host) over ssh, safely:
#   1. one ssh connection for everything (ControlMaster): one login, one
#      password prompt at most;
#   2. the new binary is first run on the target as `pifork info` from where it
#      will live: a binary for another architecture or a noexec mount is caught
#      before anything is replaced;
#   3. the previous binary and unit are kept (pifork.previous), the new ones go in
#      atomically, then daemon-reload, enable, restart (which waits for READY=1);
#   4. if the service does not become active, the previous binary and unit are
#      put back and restarted, and the deploy fails saying so;
#   5. the temp directories, here and there, are removed on every path.
# ExecStart points to $DEPLOY_PREFIX/bin/pifork; the unit goes to
# /etc/systemd/system/pifork.service. Drop-ins in
# /etc/systemd/system/pifork.service.d/ are left alone.
#
# Usage: HOST=user@host [SSH_PORT=22] [SSH_OPTS=...] [DEPLOY_PREFIX=/usr/local]
#        [DEPLOY_TIMEOUT=300] scripts/deploy.sh BINARY UNIT_FILE [MAN_PAGE]
# The man page, if given, goes to $DEPLOY_PREFIX/share/man/man1/pifork.1.
# (normally through `make deploy HOST=...`). The remote user is root or may use
# sudo; a sudo that asks for a password asks once, on this terminal.
# Exit status: 0 deployed and active; 1 failed (rolled back if it got that far);
# 2 bad usage.
set -euo pipefail

PROG=deploy
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { printf '%s: usage: HOST=user@host scripts/deploy.sh BINARY UNIT_FILE [MAN_PAGE]\n' "$PROG" >&2; exit 2; }
BIN=${1:-}
UNIT=${2:-}
MAN=${3:-}
[[ -n $BIN && -n $UNIT && -n ${HOST:-} ]] || usage
PORT=${SSH_PORT:-22}
PREFIX=${DEPLOY_PREFIX:-/usr/local}
LIMIT=${DEPLOY_TIMEOUT:-300}

[[ -f $BIN ]] || die "no binary at $BIN (make build-aarch64)"
[[ $PREFIX == /* && $PREFIX != *[\'\ ]* ]] || die "DEPLOY_PREFIX must be an absolute path without quotes or spaces"
[[ -f $UNIT ]] || die "no unit file at $UNIT"
[[ -z $MAN || -f $MAN ]] || die "no man page at $MAN"
if ! command -v ssh >/dev/null 2>&1 || ! command -v scp >/dev/null 2>&1; then
    die "ssh and scp are needed (Debian package openssh-client)"
fi

T0=$(date +%s.%N)
STAGE=$(mktemp -d)
# The shared connection's socket lives in the stage directory, so it goes with it.
# ssh takes the first value given for an option: the connection sharing set here
# comes before SSH_OPTS (whose word splitting is intended: it holds several options).
read -r -a USER_OPTS <<<"${SSH_OPTS:-}"
SHARED=(-o ControlPath="$STAGE/ssh-%C")
OPTS=(-o ControlMaster=no "${SHARED[@]}" "${USER_OPTS[@]}"
    -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=8)
cleanup() {
    ssh -p "$PORT" "${OPTS[@]}" -O exit "$HOST" >/dev/null 2>&1 || true
    rm -rf "$STAGE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# With a terminal, a sudo password can be typed: the remote script gets a tty and
# timeout(1) leaves it in the foreground.
TTY=()
FG=()
if [[ -t 0 && -t 1 ]]; then
    TTY=(-t)
    FG=(--foreground)
fi
# remote COMMAND: runs COMMAND on the target over the shared connection, no terminal.
remote() { timeout -k 10 "$LIMIT" ssh -p "$PORT" "${OPTS[@]}" -T "$HOST" "$1" </dev/null; }

cp "$BIN" "$STAGE/pifork"
sed "/^[^#]/s|/usr/bin/pifork|$PREFIX/bin/pifork|g" "$UNIT" >"$STAGE/pifork.service"
FILES=("$STAGE/pifork" "$STAGE/pifork.service")
if [[ -n $MAN ]]; then
    cp "$MAN" "$STAGE/pifork.1"
    FILES+=("$STAGE/pifork.1")
fi

log "$HOST:$PORT: $(stat -c %s "$BIN")-byte binary to $PREFIX/bin/pifork, unit to /etc/systemd/system"
# The master connection: the one login (and key or password prompt).
timeout "${FG[@]}" -k 10 "$LIMIT" ssh -p "$PORT" -o ControlMaster=yes -o ControlPersist="$LIMIT" \
    "${SHARED[@]}" "${USER_OPTS[@]}" -o ConnectTimeout=30 -fN "$HOST" ||
    die "cannot reach $HOST over ssh (port $PORT)"
DIR=$(remote 'mktemp -d /tmp/pifork-deploy.XXXXXX') || die "mktemp failed on $HOST"
[[ $DIR == /tmp/pifork-deploy.* ]] || die "mktemp on $HOST gave '$DIR'"
timeout -k 10 "$LIMIT" scp -q -P "$PORT" "${OPTS[@]}" "${FILES[@]}" "$HOST:$DIR/" ||
    { remote "rm -rf '$DIR'" || true; die "copying to $HOST:$DIR failed"; }

# Runs on the target, in its POSIX shell; $1 = the upload directory, $2 = prefix.
# Exit status: 0 active; 3 the binary does not run there (nothing changed);
# 4 not active, rolled back; 5 not active and nothing to roll back to; 1 other.
# shellcheck disable=SC2016
REMOTE_SCRIPT='
dir=$1 prefix=$2
trap "rm -rf \"$dir\"" EXIT
set -e
say() { echo "deploy: $*" >&2; }
if [ "$(id -u)" -eq 0 ]; then S=
elif ! command -v sudo >/dev/null; then say "$(id -un) on $(hostname) is not root and there is no sudo"; exit 1
elif sudo -n true 2>/dev/null; then S="sudo -n"
elif [ -t 0 ]; then S=sudo; sudo -v -p "deploy: [sudo] password for %u on %H: " || exit 1
else say "$(id -un) on $(hostname) needs a sudo password: run make deploy from a terminal"; exit 1
fi
command -v systemctl >/dev/null || { say "no systemctl on $(hostname)"; exit 1; }
bin=$prefix/bin/pifork unit=/etc/systemd/system/pifork.service

# 1. Does the new binary run where it will live?
$S install -d -m 0755 "$prefix/bin"
$S install -m 0755 "$dir/pifork" "$bin.new"
if ! info=$("$bin.new" info 2>&1); then
    $S rm -f "$bin.new"
    mount=$(findmnt -n -o TARGET,OPTIONS -T "$prefix/bin" 2>/dev/null || true)
    say "the new binary does not run on $(hostname) ($(uname -m)): ${info:-no output}"
    case ",${mount#* }," in *,noexec,*) say "$prefix/bin is on a noexec mount: $mount" ;; esac
    exit 3
fi
echo "$info" | sed -n "s/^kernel: /deploy: target: /p; s/^cpus: /deploy: cpus: /p" >&2

# 2. Keep what runs now, put the new one in place.
had_previous=no
if [ -e "$bin" ]; then $S cp -p "$bin" "$bin.previous"; had_previous=yes; fi
if [ -e "$unit" ]; then $S cp -p "$unit" "$unit.previous"; fi
$S mv -f "$bin.new" "$bin"
$S install -m 0644 "$dir/pifork.service" "$unit"
if [ -e "$dir/pifork.1" ]; then
    $S install -d -m 0755 "$prefix/share/man/man1"
    $S install -m 0644 "$dir/pifork.1" "$prefix/share/man/man1/pifork.1"
fi
$S systemctl daemon-reload
$S systemctl enable --quiet pifork.service
say "systemctl restart pifork (waits for READY=1)"
if $S systemctl restart pifork.service && $S systemctl is-active --quiet pifork.service; then
    $S systemctl status pifork.service --no-pager --lines=3 || true
    exit 0
fi

# 3. Not active: back to what ran before.
$S systemctl status pifork.service --no-pager --lines=10 >&2 || true
if [ $had_previous = no ]; then
    say "pifork.service is not active and there is no previous binary to go back to"
    exit 5
fi
say "pifork.service is not active: rolling back to the previous binary and unit"
$S mv -f "$bin.previous" "$bin"
if [ -e "$unit.previous" ]; then $S mv -f "$unit.previous" "$unit"; fi
$S systemctl daemon-reload
$S systemctl reset-failed pifork.service || true
if $S systemctl restart pifork.service && $S systemctl is-active --quiet pifork.service; then
    say "rolled back: the previous pifork is active again"
else
    say "rolled back, but the previous pifork is not active either"
fi
exit 4
'
# Quoted for whatever POSIX shell the remote user logs in with: neither the
# script nor the two paths contain a single quote.
rc=0
if ((${#TTY[@]})); then
    timeout "${FG[@]}" -k 10 "$LIMIT" ssh -p "$PORT" "${OPTS[@]}" -t "$HOST" \
        "sh -c '$REMOTE_SCRIPT' deploy '$DIR' '$PREFIX'" || rc=$?
else
    remote "sh -c '$REMOTE_SCRIPT' deploy '$DIR' '$PREFIX'" || rc=$?
fi
took=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
case $rc in
    0) log "pifork is active on $HOST (${took} s)" ;;
    3) die "nothing changed on $HOST: the new binary does not run there (see above)" ;;
    4) die "the new pifork did not become active on $HOST; the previous one was put back (journalctl -u pifork there)" ;;
    5) die "pifork is not active on $HOST (first deploy, nothing to roll back to; journalctl -u pifork there)" ;;
    *) die "deploying to $HOST failed (status $rc)" ;;
esac
