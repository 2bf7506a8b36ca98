#!/usr/bin/env python3
"""Checks the module layering of the library crate: import circles and the appliance rule.

Usage: scripts/check-layers.py [--graph] [--sizes] [--follow-reexports] [SRC]
SRC defaults to ../src from this script. --graph prints every edge (with the line of its first
reference), --sizes the line counts of library and app files.

1. Import circles. Library files: the .rs files under SRC except main.rs, bin/, app/, the modules
   main.rs declares (e.g. through #[path]) and test-only module files (`#[cfg(test)] mod x;`).
   A file refers to another through the paths in its `use` declarations (grouped, pub, pub(crate),
   self::, super::, crate::) and through qualified paths in code (`crate::sys::poll(..)`,
   `super::imp::Child`, `name::x` where `name` is a child module or a module brought in by `use`).
   A path resolves to the deepest existing module file (foo.rs, foo/mod.rs or what #[path] says),
   following module aliases like `use unix as imp;` (all cfg variants at once: cfg is ignored).
   `mod child;` alone is no reference, `pub use child::X` is. External crates, comments, strings
   and items under #[cfg(test)] are ignored. Strongly connected components of more than one file
   are the circles; for each, a shortest loop through every file not yet shown is printed.
2. The appliance rule (if SRC/app exists): app/ uses the library through public paths only.
   Flagged: anything through crate::sys; a module declared without `pub` (`mod sys;`, `mod error;`
   in lib.rs, or deeper) or a non-pub `use` import on the way; an item declared pub(crate),
   pub(super) or pub(in ..) in the file the path resolves to. Paths staying in app/ are fine.

Limits: a text scanner, not rustc. Glob imports bind no names, so `crate::sys::poll` points at
sys/mod.rs, not at the file behind its `pub use linux::*`. A re-exported item (`crate::Error`)
points at the re-exporting file, so lib.rs can close circles; --follow-reexports follows explicit
`use` re-exports to the item's own module instead. Inline modules count as their file (`super::`
inside one resolves a level too high). Paths made by macros (other than `$crate::`) are not seen;
a local name equal to a module's is taken for the module. pub(crate) names are matched in the
resolved file only; glob imports in app/ are not checked. A file no `mod` declares gets the module
path of its place (listed in a note).
Exit status: 0 clean, 1 circles or appliance violations, 2 usage error.
"""
import argparse
import bisect
import os
import re
import signal
import sys
from pathlib import Path

LEX = re.compile(r"""//[^\n]*|/\*|(?<!\w)[bc]?r(#*)"|"(?:\\.|[^"\\])*"|'(?:\\(?:u\{\w*\}|.)|[^\\'\n])'""", re.S)
CFG = re.compile(r"#\s*\[\s*cfg\s*\((.*?)\)\s*\]", re.S)
USE = re.compile(r"(?<![\w$])(pub\s*(?:\(\s*([^)]*)\))?\s*)?use\s+([^;]*);")
MOD = re.compile(r"((?:#\s*\[[^\]]*\]\s*)*)(?<![\w$])(pub\s*(\([^)]*\))?\s*)?mod\s+(\w+)\s*;")
TOK = re.compile(r"::|[{},*]|\$?[A-Za-z_]\w*")
PATH = re.compile(r"(?<![\w$:])(\$?[A-Za-z_]\w*(?:\s*::\s*[A-Za-z_]\w*)+)")
ITEM = r"(?:(?:const|async|unsafe|extern)\s+)*(?:fn|struct|enum|type|trait|mod|union|static|const)\s+(?:mut\s+)?(\w+)"
RESTRICTED = re.compile(r"(?<![\w$])pub\s*\(\s*(?:crate|super|in\b[^)]*)\s*\)\s*" + ITEM)
PUBLIC = re.compile(r"(?<![\w$])pub\s+" + ITEM)


def blank(chars, a, b):
    for k in range(a, min(b, len(chars))):
        chars[k] = chars[k] if chars[k] == "\n" else " "


def strip(src):
    """Blanks comments, string and char literals (newlines kept, so offsets and lines stay).
    A quote that does not close one character later is a lifetime or label ('a), not a char."""
    out, i, n = list(src), 0, len(src)
    while m := LEX.search(src, i):
        j = m.end()
        if m.group() == "/*":  # block comments nest
            depth = 1
            while depth and j < n:
                a, b = src.find("/*", j), src.find("*/", j)
                depth, j = (depth + 1, a + 2) if 0 <= a < b else (depth - 1, b + 2) if b >= 0 else (0, n)
        elif m.group(1) is not None:  # raw string r#"..."#
            k = src.find('"' + m.group(1), j)
            j = n if k < 0 else k + 1 + len(m.group(1))
        blank(out, m.start(), j)
        i = j
    return "".join(out)


