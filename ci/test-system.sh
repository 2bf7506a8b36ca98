#!/usr/bin/env bash
# Whole-system test of the pifork service on an emulated Raspberry Pi 4:
# Debian bookworm arm64 with systemd and sshd, booted in qemu-system-aarch64
# (virt machine, 4 x Cortex-A72, 2 GiB, TCG), reached over ssh on a port
# forwarded to 127.0.0.1 only (the guest itself has no route anywhere).
#
#   1. builds (or reuses) the kernel, initramfs and root file system image
#      (ci/system/build-image.sh; cached under target/system/ by a hash of
#      the scripts that make it);
#   2. boots it, waits for ssh, installs a drop-in with a job sized for TCG;
#   3. runs `make deploy HOST=root@127.0.0.1 SSH_PORT=...` for real;
#   4. checks over ssh: active; READY and STATUS; progress; stop (exit 0, state
#      flushed) and start resuming; SIGKILL and the automatic restart resuming;
#      journal priorities and cadence; the watchdog; the sandbox really in
#      force (the kernel's view of the main process and its mount namespace);
#      reload and SIGHUP to every process of the unit; `pifork status` as an
#      ordinary user; a drop-in that does not fit the state (exit 2, err, no
#      restart loop); a second deploy, then one of a binary that cannot start,
#      rolled back; prints `systemd-analyze security pifork`;
#   5. powers the VM off (QEMU is killed on any exit).
# Ends with "test-system: N passed, M failed"; exit status 1 if any failed.
#
# Usage: ci/test-system.sh [PATH_TO_AARCH64_PIFORK]
# Environment:
#   PIFORK_SYSTEM_DIR      cache and work directory (default: <target dir>/system)
#   PIFORK_SYSTEM_REBUILD=1  rebuild the image even if a cached one matches
#   PIFORK_SYSTEM_TIMEOUT  hard limit for QEMU in seconds (default 900)
#   PIFORK_SYSTEM_TERMS, PIFORK_SYSTEM_CHUNK, PIFORK_SYSTEM_WORKERS
#                          the service's job in the VM (default 2e11, 5e8, all CPUs)
#   PIFORK_SYSTEM_MIRROR, PIFORK_SYSTEM_SUITE   Debian mirror and suite
#   PIFORK_MAKE            how to run make for the deploy (default: make -C <repo>)
set -euo pipefail
shopt -s extglob

PROG=test-system
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
pifork_paths
aarch64_bin "${1:-}"
SYS_DIR=${PIFORK_SYSTEM_DIR:-$TARGET_DIR/system}
QEMU_TIMEOUT=${PIFORK_SYSTEM_TIMEOUT:-900}
TERMS=${PIFORK_SYSTEM_TERMS:-2e11}
CHUNK=${PIFORK_SYSTEM_CHUNK:-5e8}
WORKERS=${PIFORK_SYSTEM_WORKERS:-}
export PIFORK_SYSTEM_MIRROR=${PIFORK_SYSTEM_MIRROR:-http://deb.debian.org/debian}
export PIFORK_SYSTEM_SUITE=${PIFORK_SYSTEM_SUITE:-bookworm}
read -r -a MAKE_CMD <<<"${PIFORK_MAKE:-make -C $ROOT}"
DEPLOY_PREFIX=/usr/local
STATE=/var/lib/pifork

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)

# ---- host tools -------------------------------------------------------------------
# qemu-system-arm: on bookworm from bookworm-backports (see need_qemu_system in lib.sh).
need_qemu_system "$PIFORK_SYSTEM_MIRROR"
need_packages mmdebstrap arch-test e2fsprogs openssh-client cpio debian-archive-keyring
for tool in qemu-system-aarch64 mmdebstrap mkfs.ext4 ssh scp ssh-keygen cpio dpkg-deb timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not on PATH after installing the host packages"
done
[[ -f $BIN ]] || die "no aarch64 pifork binary at $BIN (run 'make build-aarch64' first)"

