#!/usr/bin/env bash
# Deploys pifork as a systemd service to a Raspberry Pi (or any systemd Linux
# host) over ssh: copies the static aarch64 binary to $DEPLOY_PREFIX/bin/pifork
# (atomically, so a running service keeps its old binary until restarted) and
# the unit, with ExecStart pointing there, to /etc/systemd/system/pifork.service;
# then daemon-reload, enable, (re)start (which waits for READY=1) and status.
# Drop-ins in /etc/systemd/system/pifork.service.d/ are left alone.
#
# Usage: HOST=user@host [SSH_PORT=22] [SSH_OPTS=...] [DEPLOY_PREFIX=/usr/local]
#        [DEPLOY_TIMEOUT=300] scripts/deploy.sh BINARY UNIT_FILE
# (normally through `make deploy HOST=...`). The remote user is root or has
# passwordless sudo.
set -euo pipefail

PROG=deploy
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

BIN=${1:?usage: deploy.sh BINARY UNIT_FILE}
UNIT=${2:?usage: deploy.sh BINARY UNIT_FILE}
HOST=${HOST:?HOST=user@host is required}
PORT=${SSH_PORT:-22}
PREFIX=${DEPLOY_PREFIX:-/usr/local}
LIMIT=${DEPLOY_TIMEOUT:-300}
# Word splitting of SSH_OPTS is intended: it holds several options.
read -r -a OPTS <<<"${SSH_OPTS:-}"
OPTS+=(-o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=8)

[[ -f $BIN ]] || die "no binary at $BIN (make build-aarch64)"
[[ $PREFIX == /* && $PREFIX != *[\'\ ]* ]] || die "DEPLOY_PREFIX must be an absolute path without quotes or spaces"
[[ -f $UNIT ]] || die "no unit file at $UNIT"
if ! command -v ssh >/dev/null 2>&1 || ! command -v scp >/dev/null 2>&1; then
    die "ssh and scp are needed (Debian package openssh-client)"
fi

remote() { timeout -k 10 "$LIMIT" ssh -p "$PORT" "${OPTS[@]}" "$HOST" "$@"; }

T0=$(date +%s.%N)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp "$BIN" "$STAGE/pifork"
sed "/^[^#]/s|/usr/bin/pifork|$PREFIX/bin/pifork|g" "$UNIT" >"$STAGE/pifork.service"

log "$HOST:$PORT: $(stat -c %s "$BIN")-byte binary to $PREFIX/bin/pifork, unit to /etc/systemd/system"
DIR=$(remote 'mktemp -d /tmp/pifork-deploy.XXXXXX') || die "cannot reach $HOST over ssh (port $PORT)"
timeout -k 10 "$LIMIT" scp -q -P "$PORT" "${OPTS[@]}" "$STAGE/pifork" "$STAGE/pifork.service" "$HOST:$DIR/" ||
    die "copying to $HOST:$DIR failed"

# Runs on the target, in its POSIX shell; $1 = the upload directory, $2 = prefix.
# shellcheck disable=SC2016
REMOTE_SCRIPT='
set -e
dir=$1 prefix=$2
if [ "$(id -u)" -eq 0 ]; then S=; elif sudo -n true 2>/dev/null; then S="sudo -n";
else echo "deploy: $(id -un) on $(hostname) is neither root nor has passwordless sudo" >&2; rm -rf "$dir"; exit 1; fi
command -v systemctl >/dev/null || { echo "deploy: no systemctl on $(hostname)" >&2; exit 1; }
$S install -d -m 0755 "$prefix/bin"
$S install -m 0755 "$dir/pifork" "$prefix/bin/.pifork.new"
$S mv -f "$prefix/bin/.pifork.new" "$prefix/bin/pifork"
$S install -m 0644 "$dir/pifork.service" /etc/systemd/system/pifork.service
rm -rf "$dir"
$S systemctl daemon-reload
$S systemctl enable pifork.service
echo "deploy: systemctl restart pifork (waits for READY=1)"
$S systemctl restart pifork.service || true
$S systemctl status pifork.service --no-pager --lines=5 || true
$S systemctl is-active --quiet pifork.service
'
# Quoted for whatever POSIX shell the remote user logs in with: neither the
# script nor the two paths contain a single quote.
if remote "sh -c '$REMOTE_SCRIPT' deploy '$DIR' '$PREFIX'"; then
    log "pifork is active on $HOST ($(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"
else
    die "pifork is not active on $HOST (see the status above; journalctl -u pifork there)"
fi