def item_end(code, i):
    """End of the item from i on (attributes included): its `;` or its closing `}` at depth 0."""
    depth = 0
    for j in range(i, len(code)):
        depth += (code[j] in "([{") - (code[j] in ")]}")
        if depth < 0:
            return j  # the end of an enclosing block: a field or statement ended
        if depth == 0 and code[j] in ";}":
            return j + 1
    return len(code)


def blank_tests(code):
    """Blanks the items under #[cfg(test)] or #[cfg(all(test, ..))] (a whole file for #![cfg(test)])."""
    if re.match(r"\s*#!\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", code):
        return re.sub(r"[^\n]", " ", code)
    out = list(code)
    for m in CFG.finditer(code):
        pred = re.sub(r"\s+", "", m.group(1))
        if pred == "test" or pred.startswith("all(") and re.search(r"\btest\b", pred) and "not(test" not in pred:
            blank(out, m.start(), item_end(code, m.end()))
    return "".join(out)


def parse_tree(toks, i, prefix, out):
    """Expands the use tree at toks[i] (`a::{b, c::{self, d as e}, *}`) into (segments, name, offset)."""
    segs = list(prefix)
    while i < len(toks):
        t, pos = toks[i]
        i += 1
        if t == "{":
            while i < len(toks) and toks[i][0] != "}":
                i = i + 1 if toks[i][0] == "," else parse_tree(toks, i, segs, out)
            return i + 1
        if t == "*":
            out.append((segs + ["*"], None, pos))
            return i
        segs += [t] if t != "::" else [] if segs else [""]  # a leading `::` names an external crate
        if t == "::" or i < len(toks) and toks[i][0] == "::":
            continue
        alias = toks[i + 1][0] if i + 1 < len(toks) and toks[i][0] == "as" else None
        if segs[-1] == "self" and len(segs) > 1:
            segs.pop()
        out.append((segs, alias or segs[-1], pos))
        return i + 2 if alias else i
    return i


def visibility(pub, restriction):
    return "private" if not pub else "restricted" if restriction else "pub"


class File:
    def __init__(self, path):
        raw = path.read_text(encoding="utf-8", errors="replace")
        self.lines, self.newlines = len(raw.splitlines()), [i for i, ch in enumerate(raw) if ch == "\n"]
        stripped = strip(raw)
        code = blank_tests(stripped)
        self.mods = []  # (name, visibility, #[path] or None, declared under #[cfg(test)])
        for m in MOD.finditer(stripped):
            attr = re.search(r'#\s*\[\s*path\s*=\s*"([^"]*)"', raw[m.start(1):m.end(1)])
            test = code[m.start(4)] == " "  # blanked by blank_tests
            self.mods.append((m.group(4), visibility(m.group(2), m.group(3)), attr and attr.group(1), test))
        self.uses, masked = [], list(code)  # (segments, bound name, line, visibility)
        for m in USE.finditer(code):
            leaves = []
            parse_tree([(t.group(), m.start(3) + t.start()) for t in TOK.finditer(m.group(3))], 0, [], leaves)
            vis = visibility(m.group(1), m.group(2))
            self.uses += [(segs, name, self.line(pos), vis) for segs, name, pos in leaves]
            blank(masked, m.start(), m.end())
        self.paths = [(re.split(r"\s*::\s*", m.group(1)), self.line(m.start())) for m in PATH.finditer("".join(masked))]
        self.restricted = {m.group(1) for m in RESTRICTED.finditer(code)}
        self.restricted |= {name for _, name, _, vis in self.uses if vis == "restricted" and name}
        self.public = {m.group(1) for m in PUBLIC.finditer(code)} | {n for _, n, _, vis in self.uses if vis == "pub"}

    def line(self, offset):
        return bisect.bisect_left(self.newlines, offset) + 1

    def refs(self):
        return [(segs, line) for segs, _, line, _ in self.uses] + self.paths