# mmdebstrap runs the arm64 maintainer scripts through qemu-user: binfmt_misc must
# hand aarch64 ELF binaries to it (scripts/setup-aarch64.sh registers that).
binfmt_ok() {
    local e
    for e in /proc/sys/fs/binfmt_misc/*; do
        [[ -f $e ]] || continue
        grep -qx enabled "$e" 2>/dev/null &&
            grep -q '^magic 7f454c460201010000000000000000000200b700' "$e" && return 0
    done
    return 1
}
if ! binfmt_ok; then
    log "no binfmt_misc entry for aarch64 yet: running scripts/setup-aarch64.sh"
    bash "$ROOT/scripts/setup-aarch64.sh"
    binfmt_ok || die "aarch64 binaries cannot run through binfmt_misc; mmdebstrap needs that"
fi
log "$(qemu-system-aarch64 --version | head -n 1); mmdebstrap $(mmdebstrap --version | awk '{ print $2 }')"
T_TOOLS=$(now)

# ---- ssh key and the image ---------------------------------------------------------
mkdir -p "$SYS_DIR/ssh"
KEY=$SYS_DIR/ssh/id_ed25519
if [[ ! -s $KEY || ! -s $KEY.pub ]]; then
    rm -f "$KEY" "$KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C pifork-test-system -f "$KEY"
fi
chmod 0600 "$KEY"

HASH=$(cat "$ROOT/ci/system/build-image.sh" "$ROOT/ci/system/customize.sh" \
    "$ROOT/ci/system/init" "$KEY.pub" <(echo "$PIFORK_SYSTEM_SUITE $PIFORK_SYSTEM_MIRROR") |
    sha256sum | cut -c1-16)
IMAGE=$SYS_DIR/image-$HASH
if [[ ${PIFORK_SYSTEM_REBUILD:-0} == 1 || ! -f $IMAGE/complete ]]; then
    need_root "build the root file system (mmdebstrap, chroot)"
    rm -rf "$IMAGE.tmp"
    log "building the image (kernel, initramfs, Debian $PIFORK_SYSTEM_SUITE arm64 root file system)"
    attempt=1
    until "${SUDO[@]}" env PIFORK_SYSTEM_SUITE="$PIFORK_SYSTEM_SUITE" PIFORK_SYSTEM_MIRROR="$PIFORK_SYSTEM_MIRROR" \
        bash "$ROOT/ci/system/build-image.sh" "$IMAGE.tmp" "$KEY.pub" >"$SYS_DIR/build.log" 2>&1; do
        grep -E '^(build-image|E):' "$SYS_DIR/build.log" | tail -n 5 >&2 || true
        # qemu-user occasionally crashes in a maintainer script; one more try.
        ((attempt < 2)) || die "building the image failed twice (log: $SYS_DIR/build.log)"
        attempt=$((attempt + 1))
        log "image build failed; trying once more"
    done
    grep '^build-image:' "$SYS_DIR/build.log" || true
    [[ $(id -u) -eq 0 ]] || "${SUDO[@]}" chown -R "$(id -u):$(id -g)" "$IMAGE.tmp"
    touch "$IMAGE.tmp/complete"
    rm -rf "$IMAGE"
    mv "$IMAGE.tmp" "$IMAGE"
    # Older images (other script versions) are dead weight.
    for old in "$SYS_DIR"/image-*; do
        [[ $old == "$IMAGE" ]] || rm -rf "$old"
    done
    IMAGE_S=$(secs "$T_TOOLS")
    log "image built in ${IMAGE_S}s"
else
    IMAGE_S=cached
    log "using the cached image $IMAGE (kernel $(cat "$IMAGE/kernel-version"))"
fi

# ---- boot ----------------------------------------------------------------------------
CONSOLE=$SYS_DIR/console.log
QEMU_PID=
CTL_DIR=
stop_qemu() {
    if [[ -n ${CTL_DIR:-} ]]; then
        ssh -o ControlPath="$CTL_DIR/%p" -O exit -p "${PORT:-22}" root@127.0.0.1 >/dev/null 2>&1 || true
        rm -rf "$CTL_DIR"
    fi
    [[ -n $QEMU_PID ]] || return 0
    if kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$QEMU_PID" 2>/dev/null || true
    fi
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=
}
trap stop_qemu EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_qemu() { # start_qemu PORT: QEMU in the background; the disk image is never written
    : >"$CONSOLE"
    timeout -k 10 "$QEMU_TIMEOUT" qemu-system-aarch64 \
        -M virt -cpu cortex-a72 -smp 4 -m 2048 \
        -display none -no-reboot -monitor none -serial "file:$CONSOLE" \
        -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" \
        -append "console=ttyAMA0 root=/dev/vda rw panic=-1" \
        -drive "file=$IMAGE/rootfs.img,format=raw,if=none,id=disk0,snapshot=on" \
        -device virtio-blk-pci,drive=disk0 \
        -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$1-:22" \
        -device virtio-net-pci,netdev=net0,romfile= \
        </dev/null >"$SYS_DIR/qemu.log" 2>&1 &
    QEMU_PID=$!
}

PORT=
for _ in 1 2 3 4 5; do
    p=$((20000 + RANDOM % 40000))
    port_free "$p" || continue
    start_qemu "$p"
    sleep 1
    if kill -0 "$QEMU_PID" 2>/dev/null; then PORT=$p; break; fi
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=
    log "QEMU did not start on port $p: $(head -c 300 "$SYS_DIR/qemu.log")"
done
[[ -n $PORT ]] || die "could not start QEMU (log: $SYS_DIR/qemu.log)"
log "booting: qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 4 -m 2048 (TCG), ssh on 127.0.0.1:$PORT"

# One shared ssh connection (ControlMaster): under TCG, with the service busy on every
# CPU, a fresh key exchange for each command would cost seconds.
CTL_DIR=$(mktemp -d)
SSH_OPTS="-i $KEY -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
-o LogLevel=ERROR -o BatchMode=yes -o ControlMaster=auto -o ControlPath=$CTL_DIR/%p -o ControlPersist=600"
read -r -a SSH_ARGS <<<"$SSH_OPTS"
# vm_t SECONDS COMMAND, vm COMMAND: run a shell command as root in the VM.
vm_t() {
    local t=$1
    shift
    timeout -k 5 "$t" ssh -p "$PORT" "${SSH_ARGS[@]}" -o ConnectTimeout=20 \
        -o ServerAliveInterval=10 -o ServerAliveCountMax=6 root@127.0.0.1 "$@" </dev/null
}
vm() { vm_t 120 "$@"; }

T_BOOT=$(now)
until vm_t 20 true 2>/dev/null; do
    kill -0 "$QEMU_PID" 2>/dev/null || { tail -n 30 "$CONSOLE" >&2; die "QEMU exited during boot (console: $CONSOLE)"; }
    if awk -v a="$T_BOOT" -v b="$(now)" 'BEGIN { exit !(b - a > 300) }'; then
        tail -n 30 "$CONSOLE" >&2
        die "no ssh after 300 s (console: $CONSOLE)"
    fi
    sleep 2
done
BOOT_S=$(secs "$T_BOOT")
log "ssh answers after ${BOOT_S}s: $(vm 'uname -srm; systemd-analyze time 2>/dev/null | head -n 1' | tr '\n' ' ')"
state=$(vm_t 180 'systemctl is-system-running --wait' 2>/dev/null || true)
log "system state: $state"
[[ $state == running ]] || vm 'systemctl --failed --no-pager' || true

# ---- checks ----------------------------------------------------------------------------
# Each check reports PASS or FAIL and the run goes on; a failed ssh command must not
# end the script.
set +e
NPASS=0
NFAIL=0
FAILED=()
pass() { NPASS=$((NPASS + 1)); log "PASS $1${2:+: $2}"; }
fail() { NFAIL=$((NFAIL + 1)); FAILED+=("$1"); log "FAIL $1${2:+: $2}"; }
show() { sed 's/^/    | /'; } # indent output that goes with a check

prop() { vm "systemctl show -p $1 --value pifork.service" 2>/dev/null; }
chunks_done() { # from pifork status --json
    vm "$DEPLOY_PREFIX/bin/pifork status --state-dir $STATE --json" 2>/dev/null |
        sed -n 's/.*"chunks_done":\([0-9]*\).*/\1/p'
}
# wait_for SECONDS COMMAND...: until COMMAND succeeds (every 2 s); status 1 on timeout.
wait_for() {
    local limit=$1 t0
    shift
    t0=$(now)
    until "$@"; do
        awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && return 1
        sleep 2
    done
}
is_active() { [[ $(vm 'systemctl is-active pifork.service' 2>/dev/null) == active ]]; }
chunks_at_least() { local c; c=$(chunks_done); [[ -n $c && $c -ge $1 ]]; }
invocation_says() { # invocation_says ID TEXT: the service's own log lines of that run contain TEXT
    vm "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$1" 2>/dev/null | grep -qF "$2"
}

