#!/usr/bin/env python3
"""Checks that the modules of a crate import each other without circles.

Usage: scripts/check-layers.py [--graph] [--sizes] [--follow-reexports] [SRC]
SRC (default: the library, crates/pifork/src) is a crate's source directory. --graph prints
every edge (with the line of its first reference), --sizes the line count of every file.

The compiler accepts modules that import each other; this check does not. The crate edge keeps
the library from naming the appliance; inside a crate, only this keeps the layers one way.

Files: the .rs files under SRC except main.rs, bin/, the modules those declare (e.g. through
#[path]) and test-only module files (`#[cfg(test)] mod x;`). A file refers to another through
the paths in its `use` declarations (grouped, pub, pub(crate), self::, super::, crate::) and
through qualified paths in code (`crate::sys::poll(..)`, `super::imp::Child`, `name::x` where
`name` is a child module or a module brought in by `use`). A path resolves to the deepest
existing module file (foo.rs, foo/mod.rs or what #[path] says), following module aliases like
`use unix as imp;` (all cfg variants at once: cfg is ignored). Inline modules (`mod neon { .. }`)
belong to their file, and paths inside one start from it (`super::super::X`). `mod child;` alone
is no reference, `pub use child::X` is. External crates, comments, strings and items under
#[cfg(test)] are ignored. Strongly connected components of more than one file are the circles;
for each, a shortest loop through every file not yet shown is printed.

Limits: a text scanner, not rustc. Glob imports bind no names, so `crate::sys::poll` points at
sys/mod.rs, not at the file behind its `pub use linux::*`. A re-exported item (`crate::Error`)
points at the re-exporting file, so lib.rs can close circles; --follow-reexports follows explicit
`use` re-exports to the item's own module instead. Paths made by macros (other than `$crate::`)
are not seen; a local name equal to a module's is taken for the module; `mod x;` inside an
inline module is not followed. A file no `mod` declares gets the module path of its place
(listed in a note).
Exit status: 0 no circles, 1 circles, 2 usage error.
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
USE = re.compile(r"(?<![\w$])(?:pub\s*(?:\([^)]*\))?\s*)?use\s+([^;]*);")
MOD = re.compile(r"((?:#\s*\[[^\]]*\]\s*)*)(?<![\w$])(?:pub\s*(?:\([^)]*\))?\s*)?mod\s+(\w+)\s*;")
INLINE = re.compile(r"(?<![\w$])mod\s+(\w+)\s*\{")
TOK = re.compile(r"::|[{},*]|\$?[A-Za-z_]\w*")
PATH = re.compile(r"(?<![\w$:])(\$?[A-Za-z_]\w*(?:\s*::\s*[A-Za-z_]\w*)+)")


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


class File:
    def __init__(self, path):
        raw = path.read_text(encoding="utf-8", errors="replace")
        self.lines, self.newlines = len(raw.splitlines()), [i for i, ch in enumerate(raw) if ch == "\n"]
        stripped = strip(raw)
        code = blank_tests(stripped)
        self.mods = []  # (name, #[path] or None, declared under #[cfg(test)])
        for m in MOD.finditer(stripped):
            attr = re.search(r'#\s*\[\s*path\s*=\s*"([^"]*)"', raw[m.start(1):m.end(1)])
            test = code[m.start(2)] == " "  # blanked by blank_tests
            self.mods.append((m.group(2), attr and attr.group(1), test))
        self.spans = [(m.start(), item_end(code, m.start()), m.group(1)) for m in INLINE.finditer(code)]
        # Inline modules by their path inside the file: ("neon",), ("a",), ("a", "b"), ...
        self.inline = sorted({self.scope(a) for a, _, _ in self.spans}, key=len)
        self.uses, masked = [], list(code)  # (inline scope, segments, bound name, line)
        for m in USE.finditer(code):
            leaves = []
            parse_tree([(t.group(), m.start(1) + t.start()) for t in TOK.finditer(m.group(1))], 0, [], leaves)
            self.uses += [(self.scope(pos), segs, name, self.line(pos)) for segs, name, pos in leaves]
            blank(masked, m.start(), m.end())
        self.paths = [(self.scope(m.start()), re.split(r"\s*::\s*", m.group(1)), self.line(m.start()))
                      for m in PATH.finditer("".join(masked))]

    def line(self, offset):
        return bisect.bisect_left(self.newlines, offset) + 1

    def scope(self, offset):
        """The inline modules around offset, outer first (spans start in order, so outer first)."""
        return tuple(name for a, b, name in self.spans if a <= offset < b)

    def refs(self):
        return [(scope, segs, line) for scope, segs, _, line in self.uses] + self.paths


class Crate:
    def __init__(self, src):
        self.src, self.root, self.binds, self.items, self.missing, self.follow = src, src.parent, {}, {}, set(), False
        self.files = {p: File(p) for p in sorted(src.rglob("*.rs"))}
        self.crate_name = crate_name(self.root / "Cargo.toml")
        lib, self.mod_of, excluded = src / "lib.rs", {}, set()
        for f, mod, test in self.tree(lib, (), True, set()) if lib in self.files else []:
            if f and test:
                excluded.add(f)
            elif f:
                self.mod_of.setdefault(f, mod)
        self.mod_of.setdefault(lib, ())
        for r in [src / "main.rs", *(src / "bin").glob("*.rs"), *(src / "bin").glob("*/main.rs")]:
            excluded |= {r, *(f for f, *_ in self.tree(r, (), True, set()) if f)} if r in self.files else set()
        undeclared, self.file_of, self.notes = [], {}, []
        for f in self.files:
            if f not in self.mod_of and f not in excluded and f.relative_to(src).parts[0] != "bin":
                parts = f.relative_to(src).with_suffix("").parts
                self.mod_of[f] = tuple(parts[:-1] if parts[-1] == "mod" else parts)
                undeclared.append(self.rel(f))
        for f, mod in self.mod_of.items():
            if f in self.files and self.file_of.setdefault(mod, f) != f:
                self.notes.append(f"{self.rel(self.file_of[mod])} and {self.rel(f)} both claim module {'::'.join(mod)}")
        if undeclared and lib in self.files:
            self.notes.append("declared by no `mod` (module path from the file's place): " + ", ".join(undeclared))
        self.checked = sorted(self.file_of.values())
        for f in self.checked:
            for inner in self.files[f].inline:
                self.file_of.setdefault(self.mod_of[f] + inner, f)
        self.modules = {mod[:k] for mod in self.file_of for k in range(len(mod) + 1)}

    def rel(self, f):
        return os.path.relpath(f, self.root)

    def tree(self, f, mod, modrs, seen):
        """Yields (file or None, module path, test-only) for the modules below file f."""
        seen.add(f)
        for name, pattr, test in self.files[f].mods:
            base = f.parent if modrs else f.parent / f.stem
            cands = [f.parent / pattr] if pattr else [base / f"{name}.rs", base / name / "mod.rs"]
            child = next((c for c in (Path(os.path.normpath(c)) for c in cands) if c in self.files), None)
            yield child, mod + (name,), test
            if child and child not in seen:  # a #[path] file's own modules sit beside it, as for mod.rs
                for c, m, t in self.tree(child, mod + (name,), child.name == "mod.rs" or bool(pattr), seen):
                    yield c, m, t or test

    def bindings(self, m):
        """Names that `use` declarations in module m bind to modules: {name: {module}}.
        Names bound to items go to self.items[m]: {name: {module: rest of the path}}."""
        if m not in self.binds:
            b, items, f = self.binds.setdefault(m, {}), self.items.setdefault(m, {}), self.file_of.get(m)
            scope = m[len(self.mod_of[f]):] if f else ()
            uses = [(segs, name) for s, segs, name, _ in self.files[f].uses if s == scope] if f else []
            for _ in range(2 if f else 0):  # twice, for names used above the `use` that binds them
                for segs, name in uses:
                    for chain, rest in self.resolve(m, segs) if name not in (None, "_", "self") else []:
                        if not rest and chain[-1] != m:
                            b.setdefault(name, set()).add(chain[-1])
                        elif rest and chain[-1] != m:
                            items.setdefault(name, {})[chain[-1]] = rest
        return self.binds[m]

    def resolve(self, m, segs):
        """Resolves a path written in module m: [(module chain, unresolved rest)], [] if external."""
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
        chain = [m]
        for i, s in enumerate(segs):
            if m + (s,) in self.modules:
                m = m + (s,)
                chain.append(m)
                continue
            res = []
            for t in sorted(self.bindings(m).get(s, ())) if depth < 8 else []:
                res += [(chain + c, rest) for c, rest in self.walk(t, segs[i + 1:], depth + 1)]
            if not res and self.follow and depth < 8:  # --follow-reexports: on to the item's own module
                for t, rest in self.items[m].get(s, {}).items():
                    res += [(chain + c, r) for c, r in self.walk(t, rest + segs[i + 1:], depth + 1)]
            return res or [(chain, segs[i:])]
        return [(chain, [])]

    def target(self, chain):
        if chain[-1] not in self.file_of:
            self.missing.add("::".join(chain[-1]))
        return self.file_of.get(chain[-1])

    def graph(self, follow):
        """{file: {file it refers to: (first line, path)}} over the checked files."""
        g, self.follow = {f: {} for f in self.checked}, follow
        for f in self.checked:
            for scope, segs, line in self.files[f].refs():
                for chain, _ in self.resolve(self.mod_of[f] + scope, segs):
                    t = self.target(chain)
                    if t in g and t != f and (t not in g[f] or line < g[f][t][0]):
                        g[f][t] = (line, "::".join(segs))
        self.follow = False
        return g


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
    here = Path(__file__).resolve().parent
    ap.add_argument("src", nargs="?", type=Path, default=here.parent / "crates" / "pifork" / "src")
    ap.add_argument("--graph", action="store_true", help="print every edge of the import graph")
    ap.add_argument("--sizes", action="store_true", help="print the line count of each file")
    ap.add_argument("--follow-reexports", action="store_true",
                    help="resolve an item re-exported by `use` (crate::Error) to the module it comes from")
    args = ap.parse_args()
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    if not args.src.is_dir():
        ap.error(f"{args.src}: not a directory")
    crate = Crate(args.src.resolve())
    graph, rel, lines = crate.graph(args.follow_reexports), crate.rel, (lambda f: crate.files[f].lines)
    if crate.missing:
        crate.notes.append("references to modules without a file were skipped: " + ", ".join(sorted(crate.missing)))
    print("".join(f"note: {note}\n" for note in crate.notes), end="")
    if args.graph:
        edges = sorted((rel(a), rel(b), *graph[a][b]) for a in graph for b in graph[a])
        print("".join(f"{a} -> {b}    (line {line}: {path})\n" for a, b, line, path in edges), end="")
    if args.sizes:
        for f in sorted(crate.checked, key=lambda f: (-lines(f), rel(f))):
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
    if crate.checked:
        big = max(crate.checked, key=lambda f: (lines(f), rel(f)))
        print(f"largest file: {rel(big)} ({lines(big)} lines)")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
