#!/usr/bin/env bash
# pifork-mpi against pifork pi with the same total number of workers, in one session
# (make bench-mpi): for 1, 2 and 4 ranks, medians of REPEAT runs of N terms each, of
#   - the wall time of the whole mpirun and of `pifork pi` (start to exit, measured here),
#   - the run's own wall time (the report's wall_ms) and the ranks' MPI_Init time,
#   - the MPI start-up overhead: mpirun's wall time less pifork-mpi's own wall time, less
#     pifork pi's process overhead (its wall time less its own),
#   - the efficiency: pifork pi's wall time (the capacity of this machine for that many
#     workers) over mpirun's.
# Ranks on one machine are bound to cores by Open MPI (--bind-to core, overload allowed for
# more ranks than cores), one rank alone is not bound, so workers spread as pifork pi's do.
# Usage: bench/mpi.sh PIFORK-MPI PIFORK [N] [REPEAT]
set -euo pipefail

MPI_BIN=${1:?usage: bench/mpi.sh PIFORK-MPI PIFORK [N] [REPEAT]}
PIFORK=${2:?usage: bench/mpi.sh PIFORK-MPI PIFORK [N] [REPEAT]}
N=${3:-1e10}
REPEAT=${4:-5}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

now_us() { echo $(($(date +%s%N) / 1000)); }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2" | head -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

CPUS=$(nproc)
printf 'pifork-mpi against pifork pi, N = %s, medians of %s runs, %s CPUs, forkserver workers\n' \
    "$N" "$REPEAT" "$CPUS"
printf '%5s %8s %12s %12s %12s %12s %10s %11s %10s\n' ranks workers "pi wall ms" \
    "mpirun ms" "mpi own ms" "mpi init ms" "start-up" efficiency "same bits"
for config in "1 $CPUS" "2 $((CPUS / 2 > 0 ? CPUS / 2 : 1))" "4 1"; do
    read -r ranks wpr <<<"$config"
    total=$((ranks * wpr))
    case $ranks in
        1) bind=(--bind-to none) ;;
        *) bind=(--bind-to core:overload-allowed) ;;
    esac
    pi_wall=() pi_own=() mpi_wall=() mpi_own=() mpi_init=() same=yes
    for _ in $(seq "$REPEAT"); do
        t=$(now_us)
        ref=$("$PIFORK" pi --terms "$N" --workers "$total" --start forkserver --json)
        pi_wall+=($((($(now_us) - t))))
        pi_own+=("$(field wall_ms "$ref")")
        t=$(now_us)
        out=$(mpirun --oversubscribe "${bind[@]}" -n "$ranks" "$MPI_BIN" pi --terms "$N" \
            --workers-per-rank "$wpr" --json </dev/null)
        mpi_wall+=($((($(now_us) - t))))
        mpi_own+=("$(field wall_ms "$out")")
        mpi_init+=("$(grep -o '"init_ms":[0-9.]*' <<<"$out" | cut -d: -f2 | sort -g | tail -1)")
        [[ $(field estimate "$out") == "$(field estimate "$ref")" ]] || same=no
    done
    pw=$(printf '%s\n' "${pi_wall[@]}" | median)
    po=$(printf '%s\n' "${pi_own[@]}" | median)
    mw=$(printf '%s\n' "${mpi_wall[@]}" | median)
    mo=$(printf '%s\n' "${mpi_own[@]}" | median)
    mi=$(printf '%s\n' "${mpi_init[@]}" | median)
    awk -v r="$ranks" -v w="$total" -v pw="$pw" -v po="$po" -v mw="$mw" -v mo="$mo" -v mi="$mi" \
        -v same="$same" 'BEGIN {
        pw /= 1000; mw /= 1000
        printf "%5d %8d %12.1f %12.1f %12.1f %12.1f %10.1f %10.0f%% %10s\n",
            r, w, pw, mw, mo, mi, (mw - mo) - (pw - po), 100 * pw / mw, same
    }'
done