# The job for the emulated Pi: small chunks, so progress shows within seconds.
JOB="--terms $TERMS --chunk $CHUNK${WORKERS:+ --workers $WORKERS}"
vm "mkdir -p /etc/systemd/system/pifork.service.d && printf '%s\n' '# make test-system: a job sized for TCG emulation' '[Service]' 'ExecStart=' \
    'ExecStart=$DEPLOY_PREFIX/bin/pifork serve $JOB' > /etc/systemd/system/pifork.service.d/50-test-job.conf" ||
    die "cannot write the drop-in"
log "drop-in: ExecStart=$DEPLOY_PREFIX/bin/pifork serve $JOB"

# -- deploy, for real -------------------------------------------------------------------
T_DEPLOY=$(now)
if "${MAKE_CMD[@]}" --no-print-directory deploy HOST=root@127.0.0.1 SSH_PORT="$PORT" SSH_OPTS="$SSH_OPTS" \
    DEPLOY_PREFIX="$DEPLOY_PREFIX" 2>&1 | show; then
    DEPLOY_S=$(secs "$T_DEPLOY")
    pass deploy "make deploy HOST=root@127.0.0.1 SSH_PORT=$PORT took ${DEPLOY_S}s"
else
    DEPLOY_S=$(secs "$T_DEPLOY")
    fail deploy "make deploy failed after ${DEPLOY_S}s"
