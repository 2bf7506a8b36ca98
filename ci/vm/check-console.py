#!/usr/bin/env python3
"""Checks the serial console log of the aarch64 test VM (ci/vm/init.sh).

Usage: check-console.py CONSOLE_LOG [EXPECTED_CPUS]

Exit status 0 when every expected check reported PASS, none reported FAIL, the
run reached its DONE line and the `pifork pi --json` output is consistent;
otherwise prints what is missing or wrong and exits 1.
"""

import json
import math
import re
import sys

REQUIRED = [
    "info-runs",
    "info-cpus",
    "info-backend-pidfd",
    "kernel-cpus",
    "pi-runs",
    "pi-distinct-cpus",
    "pi-backend-pidfd",
    "orphans-killed",
]
WORKER_KEYS = ["index", "pid", "cpu", "pinned", "chunks", "terms", "ms"]
TOP_KEYS = ["estimate", "error", "correct_decimals", "wall_ms", "workers", "backend", "per_worker"]
MARK = "PIFORK-VM: "


def block(lines, name):
    """Lines between 'BEGIN name' and 'END name', or None."""
    try:
        start = lines.index(MARK + "BEGIN " + name)
        end = lines.index(MARK + "END " + name, start)
    except ValueError:
        return None
    return lines[start + 1 : end]


def check_pi_json(text, ncpus):
    problems = []
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return ["pi --json output is not one JSON object: %s" % exc]
    if not isinstance(doc, dict):
        return ["pi --json output is not a JSON object"]
    missing = [k for k in TOP_KEYS if k not in doc]
    if missing:
        problems.append("pi --json lacks keys %s" % missing)
    if doc.get("backend") != "pidfd":
        problems.append("pi --json backend is %r, expected 'pidfd'" % doc.get("backend"))
    if doc.get("workers") != ncpus:
        problems.append("pi --json workers is %r, expected %d" % (doc.get("workers"), ncpus))
    est = doc.get("estimate")
    if not isinstance(est, (int, float)) or abs(est - math.pi) > 1e-6:
        problems.append("pi --json estimate %r is not within 1e-6 of pi" % est)
    per = doc.get("per_worker")
    if not isinstance(per, list) or len(per) != ncpus:
        problems.append("pi --json per_worker should list %d workers: %r" % (ncpus, per))
        return problems
    for w in per:
        lacking = [k for k in WORKER_KEYS if k not in w]
        if lacking:
            problems.append("worker %r lacks keys %s" % (w.get("index"), lacking))
        elif w["cpu"] != w["pinned"]:
            problems.append(
                "worker %r pinned to CPU %r but observed on CPU %r" % (w["index"], w["pinned"], w["cpu"])
            )
    terms = [w.get("terms") for w in per]
    if "terms" in doc and all(isinstance(t, int) for t in terms) and sum(terms) != doc["terms"]:
        problems.append("worker terms add up to %d, not the %r requested" % (sum(terms), doc["terms"]))
    cpus = sorted(w.get("cpu") for w in per if isinstance(w.get("cpu"), int))
    if cpus != list(range(ncpus)):
        problems.append("workers ran on CPUs %r, expected one on each of 0..%d" % (cpus, ncpus - 1))
    return problems


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ncpus = int(sys.argv[2]) if len(sys.argv) == 3 else 4
    with open(sys.argv[1], "rb") as fh:
        raw = fh.read().decode("utf-8", "replace")
    lines = [ln.rstrip("\r") for ln in raw.split("\n")]
    # A marker can share its line with kernel messages; keep from the marker on.
    lines = [ln[ln.index(MARK) :] if MARK in ln else ln for ln in lines]

    problems = []
    passed = set()
    for ln in lines:
        m = re.match(re.escape(MARK) + r"(PASS|FAIL) (\S+)", ln)
        if not m:
            continue
        if m.group(1) == "PASS":
            passed.add(m.group(2))
        else:
            problems.append("VM check failed: " + ln[len(MARK) :])
    for name in REQUIRED:
        if name not in passed and not any(p.startswith("VM check failed: FAIL " + name) for p in problems):
            problems.append("VM check missing: %s (no PASS line on the console)" % name)
    if not any(ln.startswith(MARK + "DONE ") for ln in lines):
        problems.append("the VM never reached its DONE line (crash, hang or timeout)")

    pi = block(lines, "pi-json")
    if pi is None:
        problems.append("no pi --json output on the console")
    else:
        problems.extend(check_pi_json("\n".join(pi), ncpus))

    if problems:
        for p in problems:
            print("test-vm: " + p)
        return 1
    print("test-vm: all %d VM checks passed" % len(REQUIRED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
