#!/usr/bin/env python3
"""`make bench`: pifork's own benchmark, then the reference programs it is compared with —
CPython's myPi(1, N) in one process and split over 2 and 4 processes (bench/mypi.py) — run in
the same session, with pifork's speed as a ratio to each."""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def median_wall(cmd, repeat):
    return statistics.median(run_json(cmd)["wall_ms"] for _ in range(repeat))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pifork", required=True, help="the pifork binary to measure")
    parser.add_argument("--terms", default="1e7", help="N for the reference comparison")
    parser.add_argument("--repeat", type=int, default=3, help="runs per reference figure")
    parser.add_argument("--bench-args", default="", help="extra arguments for `pifork bench`")
    parser.add_argument("--round-trip-runs", type=int, default=7,
                        help="separate runs of `pifork bench --start-methods`")
    args = parser.parse_args()

    sys.stdout.write(subprocess.run([args.pifork, "bench", *args.bench_args.split()],
                                    check=True, capture_output=True, text=True).stdout)
    sys.stdout.flush()

    terms = int(float(args.terms))
    mypi = [sys.executable, os.path.join(HERE, "mypi.py"), "--terms", str(terms)]
    print(f"\nreference programs, N = {terms}, medians of {args.repeat} runs:")
    print(f"  {'program':<34} {'wall ms':>10} {'pifork ms':>10} {'pifork is':>11}")
    for processes in (1, 2, 4):
        name = "CPython myPi(1, N)" if processes == 1 else \
            f"CPython, {processes} multiprocessing.Process"
        python = median_wall(mypi + ["--processes", str(processes)], args.repeat)
        ours = median_wall([args.pifork, "pi", "--terms", str(terms), "--workers",
                            str(processes), "--json"], max(args.repeat, 5))
        print(f"  {name:<34} {python:10.1f} {ours:10.2f} {python / ours:9.0f}x faster"
              f"  (pifork with {processes} worker{'s' if processes > 1 else ''})")

    round_trips(args.pifork, args.round_trip_runs)

    # What the service pays to save a finished chunk: flat from 10^3 to 10^5 chunks.
    print()
    sys.stdout.write(subprocess.run([args.pifork, "bench", "--state-saving"],
                                    check=True, capture_output=True, text=True).stdout)


def round_trips(pifork, runs):
    """A round trip is tens of microseconds, and what a fork costs on a shared machine moves
    from one second to the next: one run's median says little, so this runs the comparison
    several times and gives the spread, and each run's fork/bare-fork ratio."""
    if runs < 1:
        return
    samples = [run_json([pifork, "bench", "--start-methods", "--json"]) for _ in range(runs)]
    print(f"\nstart+join round trip over {runs} runs of `pifork bench --start-methods`"
          " (median of the runs' medians, min-max):")
    for key in ("bare_fork", "fork", "spawn", "forkserver"):
        values = [s[key] for s in samples]
        line = f"  {key.replace('_', ' '):<11} {statistics.median(values):9.1f} us" \
               f"  ({min(values):.0f}-{max(values):.0f})"
        if key == "fork":
            ratios = [s["fork"] / s["bare_fork"] for s in samples]
            line += f"   fork/bare fork {statistics.median(ratios):.2f}" \
                    f" ({min(ratios):.2f}-{max(ratios):.2f})"
        print(line)


if __name__ == "__main__":
    main()