fi

# -- the unit as installed, in the VM's own systemd -----------------------------------------
# --man=no: the image leaves out man-db and every man page (Documentation=man:pifork(1)).
out=$(vm 'systemd-analyze verify --man=no /etc/systemd/system/pifork.service 2>&1') || true
if [[ -z $out ]]; then
    pass verify-in-vm "systemd-analyze verify /etc/systemd/system/pifork.service is clean"
else
    fail verify-in-vm "$(printf '%s' "$out" | head -n 5 | tr '\n' ' ')"
fi

# -- active, READY=1, STATUS= -----------------------------------------------------------
if is_active; then
    start_us=$(prop ExecMainStartTimestampMonotonic)
    ready_us=$(prop ActiveEnterTimestampMonotonic)
    pass active "systemctl is-active pifork = active; READY=1 came $(awk -v a="$start_us" -v b="$ready_us" \
        'BEGIN { printf "%.2f", (b - a) / 1e6 }') s after the start (Type=$(prop Type))"
else
    fail active "systemctl is-active pifork = $(vm 'systemctl is-active pifork' || true)"
    vm 'systemctl status pifork --no-pager; journalctl -u pifork --no-pager -n 30' 2>&1 | show || true
fi

has_status() { [[ $(vm 'systemctl status pifork.service --no-pager' 2>/dev/null) == *'Status: "'*'chunks'* ]]; }
first_status=$(prop StatusText)
if wait_for 30 has_status; then
    pass status-line "$(vm 'systemctl status pifork.service --no-pager' | grep -m1 'Status:' | sed 's/^ *//')"
else
    fail status-line "no Status: line in systemctl status pifork within 30 s"
    vm 'systemctl status pifork.service --no-pager' 2>&1 | show || true
fi

# -- progress ------------------------------------------------------------------------------
if wait_for 180 chunks_at_least 2; then
    pass progress "$(chunks_done) chunks done after $(secs "$T_DEPLOY")s"
    status_changed() { later_status=$(prop StatusText); [[ -n $later_status && $later_status != "$first_status" ]]; }
    if wait_for 10 status_changed; then
        pass status-updates "STATUS= went from \"$first_status\" to \"$later_status\""
    else
        fail status-updates "STATUS= did not change: \"$first_status\" then \"$later_status\""
    fi
    vm "$DEPLOY_PREFIX/bin/pifork status --state-dir $STATE" | show
else
    fail progress "fewer than 2 chunks done 180 s after the deploy"
    vm "$DEPLOY_PREFIX/bin/pifork status --state-dir $STATE; journalctl -u pifork --no-pager -n 20" 2>&1 | show || true
fi

# -- stop: STOPPING=1, exit 0, state flushed; start: resumed ------------------------------------
before=$(chunks_done)
inv=$(prop InvocationID)
vm_t 60 'systemctl stop pifork.service' || true
# From SIGTERM (leaving "active") to "inactive", by systemd's clock.
stop_s=$(awk -v a="$(prop ActiveExitTimestampMonotonic)" -v b="$(prop InactiveEnterTimestampMonotonic)" \
    'BEGIN { printf "%.2f", (b - a) / 1e6 }')
result=$(prop Result)
code=$(prop ExecMainCode)
status=$(prop ExecMainStatus)
after_stop=$(chunks_done)
# ExecMainCode 1 is CLD_EXITED.
said=$(vm "journalctl --no-pager -o cat -p info _SYSTEMD_INVOCATION_ID=$inv" | grep -m1 'stopping on SIGTERM')
if [[ $result == success && $code == 1 && $status == 0 && -n $said && -n $after_stop && $after_stop -ge ${before:-0} ]]; then
    pass stop "stopped ${stop_s}s after SIGTERM, exit status 0, Result=success; chunks $before -> $after_stop; \"$said\""
else
    fail stop "after ${stop_s}s: Result=$result ExecMainCode=$code ExecMainStatus=$status; chunks $before -> $after_stop; said: ${said:-nothing}"
fi

vm_t 180 'systemctl start pifork.service' || true
inv=$(prop InvocationID)
if is_active && wait_for 30 invocation_says "$inv" 'pifork serve: resumed'; then
    now_chunks=$(chunks_done)
    if [[ -n $now_chunks && $now_chunks -ge ${after_stop:-0} ]]; then
        pass resume-after-stop "$(vm "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$inv" | grep -m1 'resumed')"
    else
        fail resume-after-stop "chunks went back: $after_stop before the start, $now_chunks after"
    fi
