#!/bin/busybox sh
# /init of the aarch64 test VM (PID 1 inside an initramfs that holds only a
# static busybox, the static pifork binary and this script).
#
# Runs the appliance checks and prints one marker line per check on the serial
# console:
#     PIFORK-VM: PASS <check> [(details)]
#     PIFORK-VM: FAIL <check> [(details)]
# followed by "PIFORK-VM: DONE pass=N fail=M", then powers the VM off.
# Output blocks to be parsed on the host are framed by
#     PIFORK-VM: BEGIN <name> ... PIFORK-VM: END <name>
# ci/test-vm.sh reads the console log and decides.
#
# Word splitting of PID lists and /proc/PID/stat fields is intended here.
# shellcheck disable=SC2086,SC1091

/bin/busybox mkdir -p /proc /sys /dev /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp

# Defaults; /etc/pifork-vm.conf (written by ci/test-vm.sh) overrides.
PI_TERMS=600000000
PI_TIMEOUT=240
LONG_TERMS=100000000000
EXPECT_CPUS=4
[ -r /etc/pifork-vm.conf ] && . /etc/pifork-vm.conf

PIFORK=/bin/pifork
NPASS=0
NFAIL=0

mark() { echo "PIFORK-VM: $*"; }
pass() { NPASS=$((NPASS + 1)); mark "PASS $1${2:+ ($2)}"; }
fail() { NFAIL=$((NFAIL + 1)); mark "FAIL $1${2:+ ($2)}"; }