class Crate:
    def __init__(self, src):
        self.src, self.root, self.binds, self.items, self.missing, self.follow = src, src.parent, {}, {}, set(), False
        self.files = {p: File(p) for p in sorted(src.rglob("*.rs"))}
        self.crate_name = crate_name(self.root / "Cargo.toml")
        lib, self.mod_of, self.vis, excluded = src / "lib.rs", {}, {}, set()
        for f, mod, vis, test in self.tree(lib, (), True, set()) if lib in self.files else []:
            self.vis.setdefault(mod, vis)
            if f and test:
                excluded.add(f)
            elif f:
                self.mod_of.setdefault(f, mod)
        self.mod_of.setdefault(lib, ())
        for r in [src / "main.rs", *(src / "bin").glob("*.rs"), *(src / "bin").glob("*/main.rs")]:
            excluded |= {r, *(f for f, *_ in self.tree(r, (), True, set()) if f)} if r in self.files else set()
        undeclared, self.file_of, self.notes = [], {}, []
        for f in (f for f in self.files if f not in self.mod_of and self.part(f) != "bin"):
            if f not in excluded or self.part(f) == "app":
                parts = f.relative_to(src).with_suffix("").parts
                self.mod_of[f] = tuple(parts[:-1] if parts[-1] == "mod" else parts)
                undeclared += [] if f in excluded else [self.rel(f)]
        for f, mod in self.mod_of.items():
            if f in self.files and self.file_of.setdefault(mod, f) != f:
                self.notes.append(f"{self.rel(self.file_of[mod])} and {self.rel(f)} both claim module {'::'.join(mod)}")
        if undeclared and lib in self.files:
            self.notes.append("declared by no `mod` (module path from the file's place): " + ", ".join(undeclared))
        self.modules = {mod[:k] for mod in self.mod_of.values() for k in range(len(mod) + 1)}
        self.app = sorted(f for f in self.file_of.values() if self.part(f) == "app")
        self.library = sorted(f for f in self.file_of.values() if self.part(f) != "app")

    def part(self, f):
        return f.relative_to(self.src).parts[0]

    def rel(self, f):
        return os.path.relpath(f, self.root)

    def tree(self, f, mod, modrs, seen):
        """Yields (file or None, module path, visibility, test-only) for the modules below file f."""
        seen.add(f)
        for name, vis, pattr, test in self.files[f].mods:
            base = f.parent if modrs else f.parent / f.stem
            cands = [f.parent / pattr] if pattr else [base / f"{name}.rs", base / name / "mod.rs"]
            child = next((c for c in (Path(os.path.normpath(c)) for c in cands) if c in self.files), None)
            yield child, mod + (name,), vis, test
            if child and child not in seen:  # a #[path] file's own modules sit beside it, as for mod.rs
                for c, m, v, t in self.tree(child, mod + (name,), child.name == "mod.rs" or bool(pattr), seen):
                    yield c, m, v, t or test

    def bindings(self, m):
        """Names that `use` declarations in module m bind to modules: {name: {module: visibility}}.
        Names bound to items go to self.items[m]: {name: {module: rest of the path}}."""
        if m not in self.binds:
            b, items, f = self.binds.setdefault(m, {}), self.items.setdefault(m, {}), self.file_of.get(m)
            for _ in range(2 if f else 0):  # twice, for names used above the `use` that binds them
                for segs, name, _, vis in self.files[f].uses:
                    for chain, rest, _ in self.resolve(m, segs) if name not in (None, "_", "self") else []:
                        if not rest and chain[-1] != m:
                            b.setdefault(name, {})[chain[-1]] = vis
                        elif rest and chain[-1] != m:
                            items.setdefault(name, {})[chain[-1]] = rest
        return self.binds[m]

    def resolve(self, m, segs):
        """Resolves a path written in module m: [(module chain, unresolved rest, reasons)], [] if external."""
        if segs[0] in ("crate", "$crate", self.crate_name):
            return self.walk((), segs[1:])
        if segs[0] == "self":
            return self.walk(m, segs[1:])
        if segs[0] == "super":
            k = next((i for i, s in enumerate(segs) if s != "super"), len(segs))
            return self.walk(m[:len(m) - k], segs[k:]) if k <= len(m) else []
        if segs[0] and (m + (segs[0],) in self.modules or segs[0] in self.bindings(m)):
            return self.walk(m, segs)
        return []

    def walk(self, m, segs, depth=0):
        chain, reasons = [m], []
        for i, s in enumerate(segs):
            if m + (s,) in self.modules:
                # `use crate::wait;` may mean the pub fn `wait` beside the private module `wait`
                public_twin = i == len(segs) - 1 and m in self.file_of and s in self.files[self.file_of[m]].public
                m = m + (s,)
                chain.append(m)
                if self.vis.get(m, "pub") != "pub" and m[0] != "app" and not public_twin:
                    reasons.append(f"module {'::'.join(m)} is not pub")
                continue
            res = []
            for t, vis in (self.bindings(m).get(s, {}) if depth < 8 else {}).items():
                private = vis != "pub" and m[:1] != ("app",)
                why = [f"`{s}` is a non-pub import in {self.rel(self.file_of[m])}"] if private else []
                res += [(chain + c, rest, reasons + why + r) for c, rest, r in self.walk(t, segs[i + 1:], depth + 1)]
            if not res and self.follow and depth < 8:  # --follow-reexports: on to the item's own module
                for t, rest in self.items[m].get(s, {}).items():
                    res += [(chain + c, r, reasons) for c, r, _ in self.walk(t, rest + segs[i + 1:], depth + 1)]
            return res or [(chain, segs[i:], reasons)]
        return [(chain, [], reasons)]

    def target(self, chain):
        if chain[-1] not in self.file_of:
            self.missing.add("::".join(chain[-1]))
        return self.file_of.get(chain[-1])

    def graph(self, follow):
        """{file: {file it refers to: (first line, path)}} over the library files."""
        g, self.follow = {f: {} for f in self.library}, follow
        for f in self.library:
            for segs, line in self.files[f].refs():
                for chain, _, _ in self.resolve(self.mod_of[f], segs):
                    t = self.target(chain)
                    if t in g and t != f and (t not in g[f] or line < g[f][t][0]):
                        g[f][t] = (line, "::".join(segs))
        self.follow = False
        return g

    def violations(self):
        found = {}
        for f in self.app:
            for segs, line in self.files[f].refs():
                for chain, rest, reasons in self.resolve(self.mod_of[f], segs):
                    if chain[-1][:1] == ("app",):
                        continue  # stays in the appliance
                    t = self.target(chain)
                    why = ["reaches into crate::sys"] if any(c[:1] == ("sys",) for c in chain) else []
                    restricted = [s for s in rest if t and s in self.files[t].restricted]
                    why += reasons + [f"`{s}` is pub(crate) in {self.rel(t)}" for s in restricted]
                    msgs = found.setdefault((self.rel(f), line, "::".join(segs)), []) if why else []
                    msgs += [w for w in why if w not in msgs]
        return [f"{p}:{line}: {path}: {'; '.join(w)}" for (p, line, path), w in sorted(found.items())]