else
    fail resume-after-stop "no 'pifork serve: resumed' line from the new run ($(vm 'systemctl is-active pifork' || true))"
    vm 'journalctl -u pifork.service --no-pager -n 20' 2>&1 | show || true
fi
resumed_at=$(chunks_done)
if wait_for 120 chunks_at_least $((${resumed_at:-0} + 1)); then
    pass progress-after-resume "chunks $resumed_at -> $(chunks_done)"
else
    fail progress-after-resume "no chunk finished within 120 s of the restart (still $resumed_at)"
fi

# -- SIGKILL: Restart=on-failure brings it back, resuming -----------------------------------
pid1=$(prop MainPID)
restarts1=$(prop NRestarts)
before=$(chunks_done)
killed_at=$(vm 'cat /proc/uptime; systemctl kill -s KILL pifork.service' | awk 'NR == 1 { print $1 }')
restarted() {
    [[ $(prop NRestarts) -gt $restarts1 ]] && is_active && [[ $(prop MainPID) != "$pid1" ]]
}
if wait_for 90 restarted; then
    inv=$(prop InvocationID)
    if wait_for 30 invocation_says "$inv" 'pifork serve: resumed'; then
        now_chunks=$(chunks_done)
        if [[ -n $now_chunks && $now_chunks -ge ${before:-0} ]]; then
            back=$(awk -v k="$killed_at" -v a="$(prop ActiveEnterTimestampMonotonic)" 'BEGIN { printf "%.2f", a / 1e6 - k }')
            pass restart-after-kill "main pid $pid1 killed; new main pid $(prop MainPID) active (READY=1) ${back}s \
after the SIGKILL (NRestarts $restarts1 -> $(prop NRestarts)); resumed with $now_chunks chunks (had $before)"
        else
            fail restart-after-kill "chunks went back: $before before the kill, $now_chunks after"
        fi
    else
        fail restart-after-kill "restarted, but no 'pifork serve: resumed' line from the new run"
    fi
else
    fail restart-after-kill "not active again with a new main pid within 90 s of SIGKILL (NRestarts=$(prop NRestarts))"
    vm 'systemctl status pifork.service --no-pager; journalctl -u pifork.service --no-pager -n 20' 2>&1 | show || true
fi
# systemd's own account of the kill and the restart.
vm 'journalctl --no-pager -o short-monotonic UNIT=pifork.service -n 6' | show

# The checks below look at a running service, whatever happened above.
is_active || vm_t 180 'systemctl reset-failed pifork.service; systemctl start pifork.service' || true

# -- journal priorities and cadence: routine lines (start, resume, stop) at info, progress in
# STATUS= with at most one log line per tenth of the chunks or per five minutes, the worker
# that SIGKILL took at err ---------------------------------------------------------------------
own=_SYSTEMD_UNIT=pifork.service
n_info=$(vm "journalctl --no-pager -o cat -p info $own | wc -l")
routine_in_warn=$(vm "journalctl --no-pager -o cat -p warning $own | grep -cE 'resumed from|stopping on|workers on'" || true)
routine_in_info=$(vm "journalctl --no-pager -o cat -p info $own | grep -cE 'resumed from|stopping on|workers on'" || true)
progress=$(vm "journalctl --no-pager -o cat $own | grep -c '^pifork serve: [0-9]*/[0-9]* chunks'" || true)
runs=$(vm "journalctl --no-pager -o cat $own | grep -c 'workers on'" || true)
raw_prefix=$(vm "journalctl --no-pager -o cat $own | grep -c '^<[0-7]>'" || true)
prios=$(vm "journalctl --no-pager -o export $own | sed -n 's/^PRIORITY=//p' | sort | uniq -c | awk '{ printf \"%s lines at %s; \", \$1, \$2 }'")
if [[ ${routine_in_warn:-1} -eq 0 && ${routine_in_info:-0} -ge 3 && ${progress:-99} -le $((11 * ${runs:-1})) &&
    ${raw_prefix:-1} -eq 0 ]]; then
    pass journal-priority "-p info: $n_info lines, $routine_in_info routine ones and none of them at warning; $progress progress lines in $runs runs; ${prios}no raw <N> prefixes"
else
    fail journal-priority "routine lines at warning: $routine_in_warn, at info: $routine_in_info; $progress progress lines in $runs runs; raw <N> prefixes: $raw_prefix; $prios"
fi
vm "journalctl --no-pager -o short-monotonic -p warning $own" | show || true

