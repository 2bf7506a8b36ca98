#!/usr/bin/env bash
# Tests pifork-mpi under Open MPI's mpirun (make test-mpi):
#   1. 1 to 4 ranks, 1 and 2 workers per rank, forkserver and spawn: the same estimate, bit
#      for bit, as `pifork pi` with the same terms (also with more ranks than chunks);
#   2. bad input (also an argument that is not UTF-8): exit 2 from mpirun, one line from
#      rank 0, no panic, no rank left;
#      a rank bound to fewer CPUs than its workers warns once, naming --bind-to none;
#   3. a rank SIGKILLed mid-run, and a worker: mpirun exits non-zero, no rank, fork server or
#      worker is left (a dead worker is reported by its rank, which aborts the job);
#   4. two hosts: two network namespaces joined by a veth pair on a private /30, sshd in one of
#      them listening only on its veth address with a key made for the run; deploy-cluster.sh
#      refuses it for another architecture, then installs there; mpirun with a hostfile across
#      both: the same bits.
# Usage: ci/test-mpi.sh PIFORK-MPI PIFORK   (both built already; see mk/mpi.mk)
# Everything started here is stopped by pid on every exit path.
set -euo pipefail

PROG=test-mpi
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 PIFORK-MPI PIFORK"
MPI_BIN=$(realpath "$1")
PIFORK=$(realpath "$2")
[[ -x $MPI_BIN && -x $PIFORK ]] || die "$1 or $2 is not an executable"

# Open MPI refuses root unless told; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Seconds any one mpirun may take before it is stopped and the test fails.
LIMIT=${MPI_TEST_TIMEOUT:-120}

WORK=$(mktemp -d /tmp/pifork-mpi-test.XXXXXX)
PIDS=()
NETNS=()
cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# forget PID: takes a reaped pid off the list the exit path stops (the number may be reused).
forget() {
    local pid kept=()
    for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
    PIDS=("${kept[@]}")
}

fail() { printf '%s: FAIL: %s\n' "$PROG" "$*" >&2; exit 1; }

# estimate JSON: the estimate field, exactly as printed (shortest round-trip form: equal text
# means equal bits).
estimate() { sed -n 's/.*"estimate":\([^,]*\),.*/\1/p' <<<"$1"; }

# descendants PID: every process below PID, one pid a line.
descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