# Milliseconds since boot, from /proc/uptime (centisecond resolution).
now_ms() {
    read -r _up _idle < /proc/uptime
    _s=${_up%.*}
    _c=${_up#*.}
    echo $((_s * 1000 + ${_c#0} * 10))
}

# PIDs whose parent is $1 (fields after "(comm) " are: state ppid ...).
children_of() {
    _want=$1
    _kids=
    for _stat in /proc/[0-9]*/stat; do
        { read -r _line < "$_stat"; } 2>/dev/null || continue
        _rest=${_line##*") "}
        set -- $_rest
        if [ "$2" = "$_want" ]; then
            _pid=${_stat#/proc/}
            _kids="$_kids ${_pid%/stat}"
        fi
    done
    echo $_kids
}

# Those of the given PIDs that still exist and are not zombies.
still_alive() {
    _alive=
    for _p in "$@"; do
        { read -r _line < "/proc/$_p/stat"; } 2>/dev/null || continue
        _rest=${_line##*") "}
        set -- $_rest
        [ "$1" = Z ] || _alive="$_alive $_p"
    done
    echo $_alive
}

mark "START kernel $(uname -r) $(uname -m)"

# ---- 1. pifork info -----------------------------------------------------------
info=$(timeout 60 "$PIFORK" info 2>&1)
rc=$?
mark "BEGIN info"
printf '%s\n' "$info"
mark "END info"
if [ "$rc" -eq 0 ]; then
    pass info-runs
else
    fail info-runs "exit status $rc"
fi
cpus_line=$(printf '%s\n' "$info" | grep -E '^cpus[a-z ]*:' | head -n 1)
if printf '%s\n' "$cpus_line" | grep -Eq "^cpus[a-z ]*: *$EXPECT_CPUS([^0-9]|\$)"; then
    pass info-cpus "$cpus_line"
else
    fail info-cpus "expected 'cpus: $EXPECT_CPUS ...', got '${cpus_line:-nothing}'"
fi
backend_line=$(printf '%s\n' "$info" | grep -E '^backend *:' | head -n 1)
if printf '%s\n' "$backend_line" | grep -Eq '^backend *: *pidfd([^a-z]|$)'; then
    pass info-backend-pidfd "$backend_line"
else
    fail info-backend-pidfd "expected 'backend: pidfd', got '${backend_line:-nothing}'"
fi

# ---- 2. the kernel sees four CPUs ---------------------------------------------
ncpuinfo=$(grep -c '^processor' /proc/cpuinfo)
nonline=$(nproc)
if [ "$ncpuinfo" = "$EXPECT_CPUS" ] && [ "$nonline" = "$EXPECT_CPUS" ]; then
    pass kernel-cpus "cpuinfo=$ncpuinfo nproc=$nonline"
else
    fail kernel-cpus "cpuinfo=$ncpuinfo nproc=$nonline, expected $EXPECT_CPUS"
fi

# ---- 3. pi on all CPUs, one worker pinned per CPU -----------------------------
t0=$(now_ms)
pi=$(timeout "$PI_TIMEOUT" "$PIFORK" pi --terms "$PI_TERMS" --json 2>/tmp/pi.err)
rc=$?
t1=$(now_ms)
mark "BEGIN pi-json"
printf '%s\n' "$pi"
mark "END pi-json"
if [ -s /tmp/pi.err ]; then
    mark "BEGIN pi-stderr"
    cat /tmp/pi.err
    mark "END pi-stderr"
fi
if [ "$rc" -eq 0 ]; then
    pass pi-runs "terms=$PI_TERMS, $((t1 - t0)) ms"
else
    fail pi-runs "exit status $rc after $((t1 - t0)) ms"
fi
# Compact or pretty JSON alike: pull out every "cpu": N and "pinned": N.
cpus=$(printf '%s' "$pi" | grep -oE '"cpu" *: *[0-9]+' | grep -oE '[0-9]+$' | sort -n | tr '\n' ' ')
pins=$(printf '%s' "$pi" | grep -oE '"pinned" *: *[0-9]+' | grep -oE '[0-9]+$' | sort -n | tr '\n' ' ')
distinct=$(printf '%s' "$cpus" | tr ' ' '\n' | grep . | sort -un | tr '\n' ' ')
want=$(seq 0 $((EXPECT_CPUS - 1)) | tr '\n' ' ')
if [ "$cpus" = "$want" ] && [ "$distinct" = "$want" ]; then
    pass pi-distinct-cpus "cpu=[${cpus% }] pinned=[${pins% }]"
else
    fail pi-distinct-cpus "want one worker on each of [${want% }], got cpu=[${cpus% }] pinned=[${pins% }]"
fi
if printf '%s' "$pi" | grep -Eq '"backend" *: *"pidfd"'; then
    pass pi-backend-pidfd
else
    fail pi-backend-pidfd "JSON has no \"backend\": \"pidfd\""
fi

# ---- 4. a SIGKILLed parent leaves no worker behind ----------------------------
"$PIFORK" pi --terms "$LONG_TERMS" >/dev/null 2>/tmp/long.err &
parent=$!
kids=
n=0
i=0
while [ "$i" -lt 600 ]; do # up to ~60 s
    kids=$(children_of "$parent")
    n=$(echo $kids | wc -w)
    [ "$n" -ge "$EXPECT_CPUS" ] && break
    [ -d "/proc/$parent" ] || break
    sleep 0.1
    i=$((i + 1))
done
if [ "$n" -lt "$EXPECT_CPUS" ]; then
    fail orphans-killed "parent $parent had only $n children ($kids) after waiting"
    kill -9 "$parent" $kids 2>/dev/null
    cat /tmp/long.err
else
    mark "INFO parent $parent, workers: $kids"
    t0=$(now_ms)
    kill -9 "$parent"
    alive=$kids
    while :; do
        alive=$(still_alive $kids)
        el=$(($(now_ms) - t0))
        [ -z "$alive" ] && break
        [ "$el" -gt 2000 ] && break
        sleep 0.05
    done
    if [ -z "$alive" ]; then
        pass orphans-killed "all $n workers gone ${el} ms after SIGKILL of the parent"
    else
        fail orphans-killed "still alive ${el} ms after SIGKILL of the parent: $alive"
        kill -9 $alive 2>/dev/null
    fi
fi
wait "$parent" 2>/dev/null

mark "DONE pass=$NPASS fail=$NFAIL"
sync
poweroff -f
# Not reached; if it were, PID 1 exiting panics the kernel, and with panic=-1
# and -no-reboot QEMU exits as well.
