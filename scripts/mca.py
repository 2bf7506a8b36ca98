#!/usr/bin/env python3
"""Predicts the kernel loops' speed on a Raspberry Pi 4 (Cortex-A72) with llvm-mca.

Usage: mca.py BINARY [LLVM_MCA [LLVM_OBJDUMP]]

BINARY is the aarch64 release build with its symbols (`cargo build --profile mca`). The loops
are found by function name, not by address: the innermost loop of
`pifork_pi::kernel::aarch64::neon::block_sums` (the division-free kernel) and of
`pifork_pi::pi::division_pair_sum` (the previous kernel, one division per two terms), each
the backward branch that closes the most instructions. Terms per loop iteration are counted
from the instructions themselves, so unrolling cannot skew them: the new kernel does one
integer `sub` (the reciprocal seed) per 2 groups of 16 terms, the old one an `fdiv` per 4
terms.
"""

import re
import subprocess
import sys

CPU = "cortex-a72"
# What the A57 model's units are (its FP/ASIMD pipes F0 and F1; the divider sits in F0).
UNITS = {
    "A57UnitW": "F0 (FP/ASIMD pipe 0, with the divider)",
    "A57UnitX": "F1 (FP/ASIMD pipe 1)",
    "A57UnitI": "integer pipes",
    "A57UnitM": "multi-cycle integer pipe",
    "A57UnitL": "load pipe",
    "A57UnitS": "store pipe",
    "A57UnitB": "branch pipe",
}
ITERATIONS = 500
LOOPS = [
    # (label, function name, how to count terms per iteration)
    ("division-free kernel (NEON)", "pifork_pi::kernel::aarch64::neon::block_sums",
     lambda body: 32 * sum(1 for i in body if re.match(r"sub\s+v\d+\.2d", i))),
    ("old divider loop", "pifork_pi::pi::division_pair_sum",
     lambda body: 4 * sum(1 for i in body if re.match(r"fdiv\s+v\d+\.2d", i))),
]


def disassemble(binary, objdump):
    """Function name -> [(address, instruction text)]."""
    out = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", binary],
                         check=True, capture_output=True, text=True).stdout
    functions, current = {}, None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:
            # Strip the legacy mangling's hash: name::h0123456789abcdef
            current = re.sub(r"::h[0-9a-f]{16}$", "", head.group(1))
            functions.setdefault(current, [])
            continue
        ins = re.match(r"^\s*([0-9a-f]+):\s+(.*?)\s*$", line)
        if ins and current:
            functions[current].append((int(ins.group(1), 16), ins.group(2)))
    return functions


def innermost_loop(code):
    """The body of the largest loop closed by a backward branch in `code`."""
    best = []
    for addr, text in code:
        m = re.match(r"(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s+.*?0x([0-9a-f]+)", text)
        if m and int(m.group(2), 16) <= addr:
            target = int(m.group(2), 16)
            body = [t for a, t in code if target <= a < addr]
            if len(body) > len(best):
                best = body
    return best


def mca(body, llvm_mca):
    out = subprocess.run([llvm_mca, "-mtriple=aarch64", f"-mcpu={CPU}",
                          f"-iterations={ITERATIONS}", "-bottleneck-analysis"],
                         input="\n".join(body) + "\n", check=True, capture_output=True,
                         text=True).stdout
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    names = dict(re.findall(r"^\[(\d+(?:\.\d+)?)\]\s+- (\S+)", out, re.M))
    table = out.split("Resource pressure per iteration:")[1].splitlines()
    header, values = table[1].split(), table[2].split()
    pressure = {names.get(h.strip("[]"), h): (0.0 if v == "-" else float(v))
                for h, v in zip(header, values)}
    busy = max(pressure.values())
    units = " and ".join(UNITS.get(u, u) for u, p in pressure.items() if p >= 0.99 * busy)
    return cycles / ITERATIONS, units, busy


def main():
    binary = sys.argv[1]
    llvm_mca = sys.argv[2] if len(sys.argv) > 2 else "llvm-mca"
    objdump = sys.argv[3] if len(sys.argv) > 3 else "llvm-objdump"
    functions = disassemble(binary, objdump)
    print(f"llvm-mca -mcpu={CPU}, {ITERATIONS} iterations of each release aarch64 loop")
    print("(LLVM models the Cortex-A72 with the Cortex-A57's scheduling tables: a prediction)")
    print(f"  {'loop':<30} {'terms/iter':>10} {'cycles/iter':>11} {'cycles/term':>11} "
          f"{'ns/term @1.5GHz':>15} {'@1.8GHz':>8}  bottleneck")
    results = []
    for label, name, count in LOOPS:
        if name not in functions:
            sys.exit(f"mca: no function {name} in {binary} (was it inlined?)")
        body = innermost_loop(functions[name])
        terms = count(body)
        if not body or terms == 0:
            sys.exit(f"mca: no kernel loop found in {name}")
        cycles, unit, busy = mca(body, llvm_mca)
        per_term = cycles / terms
        results.append(per_term)
        print(f"  {label:<30} {terms:>10} {cycles:>11.1f} {per_term:>11.3f} "
              f"{per_term / 1.5:>15.3f} {per_term / 1.8:>8.3f}  {unit} "
              f"({busy:.0f} of {cycles:.0f} cycles busy)")
    print(f"  division-free kernel: {results[1] / results[0]:.1f}x the old loop's speed")


if __name__ == "__main__":
    main()