# none_alive PID...: fails naming any of the pids that still runs (a zombie counts: nobody
# reaped it).
none_alive() {
    local pid left=()
    for _ in $(seq 50); do
        left=()
        for pid in "$@"; do [[ -e /proc/$pid ]] && left+=("$pid"); done
        ((${#left[@]})) || return 0
        sleep 0.1
    done
    for pid in "${left[@]}"; do ps -o pid=,stat=,args= -p "$pid" >&2 || true; done
    fail "processes left behind: ${left[*]}"
}

mpirun_() { timeout "$LIMIT" mpirun --oversubscribe "$@" </dev/null; }

# ---- 1. the same bits for 1 to 4 ranks ---------------------------------------------------------
for terms in 1e9 123457 3; do
    want=$(estimate "$("$PIFORK" pi --terms "$terms" --json)")
    [[ -n $want ]] || fail "pifork pi --terms $terms gave no estimate"
    for ranks in 1 2 3 4; do
        for wpr in 1 2; do
            for start in forkserver spawn; do
                out=$(mpirun_ -n "$ranks" --bind-to none "$MPI_BIN" pi --terms "$terms" \
                    --workers-per-rank "$wpr" --start "$start" --json)
                got=$(estimate "$out")
                [[ $got == "$want" ]] ||
                    fail "$ranks ranks x $wpr workers ($start), $terms terms: $got, pifork pi: $want"
                n=$(grep -o '"rank":' <<<"$out" | wc -l)
                [[ $n -eq $ranks ]] || fail "$ranks ranks but $n rank reports: $out"
            done
        done
        log "$terms terms, $ranks rank(s) x 1 and 2 workers, forkserver and spawn: $want, as pifork pi"
    done
done
text=$(mpirun_ -n 2 --bind-to none "$MPI_BIN" pi --terms 1e9 --correct)
want=$("$PIFORK" pi --terms 1e9 --correct | sed -n '1,4p')
[[ $(sed -n '1,4p' <<<"$text") == "$want" ]] || fail "text report differs from pifork pi:
$text"
[[ $(grep -c '^rank [01]: host .* workers 2 cpus 2 chunks 24 busy' <<<"$text") -eq 2 ]] ||
    fail "no rank lines in the text report:
$text"
log "text report: pifork pi's lines, then one per rank"

# ---- 2. bad input; the affinity warning -------------------------------------------------------
# The last is not UTF-8 (a byte 0xff): refused like the rest, not a panic.
for bad in "--terms 0" "--terms abc" "--workers-per-rank 0" "--start fork" "--bogus" \
    $'--terms \xff'; do
    rc=0
    # shellcheck disable=SC2086
    mpirun_ -n 3 "$MPI_BIN" pi $bad >"$WORK/out" 2>"$WORK/err" || rc=$?
    [[ $rc -eq 2 ]] || fail "pi $bad: mpirun exit $rc, want 2"
    lines=$(grep -c '^pifork-mpi:' "$WORK/err" || true)
    [[ $lines -eq 1 ]] || fail "pi $bad: $lines lines from pifork-mpi, want 1:
$(cat "$WORK/err")"
    ! grep -q panicked "$WORK/err" || fail "pi $bad panicked: $(cat "$WORK/err")"
    [[ ! -s $WORK/out ]] || fail "pi $bad printed a report"
done
grep -q '^pifork-mpi: argument 3 is not valid UTF-8' "$WORK/err" ||
    fail "pi --terms 0xff: $(cat "$WORK/err")"
log "bad input (also an argument that is not UTF-8): exit 2, one line, from rank 0, no panic"
# Open MPI binds each of 2 ranks to one core by default.
mpirun_ -n 2 --bind-to core "$MPI_BIN" pi --terms 1e8 --workers-per-rank 2 >"$WORK/out" 2>"$WORK/err"
for r in 0 1; do
    n=$(grep -c "^pifork-mpi: warning: rank $r .*may use 1 CPU but 2 workers.*--bind-to none" \
        "$WORK/err" || true)
    [[ $n -eq 1 ]] || fail "rank $r warned $n times about its CPUs:
$(cat "$WORK/err")"
done
log "a rank with fewer CPUs than workers warns once, naming --bind-to none"

# ---- 3. a rank or a worker SIGKILLed mid-run --------------------------------------------------
for case in "forkserver rank" "spawn rank" "spawn worker"; do
    read -r start what <<<"$case"
    mpirun --oversubscribe -n 2 --bind-to none "$MPI_BIN" pi --terms 1e15 \
        --workers-per-rank 2 --start "$start" </dev/null >"$WORK/out" 2>"$WORK/err" &
    MPIRUN=$!
    PIDS+=("$MPIRUN")
    # Wait until both ranks have their workers: 2 ranks x (2 workers + the fork server, if any).
    [[ $start == forkserver ]] && want=8 || want=6
    procs=()
    for _ in $(seq 200); do
        mapfile -t procs < <(descendants "$MPIRUN")
        ((${#procs[@]} >= want)) && break
        sleep 0.1
    done
    ((${#procs[@]} >= want)) || fail "$start: the ranks did not start their workers: ${procs[*]}"
    victim=''
    for pid in "${procs[@]}"; do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 &&
            [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$MPI_BIN" ]] &&
            [[ $(ps -o ppid= -p "$pid" | tr -d ' ') == "$MPIRUN" ]]; then
            victim=$pid
        fi
    done
    [[ -n $victim ]] || fail "$start: rank 1 not found among ${procs[*]}"
    # A spawned worker is a child of its rank.
    [[ $what == rank ]] || victim=$(pgrep -P "$victim" | head -n 1)
    [[ -n $victim ]] || fail "$start: no worker of rank 1 found"
    sleep 0.5
    kill -KILL "$victim"
    rc=0
    for _ in $(seq $((LIMIT * 10))); do kill -0 "$MPIRUN" 2>/dev/null || break; sleep 0.1; done
    wait "$MPIRUN" || rc=$?
    forget "$MPIRUN"
    [[ $rc -ne 0 ]] || fail "$start: mpirun exited 0 after a $what was killed"
    if [[ $what == worker ]]; then
        grep -q "^pifork-mpi: rank 1: worker [01] (pid $victim) died" "$WORK/err" ||
            fail "rank 1 did not report its worker's death: $(cat "$WORK/err")"
    fi
    none_alive "${procs[@]}"
    [[ $what == rank ]] && label="rank 1" || label="a worker of rank 1"
    log "$start: $label (pid $victim) SIGKILLed: mpirun exit $rc, none of ${#procs[@]} processes left"
done

# ---- 4. two hosts: two network namespaces, ssh between them -----------------------------------
command -v sshd >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
command -v sshd >/dev/null 2>&1 || die "sshd not found (package openssh-server)"
A=pifork-mpi-a-$$ B=pifork-mpi-b-$$
ip netns add "$A" || die "ip netns add failed: network namespaces unavailable here"
NETNS+=("$A")
ip netns add "$B"
NETNS+=("$B")
ip -n "$A" link add veth-a type veth peer name veth-b netns "$B"
ip -n "$A" addr add 10.213.7.1/30 dev veth-a
ip -n "$B" addr add 10.213.7.2/30 dev veth-b
for ns in "$A" "$B"; do
    ip -n "$ns" link set lo up
done
ip -n "$A" link set veth-a up
ip -n "$B" link set veth-b up

ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
cp "$WORK/client_key.pub" "$WORK/authorized_keys"
cat >"$WORK/sshd_config" <<EOF
ListenAddress 10.213.7.2:22
HostKey $WORK/host_key
AuthorizedKeysFile $WORK/authorized_keys
PidFile $WORK/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv OMPI_*
EOF
mkdir -p /run/sshd
# Each namespace is a host of its own name (its own UTS namespace), as on a cluster.
ip netns exec "$B" unshare --uts sh -c 'hostname pifork-b && exec "$0" -D -e -f "$1"' \
    "$(command -v sshd)" "$WORK/sshd_config" 2>"$WORK/sshd.log" &
PIDS+=("$!")
cat >"$WORK/ssh" <<EOF
#!/bin/sh
exec ssh -i "$WORK/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \\
    -o BatchMode=yes -o LogLevel=ERROR "\$@"
EOF
chmod +x "$WORK/ssh"
for _ in $(seq 50); do
    ip netns exec "$A" "$WORK/ssh" 10.213.7.2 true 2>/dev/null </dev/null && break
    sleep 0.2
done
ip netns exec "$A" "$WORK/ssh" 10.213.7.2 true </dev/null ||
    fail "no ssh from namespace $A to 10.213.7.2: $(cat "$WORK/sshd.log")"
# make deploy-cluster's script, to the namespace host: it refuses another architecture, then
# installs this machine's build there and prints the line to run.
deploy() {
    ip netns exec "$A" env HOSTS=10.213.7.2 CLUSTER_PREFIX="$WORK/cluster" DEPLOY_TIMEOUT=60 \
        SSH_OPTS="-i $WORK/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR" \
        "$@" bash "$(dirname "$0")/../scripts/deploy-cluster.sh" "$MPI_BIN" </dev/null
}
other=aarch64
[[ $(uname -m) != aarch64 ]] || other=x86_64
if deploy CLUSTER_ARCH=$other >"$WORK/out" 2>&1; then fail "deploy-cluster took an $(uname -m) host for $other"; fi
grep -q "10.213.7.2 is $(uname -m), not $other" "$WORK/out" || fail "deploy-cluster: $(cat "$WORK/out")"
[[ ! -e $WORK/cluster ]] || fail "deploy-cluster copied to a host it refused"
deploy CLUSTER_ARCH="$(uname -m)" >"$WORK/out" 2>&1 || fail "deploy-cluster failed: $(cat "$WORK/out")"
DEPLOYED=$WORK/cluster/bin/pifork-mpi
cmp -s "$DEPLOYED" "$MPI_BIN" || fail "deploy-cluster did not install the binary"
grep -q "mpirun --hostfile hostfile --bind-to none --map-by ppr:1:node $DEPLOYED pi" "$WORK/out" ||
    fail "deploy-cluster printed no mpirun line: $(cat "$WORK/out")"
log "deploy-cluster: refuses another architecture, installs, prints the mpirun line"

printf '10.213.7.1 slots=1\n10.213.7.2 slots=1\n' >"$WORK/hostfile"
want=$(estimate "$("$PIFORK" pi --terms 1e10 --json)")
started=$(date +%s%N)
ip netns exec "$A" unshare --uts sh -c 'hostname pifork-a && exec "$@"' sh \
    timeout "$LIMIT" mpirun --hostfile "$WORK/hostfile" -n 2 --bind-to none \
    --map-by ppr:1:node --mca plm_rsh_agent "$WORK/ssh" \
    --mca oob_tcp_if_include 10.213.7.0/30 --mca btl_tcp_if_include 10.213.7.0/30 \
    --mca btl self,tcp -x PATH \
    "$DEPLOYED" pi --terms 1e10 --json </dev/null >"$WORK/out" 2>"$WORK/err" ||
    fail "mpirun across two namespaces failed: $(cat "$WORK/err")"
ms=$((($(date +%s%N) - started) / 1000000))
out=$(cat "$WORK/out")
got=$(estimate "$out")
[[ $got == "$want" ]] || fail "two hosts: $got, pifork pi: $want"
for host in pifork-a pifork-b; do
    grep -q "\"host\":\"$host\"" <<<"$out" || fail "no rank ran on $host: $out"
done
log "two hosts (namespaces $A, $B over 10.213.7.0/30): 1e10 terms, $want as pifork pi, mpirun $ms ms"
log "all passed"