# -- the sandbox settings as the VM's systemd understood them (an unknown or misspelt
# setting would be ignored with a warning) --------------------------------------------------
want='DynamicUser=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes
PrivateNetwork=yes PrivateUsers=yes PrivateMounts=yes NoNewPrivileges=yes CapabilityBoundingSet=
RestrictAddressFamilies=AF_UNIX RestrictNamespaces=yes RestrictRealtime=yes RestrictSUIDSGID=yes
LockPersonality=yes MemoryDenyWriteExecute=yes RemoveIPC=yes ProtectKernelTunables=yes
ProtectKernelModules=yes ProtectKernelLogs=yes ProtectControlGroups=yes ProtectClock=yes
ProtectHostname=yes ProtectProc=invisible ProcSubset=pid SystemCallArchitectures=native UMask=0077
KillMode=mixed Restart=on-failure TimeoutStopUSec=10s WatchdogUSec=30s StateDirectory=pifork'
names=$(tr ' ' '\n' <<<"$want" | sed -n 's/=.*//p' | paste -sd, -)
got=$(vm "systemctl show -p $names pifork.service; systemctl show -p IPAddressDeny pifork.service")
missing=()
for kv in $want; do
    grep -qxF "$kv" <<<"$got" || missing+=("$kv (got: $(grep "^${kv%%=*}=" <<<"$got" | head -n 1))")
