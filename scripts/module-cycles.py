#!/usr/bin/env python3
"""Import cycles between the modules of a Rust crate, one node per source file.

    python3 scripts/module-cycles.py host/src        # exit 1 and list them if any

A module `uses` another when its code (outside `#[cfg(test)]` items) names it by path:
`use crate::a::b::{C, d::E}`, `crate::a::f()`, `super::x`, `self::y`. A path is resolved to
the deepest module (file) it names. Declaring a child (`mod x;`) is not a use, a re-export
(`pub use x::Y;`) is. Cycles are the strongly connected components of that graph with more
than one module, found with Tarjan's algorithm.
"""

import os
import re
import sys


def modules(src):
    """Module path (tuple) -> file, for lib.rs and everything below it."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs") or f == "main.rs":
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib"):
                rel = rel[:-1]
            out[tuple(rel)] = os.path.join(root, f)
    return out


def strip_tests(text):
    """The text without `#[cfg(test)]` items (a `mod tests { ... }` block or one item)."""
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.find("{", j)
        semi = text.find(";", j)
        if semi >= 0 and (k < 0 or semi < k):
            i = semi + 1
            continue
        depth = 0
        for n in range(k, len(text)):
            depth += {"{": 1, "}": -1}.get(text[n], 0)
            if depth == 0:
                i = n + 1
                break
        else:
            return "".join(out)


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = tree.replace(" ", "").replace("\n", "")
    m = re.match(r"^([^{]*)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.groups()
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand(prefix + part)]


def uses(path, text, mods):
    """The modules that the module at `path` names."""
    text = re.sub(r"//[^\n]*", "", strip_tests(text))
    found = set()
    refs = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        refs += expand(m.group(1))
    refs += re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text)
    for r in refs:
        segs = [s for s in re.split(r"::", r.split(" as ")[0]) if s]
        if not segs:
            continue
        if segs[0] == "crate":
            base, rest = (), segs[1:]
        elif segs[0] in ("super", "self"):
            base = list(path)
            while segs and segs[0] in ("super", "self"):
                if segs.pop(0) == "super":
                    base = base[:-1]
            base, rest = tuple(base), segs
        else:
            continue
        target = base
        for s in rest:
            if base + (s,) in mods or tuple(target) + (s,) in mods:
                target = tuple(target) + (s,)
            else:
                break
        if target != path and target in mods:
            found.add(target)
    return found


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "host/src"
    mods = modules(src)
    graph = {p: uses(p, open(f).read(), mods) for p, f in mods.items()}
    name = lambda p: "::".join(("crate",) + p)
    found = cycles(graph)
    for comp in found:
        print("cycle: " + ", ".join(name(p) for p in comp))
        for p in comp:
            print("  %s -> %s" % (name(p), ", ".join(name(q) for q in sorted(graph[p]) if q in comp)))
    print("%d modules, %d uses, %d cycles" % (len(mods), sum(map(len, graph.values())), len(found)))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
