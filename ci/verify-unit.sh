#!/usr/bin/env bash
# Checks the systemd unit without a running systemd (any Debian host, CI):
#   1. `systemd-analyze verify` of the unit as `make install` writes it: it must
#      load cleanly, and its ExecStart must name an executable, so the unit is
#      checked with ExecStart rewritten to a staged stand-in executable;
#   2. `systemd-analyze security --offline=yes`: the exposure score, which must
#      not exceed $PIFORK_UNIT_MAX_EXPOSURE (default 1.0);
#   3. every system call pifork makes is allowed by the unit's SystemCallFilter
#      (as this systemd expands the groups): a missing one would kill the
#      service with SIGSYS.
# Installs Debian's systemd package (for systemd-analyze) when it is missing.
#
# Usage: ci/verify-unit.sh [UNIT_FILE]   (default systemd/pifork.service)
set -euo pipefail

PROG=verify-unit
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
pifork_paths
UNIT=${1:-$ROOT/systemd/pifork.service}
MAX_EXPOSURE=${PIFORK_UNIT_MAX_EXPOSURE:-1.0}
[[ -f $UNIT ]] || die "no unit file at $UNIT"

# System calls of the static aarch64 binary (musl) and the x86_64 build: the
# process model (fork/clone, execve of /proc/self/exe for spawn, pidfds,
# waitid), pinning, the parent-death signal, the task and result channels
# (socketpair, SCM_RIGHTS/SCM_CREDENTIALS messages), sd_notify (an AF_UNIX
# datagram socket), signals, the atomic state file and its lock, and the runtime.
SYSCALLS=(
    fork vfork clone clone3 execve exit exit_group wait4 waitid
    pidfd_open pidfd_send_signal kill tgkill getpid getppid gettid set_tid_address
    sched_setaffinity sched_getaffinity sched_yield getcpu prctl
    socket socketpair sendmsg recvmsg sendto recvfrom setsockopt getsockopt
    pipe2 dup3 fcntl ppoll poll
    rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack
    openat close read write readv writev pwrite64 lseek fsync fdatasync renameat renameat2 rename
    ftruncate unlinkat unlink prlimit64 getrlimit setrlimit geteuid
    mkdirat newfstatat fstat statx getdents64 ioctl
    mmap munmap mprotect madvise mremap brk futex set_robust_list getrandom
    uname clock_gettime clock_nanosleep nanosleep
)

if ! command -v systemd-analyze >/dev/null 2>&1; then
    need_packages systemd
    command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze not on PATH after installing systemd"
fi
log "$(systemd-analyze --version | head -n 1)"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin"
printf '#!/bin/sh\nexit 0\n' >"$STAGE/bin/pifork"
chmod 0755 "$STAGE/bin/pifork"
# The same rewrite as `make install` with BINDIR=$STAGE/bin.
sed "/^[^#]/s|/usr/bin/pifork|$STAGE/bin/pifork|g" "$UNIT" >"$STAGE/pifork.service"
FAILED=0

# ---- 1. verify ----------------------------------------------------------------
out=$(systemd-analyze verify --man=no "$STAGE/pifork.service" 2>&1) && rc=0 || rc=$?
if [[ $rc -eq 0 && -z $out ]]; then
    log "PASS verify: systemd-analyze verify is clean"
else
    printf '%s\n' "$out" >&2
    log "FAIL verify: systemd-analyze verify exited $rc with the messages above"
    FAILED=1
fi

# ---- 2. offline security score ---------------------------------------------------
# --threshold counts in tenths of the printed exposure.
limit=$(awk -v m="$MAX_EXPOSURE" 'BEGIN { printf "%d", m * 10 + 0.5 }')
report=$(systemd-analyze security --no-pager --offline=yes --threshold="$limit" "$STAGE/pifork.service" 2>&1) &&
    rc=0 || rc=$?
score=$(printf '%s\n' "$report" | sed -n 's/^→ Overall exposure level for [^:]*: //p')
printf '%s\n' "$report" | grep -E '^✗' | sed 's/^/    /' || true
if [[ $rc -eq 0 && -n $score ]]; then
    log "PASS security: offline exposure $score (limit $MAX_EXPOSURE)"
else
    log "FAIL security: offline exposure ${score:-unknown} (limit $MAX_EXPOSURE), systemd-analyze exited $rc"
    FAILED=1
fi

# ---- 3. system calls against the filter -----------------------------------------
# `systemd-analyze syscall-filter` lists every group; expand the unit's allow
# list and its deny list (SystemCallFilter=~...) recursively.
groups=$(systemd-analyze syscall-filter --no-pager 2>/dev/null)
expand() { # expand @group|name ...: the system call names
    printf '%s\n' "$groups" | awk -v want="$*" '
        /^@/ { g = $1; next }
        /^ +#/ { next }
        /^ +[@a-z0-9_]/ { m[g] = m[g] " " $1 }
        END {
            n = split(want, q, " ")
            while (n > 0) {
                x = q[n--]
                if (x ~ /^@/) {
                    if (!(x in seen)) { seen[x] = 1; k = split(m[x], b, " "); for (j = 1; j <= k; j++) q[++n] = b[j] }
                } else out[x] = 1
            }
            for (x in out) print x
        }' | sort -u
}
allow=() deny=()
while IFS= read -r line; do
    value=${line#SystemCallFilter=}
    if [[ $value == ~* ]]; then
        read -r -a words <<<"${value#\~}"
        deny+=("${words[@]}")
    else
        read -r -a words <<<"$value"
        allow+=("${words[@]}")
    fi
done < <(grep -E '^SystemCallFilter=' "$UNIT")
((${#allow[@]})) || die "the unit has no SystemCallFilter allow list"
allowed=$(comm -23 <(expand "${allow[@]}") <(expand "${deny[@]}"))
missing=()
for s in "${SYSCALLS[@]}"; do
    grep -qx "$s" <<<"$allowed" || missing+=("$s")
done
if ((${#missing[@]} == 0)); then
    log "PASS syscalls: all ${#SYSCALLS[@]} system calls pifork makes are allowed by SystemCallFilter=${allow[*]} ~${deny[*]}"
else
    log "FAIL syscalls: not allowed by the unit's SystemCallFilter: ${missing[*]}"
    FAILED=1
fi

((FAILED == 0)) || die "$UNIT has problems (see above)"
log "$UNIT: OK"
