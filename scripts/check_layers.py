#!/usr/bin/env python3
"""Checks the layering of src/: no import circles, lower layers never use
higher ones.

Every `crate::...` and `super::...` path in a library source file (test
modules and `tests.rs` files excluded: tests may build their fixtures from a
higher layer) is resolved to the file that defines it. Then:

1. a file may use another top-level module only if that module's layer is
   below its own (LAYERS, lowest first; modules on one line are peers and
   may not use each other);
2. the graph of file-to-file uses has no cycle (a folder's `mod.rs` may use
   its children, and children may not use their `mod.rs` back);
3. only files under `src/filter/` mention `proxy_wasm` (the host).

Prints each violation and exits 1, or prints a one-line summary.
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

LAYERS = [
    ["http", "shared_store"],
    ["limits", "inspection", "cluster"],
    ["auth"],
    ["key_state"],
    ["config"],
    ["ops"],
    ["admission", "sync"],
    ["filter"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def module_of(path: Path) -> list[str]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def file_of(segments: list[str]) -> Path | None:
    """The longest prefix of `segments` that names a module file."""
    best = None
    for n in range(1, len(segments) + 1):
        base = SRC.joinpath(*segments[:n])
        for candidate in (base.with_suffix(".rs"), base / "mod.rs"):
            if candidate.exists():
                best = candidate
                break
        else:
            break
    return best


def strip_tests_and_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    # Drop `#[cfg(test)] mod tests { ... }` blocks by brace matching.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def uses(path: Path) -> set[Path]:
    text = strip_tests_and_comments(path.read_text())
    here = module_of(path)
    found = set()

    def resolve(root: str, tail: list[str]):
        base = [] if root == "crate" else here[:-1]
        target = file_of(base + tail)
        if target is not None and target != path:
            found.add(target)

    for m in USE_GROUP.finditer(text):
        prefix = [s for s in m.group(2).split("::") if s]
        for item in re.split(r",", m.group(3)):
            item = item.strip().split(" as ")[0]
            if not item or item == "*":
                resolve(m.group(1), prefix)
                continue
            tail = [] if item == "self" else re.findall(r"[A-Za-z_]\w*", item.split("{")[0])
            resolve(m.group(1), prefix + tail)
    for m in PATH.finditer(text):
        resolve(m.group(1), [s for s in m.group(2).split("::") if s])
    # A module uses the children it declares (`mod x;`), so a child that
    # uses its parent back closes a circle.
    for m in re.finditer(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;", text, re.M):
        resolve("crate", here + [m.group(1)])
    return found


def main() -> int:
    files = [p for p in SRC.rglob("*.rs") if "bin" not in p.relative_to(SRC).parts and p.name != "tests.rs"]
    graph = {p: uses(p) for p in files}
    problems = []
    for src, targets in graph.items():
        top = module_of(src)[0] if module_of(src) else "lib"
        for dst in targets:
            other = module_of(dst)[0] if module_of(dst) else "lib"
            if top == "lib" or other == top:
                continue
            if other not in RANK or top not in RANK:
                problems.append(f"{src.relative_to(SRC)}: module {other!r} or {top!r} has no layer in check_layers.py")
            elif RANK[other] >= RANK[top]:
                problems.append(
                    f"{src.relative_to(SRC)} (layer {top}) uses {dst.relative_to(SRC)} (layer {other}): not below it"
                )
    # Only the adapter talks to the host.
    for src in files:
        if "filter" not in src.relative_to(SRC).parts and "proxy_wasm" in strip_tests_and_comments(src.read_text()):
            problems.append(f"{src.relative_to(SRC)} uses proxy_wasm: host calls belong in src/filter/")
    # Cycles among files (depth-first search with colours).
    colour: dict[Path, int] = {}
    stack: list[Path] = []

    def visit(node: Path):
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                problems.append("import circle: " + " -> ".join(str(p.relative_to(SRC)) for p in cycle))
            elif colour.get(nxt) is None:
                visit(nxt)
        stack.pop()
        colour[node] = 2

    for node in sorted(graph):
        if colour.get(node) is None:
            visit(node)
    for p in problems:
        print(p)
    if problems:
        return 1
    edges = sum(len(t) for t in graph.values())
    print(f"layers ok: {len(files)} files, {edges} file-to-file uses, no circle, no upward use")
    return 0


if __name__ == "__main__":
    sys.exit(main())