done
deny=$(grep '^IPAddressDeny=' <<<"$got")
if ((${#missing[@]} == 0)) && [[ $deny == *0.0.0.0/0* && $deny == *::/0* ]]; then
    pass sandbox-settings "systemctl show: $(wc -w <<<"$want") settings as written; $deny"
else
    fail sandbox-settings "differ: ${missing[*]} $deny"
fi

# -- the sandbox, as the kernel sees the running service ---------------------------------------
pid=$(prop MainPID)
proc_status=$(vm "grep -E '^(Uid|Gid|NoNewPrivs|Seccomp|CapEff|CapPrm|CapBnd):' /proc/$pid/status" | tr -s '\t ' ' ')
uid=$(awk '/^Uid:/ { print $2 }' <<<"$proc_status")
gid=$(awk '/^Gid:/ { print $2 }' <<<"$proc_status")
worker=$(vm "ps -o pid= --ppid $pid" | awk 'NR == 1 { print $1 }')
worker_status=$(vm "grep -E '^(Uid|NoNewPrivs|Seccomp|CapEff):' /proc/${worker:-0}/status" 2>/dev/null | tr -s '\t ' ' ')
if [[ -n $uid && $uid != 0 && $proc_status == *'NoNewPrivs: 1'* && $proc_status == *'Seccomp: 2'* &&
    $proc_status == *'CapEff: 0000000000000000'* && $proc_status == *'CapBnd: 0000000000000000'* &&
    $worker_status == *'Seccomp: 2'* && $worker_status == *'NoNewPrivs: 1'* ]]; then
    pass sandbox-credentials "main pid $pid: $(tr '\n' ';' <<<"$proc_status") worker $worker: $(tr '\n' ';' <<<"$worker_status")"
else
    fail sandbox-credentials "main pid $pid: $(tr '\n' ';' <<<"$proc_status") worker ${worker:-none}: $(tr '\n' ';' <<<"$worker_status")"
fi

# The mount table of the service's own namespace: / read-only, the state directory writable.
mounts=$(vm "cat /proc/$pid/mountinfo" | awk '$5 == "/" || $5 ~ /^\/var\/lib\/(private\/)?pifork$/ { printf "%s %s; ", $5, $6 }')
if [[ $mounts == *'/ ro,'* && $mounts =~ /var/lib/(private/)?pifork\ rw ]]; then
    pass sandbox-mounts "in the service's mount namespace: $mounts"
else
    fail sandbox-mounts "expected / ro and the state directory rw, found: $mounts"
fi

# Probes from inside the running service's namespaces (nsenter): even root there cannot
# write the system (read-only mounts, not just file modes); /tmp and /var/tmp are private;
# /root is empty; no block devices; no network but lo. As the service's own user, the state
# directory is writable.
probe=pifork-sandbox-probe
probes=$(vm "ns='nsenter -t $pid -m --'
    for d in /etc /usr/bin /var /var/lib /home /root /tmp /var/tmp; do
        if \$ns sh -c 'echo x > \$0/$probe' \$d 2>/dev/null; then echo \$d:written; \$ns rm -f \$d/$probe; else echo \$d:denied; fi
    done
    if nsenter -t $pid -m -S $uid -G $gid -- sh -c 'echo x > $STATE/$probe && rm $STATE/$probe'; then
        echo state-as-service:written; else echo state-as-service:denied; fi
    for d in /tmp /var/tmp; do test -e \$d/$probe && echo host\$d:leaked || echo host\$d:clean; done
    echo /root-inside:\$(\$ns ls -A /root | wc -l) /root-outside:\$(ls -A /root | wc -l)
    \$ns test -e /dev/vda && echo /dev/vda:visible || echo /dev/vda:hidden
    echo net:\$(nsenter -t $pid -n ip -o link | awk -F': ' '{ printf \"%s,\", \$2 }')" 2>&1 | tr '\n' ' ')
expected="/etc:denied /usr/bin:denied /var:denied /var/lib:denied /home:denied /root:denied /tmp:written \
/var/tmp:written state-as-service:written host/tmp:clean host/var/tmp:clean /root-inside:0 /root-outside:+([0-9]) \
/dev/vda:hidden net:lo, "
# shellcheck disable=SC2053 # $expected is a pattern
if [[ $probes == $expected ]]; then
    pass sandbox-probes "$probes"
else
    fail sandbox-probes "got: $probes; expected: $expected"
fi

# -- the watchdog: the run has outlived WatchdogSec several times without a restart --------------
wd=$(prop WatchdogUSec)
restarts=$(prop NRestarts)
long_enough() {
    local enter now
    enter=$(prop ActiveEnterTimestampMonotonic)
    now=$(vm 'cat /proc/uptime' | awk '{ printf "%d", $1 * 1e6 }')
    ((now - enter > 45000000))
}
wait_for 60 long_enough || true
if [[ $wd == 30s ]] && long_enough && [[ $(prop NRestarts) == "$restarts" ]] && is_active &&
    ! vm 'journalctl -u pifork.service --no-pager -o cat' | grep -qi 'watchdog timeout'; then
    pass watchdog "WatchdogSec=$wd; this run active for over 45 s, no watchdog timeout, NRestarts still $restarts"
else
    fail watchdog "WatchdogUSec=$wd NRestarts=$(prop NRestarts) (was $restarts), active=$(vm 'systemctl is-active pifork' || true)"
fi

# -- systemctl reload: the status in the log; SIGHUP to every process of the unit harms nothing ---
pid1=$(prop MainPID)
restarts=$(prop NRestarts)
inv=$(prop InvocationID)
vm_t 60 'systemctl reload pifork.service' || true
if wait_for 20 invocation_says "$inv" 'pifork serve: status: '; then
    pass reload "systemctl reload pifork: $(vm "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$inv" | grep -m1 'status: ')"
else
    fail reload "no 'pifork serve: status:' line after systemctl reload"
fi
vm 'for i in 1 2 3 4 5; do systemctl kill -s HUP pifork.service; sleep 1; done' || true
sleep 3
if is_active && [[ $(prop MainPID) == "$pid1" && $(prop NRestarts) == "$restarts" ]] &&
    ! vm "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$inv" | grep -qE 'died|failed'; then
    pass hup-to-all "5 x systemctl kill -s HUP pifork: still active, main pid $pid1, no worker died"
else
    fail hup-to-all "after 5 HUPs to the unit: active=$(vm 'systemctl is-active pifork' || true) main pid $(prop MainPID) (was $pid1) NRestarts $(prop NRestarts) (was $restarts)"
    vm "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$inv | tail -n 8" | show || true
fi

# -- pifork status as an ordinary user: the state is private, systemd's STATUS= is not -----------
out=$(vm "runuser -u nobody -- $DEPLOY_PREFIX/bin/pifork status 2>&1")
if [[ $out == *'sudo pifork status'* && $out == *'pifork.service: '*' chunks'* ]]; then
    pass status-as-user "$(tr '\n' ' ' <<<"$out")"
else
    fail status-as-user "$out"
fi
if vm "test -s $DEPLOY_PREFIX/share/man/man1/pifork.1"; then
    pass man-page "the deploy installed $DEPLOY_PREFIX/share/man/man1/pifork.1"
else
    fail man-page "no $DEPLOY_PREFIX/share/man/man1/pifork.1 after the deploy"
fi

# -- a drop-in that does not fit the state: exit 2, at err, and no restart loop ------------------
vm "printf '%s\n' '[Service]' 'ExecStart=' 'ExecStart=$DEPLOY_PREFIX/bin/pifork serve --terms 3e11 --chunk $CHUNK' \
    > /etc/systemd/system/pifork.service.d/60-wrong.conf && systemctl daemon-reload" || true
vm_t 120 'systemctl restart pifork.service' 2>/dev/null
sleep 5
result=$(prop Result)
status=$(prop ExecMainStatus)
inv=$(prop InvocationID)
err=$(vm "journalctl --no-pager -o cat -p err _SYSTEMD_INVOCATION_ID=$inv" | grep -m1 'state file')
# A manual restart resets NRestarts: any automatic restart since would show as 1 or more.
if [[ $result == exit-code && $status == 2 && $(prop NRestarts) == 0 && $err == *'systemctl clean --what=state pifork'* ]]; then
    pass config-error "exit status 2, Result=$result, no restart in 5 s (NRestarts 0, RestartSec=1); at err: \"$err\""
else
    fail config-error "Result=$result ExecMainStatus=$status NRestarts $(prop NRestarts); at err: ${err:-nothing}"
fi
vm 'rm -f /etc/systemd/system/pifork.service.d/60-wrong.conf; systemctl daemon-reload; systemctl reset-failed pifork.service' || true
vm_t 180 'systemctl start pifork.service' || true

# -- deploy again, then a binary that cannot start: it is rolled back ----------------------------
good=$(sha256sum <"$BIN" | cut -c1-64)
T_DEPLOY2=$(now)
pid1=$(prop MainPID)
if "${MAKE_CMD[@]}" --no-print-directory deploy HOST=root@127.0.0.1 SSH_PORT="$PORT" SSH_OPTS="$SSH_OPTS" \
    DEPLOY_PREFIX="$DEPLOY_PREFIX" 2>&1 | show && is_active && [[ $(prop MainPID) != "$pid1" ]] &&
    [[ $(vm "sha256sum < $DEPLOY_PREFIX/bin/pifork.previous" | cut -c1-64) == "$good" ]]; then
    pass deploy-again "second deploy active with a new main pid in $(secs "$T_DEPLOY2")s; the previous binary kept"
else
    fail deploy-again "second deploy: active=$(vm 'systemctl is-active pifork' || true)"
fi
BROKEN=$SYS_DIR/broken-pifork
printf '%s\n' '#!/bin/sh' '# A pifork that passes the check of deploy.sh but cannot start the service.' \
    'if [ "$1" = info ]; then echo "kernel: stand-in"; exit 0; fi' 'echo "broken on purpose" >&2' 'exit 1' >"$BROKEN"
chmod 0755 "$BROKEN"
pid1=$(prop MainPID)
out=$(HOST=root@127.0.0.1 SSH_PORT="$PORT" SSH_OPTS="$SSH_OPTS" DEPLOY_PREFIX="$DEPLOY_PREFIX" \
    bash "$ROOT/scripts/deploy.sh" "$BROKEN" "$ROOT/systemd/pifork.service" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 6 | show
now_sha=$(vm "sha256sum < $DEPLOY_PREFIX/bin/pifork" | cut -c1-64)
left=$(vm 'ls -d /tmp/pifork-deploy.* 2>/dev/null | wc -l')
if [[ $rc -ne 0 && $out == *'previous one was put back'* && $now_sha == "$good" ]] && is_active &&
    [[ $(prop MainPID) != "$pid1" && $left == 0 ]]; then
    pass rollback "deploy of a binary that cannot start: exit $rc, the previous binary active again (main pid $(prop MainPID)); no temp dirs left"
else
    fail rollback "exit $rc; binary now ${now_sha:0:12} (good ${good:0:12}); active=$(vm 'systemctl is-active pifork' || true); temp dirs left: $left"
fi

# -- systemd-analyze security, on the real system -------------------------------------------------
security=$(vm 'systemd-analyze security --no-pager pifork.service' 2>&1 || true)
printf '%s\n' "$security" >"$SYS_DIR/security.txt"
score=$(printf '%s\n' "$security" | sed -n 's/^→ Overall exposure level for [^:]*: //p')
printf '%s\n' "$security" | grep -E '^(✗|→)' | show || true
if [[ -n $score ]]; then
    pass security-score "systemd-analyze security pifork: $score (whole report: $SYS_DIR/security.txt)"
else
    fail security-score "no exposure level in: $(printf '%s' "$security" | tail -n 3)"
fi

log "final state:"
vm "$DEPLOY_PREFIX/bin/pifork status --state-dir $STATE" | show || true

# ---- power off --------------------------------------------------------------------------------
vm_t 30 'systemctl poweroff' >/dev/null 2>&1 || true
for _ in $(seq 60); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 1; done
if kill -0 "$QEMU_PID" 2>/dev/null; then
    log "the VM did not power off within 60 s; killing QEMU"
fi
stop_qemu

log "timing: tools $(awk -v a="$T_START" -v b="$T_TOOLS" 'BEGIN { printf "%.1f", b - a }')s," \
    "image ${IMAGE_S}$([[ $IMAGE_S == cached ]] || echo s), boot to ssh ${BOOT_S}s, deploy ${DEPLOY_S}s," \
    "total $(secs "$T_START")s"
((NFAIL == 0)) || log "failed: ${FAILED[*]} (console log: $CONSOLE)"
echo "test-system: $NPASS passed, $NFAIL failed"
((NFAIL == 0))
