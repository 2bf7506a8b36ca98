#!/usr/bin/env python3
"""The programs pifork is measured against: pi from the Leibniz series in plain CPython,
in one process (myPi(1, N)) or split over P processes with multiprocessing.Process.

    python3 bench/mypi.py --terms 10000000 --processes 4

prints one JSON object: terms, processes, estimate, wall_ms.
"""
import argparse
import json
import multiprocessing
import time


def myPi(m, n):
    """Sum of terms m..n of (-1)^(k+1) / (2k - 1), term by term."""
    total = 0.0
    sign = 1.0 if m % 2 == 1 else -1.0
    for k in range(m, n + 1):
        total += sign / (2 * k - 1)
        sign = -sign
    return total


def worker(m, n, results):
    results.put((m, myPi(m, n)))


def split(terms, processes):
    """Each process sums its contiguous range; the parent joins them and adds the sums."""
    size = terms // processes
    bounds = [(i * size + 1, terms if i == processes - 1 else (i + 1) * size) for i in range(processes)]
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(m, n, results)) for m, n in bounds]
    for p in procs:
        p.start()
    sums = dict(results.get() for _ in procs)
    for p in procs:
        p.join()
    return sum(sums[m] for m, _ in bounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terms", type=int, default=10_000_000)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    if args.processes == 1:
        total = myPi(1, args.terms)
    else:
        total = split(args.terms, args.processes)
    wall = time.perf_counter() - start
    print(json.dumps({"terms": args.terms, "processes": args.processes,
                      "estimate": 4 * total, "wall_ms": wall * 1e3}))


if __name__ == "__main__":
    main()