def crate_name(toml):
    text = toml.read_text() if toml.is_file() else ""
    for section in ("lib", "package"):
        if m := re.search(rf'^\[{section}\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M):
            return m.group(1).replace("-", "_")
    return None


def sccs(graph):
    """Tarjan's strongly connected components."""
    index, low, stack, out = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            k = stack.index(v)
            out.append(sorted(stack[k:]))
            del stack[k:]

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(graph, comp, start):
    """The shortest loop from start back to start inside comp (breadth-first)."""
    prev, queue = {start: None}, [start]
    for v in queue:
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return path[::-1] + [start]
            if w in comp and w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent / "src")
    ap.add_argument("--graph", action="store_true", help="print every edge of the library's import graph")
    ap.add_argument("--sizes", action="store_true", help="print the line count of each library and app file")
    ap.add_argument("--follow-reexports", action="store_true",
                    help="resolve an item re-exported by `use` (crate::Error) to the module it comes from")
    args = ap.parse_args()
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    if not args.src.is_dir():
        ap.error(f"{args.src}: not a directory")
    crate = Crate(args.src.resolve())
    graph, rel, lines = crate.graph(args.follow_reexports), crate.rel, (lambda f: crate.files[f].lines)
    bad = crate.violations()
    if crate.missing:
        crate.notes.append("references to modules without a file were skipped: " + ", ".join(sorted(crate.missing)))
    print("".join(f"note: {note}\n" for note in crate.notes), end="")
    if args.graph:
        edges = sorted((rel(a), rel(b), *graph[a][b]) for a in graph for b in graph[a])
        print("".join(f"{a} -> {b}    (line {line}: {path})\n" for a, b, line, path in edges), end="")
    if args.sizes:
        for f in sorted(crate.library + crate.app, key=lambda f: (-lines(f), rel(f))):
            print(f"{lines(f):7}  {rel(f)}")
    circles = sorted((c for c in sccs(graph) if len(c) > 1), key=lambda c: rel(c[0]))
    for n, comp in enumerate(circles, 1):
        print(f"circle {n} ({len(comp)} files):\n" + "".join(f"  {rel(f)}\n" for f in comp), end="")
        shown = set()
        for f in (f for f in comp if f not in shown):  # lazily: skips files an earlier loop showed
            loop = shortest_cycle(graph, comp, f)
            shown.update(loop)
            hops = [f"{rel(a)}:{graph[a][b][0]}" for a, b in zip(loop, loop[1:])]  # file:line of the reference
            print("  loop: " + " -> ".join(hops + [rel(f)]))
    print(f"import circles: {len(circles)}")
    print("".join(f"{v}\n" for v in bad) + (f"appliance violations: {len(bad)}\n" if crate.app else ""), end="")
    if crate.library:
        big = max(crate.library, key=lambda f: (lines(f), rel(f)))
        print(f"largest library file: {rel(big)} ({lines(big)} lines)")
    return 1 if circles or bad else 0


if __name__ == "__main__":
    sys.exit(main())
