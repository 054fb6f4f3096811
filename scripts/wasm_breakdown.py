#!/usr/bin/env python3
"""What takes the bytes of rag_guard.wasm (`make wasm-breakdown`).

Builds the release wasm again with its symbol names kept (same profile,
`strip = false`, in target/wasm-names so the shipped build is untouched),
runs the same `wasm-opt` as `make wasm` on it (with `-g`, which keeps
the names), lists every function and data segment with twiggy (`twiggy top`), and sums
them by crate: the first path segment of each function's name. Generic code
is counted in the crate whose function was instantiated (a
`Vec<T>::push` of rag-guard's is under `alloc`). Custom sections (names,
debug info) are left out: the shipped module strips them, and the total
printed is its code and data.
"""

from __future__ import annotations

import collections
import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target" / "wasm-names"
WASM = TARGET / "wasm32-wasip1" / "release" / "rag_guard.wasm"
OPTIMIZED = TARGET / "rag_guard.opt.wasm"
WASM_OPT = ROOT / ".tools" / "node_modules" / ".bin" / "wasm-opt"
# The Makefile's WASM_OPT_FLAGS and WASM_FEATURES.
FLAGS = ["-Oz", "--one-caller-inline-max-function-size=20"]
FEATURES = ["--enable-bulk-memory", "--enable-sign-ext", "--enable-nontrapping-float-to-int",
            "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue"]


def main() -> int:
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET), CARGO_PROFILE_RELEASE_STRIP="false",
               CARGO_PROFILE_RELEASE_DEBUG="false")
    subprocess.run(["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1", "--lib"],
                   cwd=ROOT, env=env, check=True)
    subprocess.run([str(WASM_OPT), *FLAGS, "-g", *FEATURES, str(WASM), "-o", str(OPTIMIZED)], check=True)
    out = subprocess.run(["twiggy", "top", "-n", "1000000", "-f", "csv", str(OPTIMIZED)],
                         capture_output=True, text=True, check=True).stdout
    by_crate: collections.Counter[str] = collections.Counter()
    for row in csv.DictReader(io.StringIO(out)):
        name, size = row["Name"], int(row["ShallowSize"])
        if name.startswith("custom section") or name.endswith("subsection"):
            continue
        if name.startswith("data segment"):
            # wasm-opt splits .rodata into many segments: one line for all.
            by_crate["data segments (Unicode tables, strings)"] += size
            continue
        bare = re.sub(r"^[<&\s]*(mut\s+)?(dyn\s+)?", "", name)
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", bare)
        by_crate[match.group(0) if match else "(other)"] += size
    total = sum(by_crate.values())
    print(f"rag_guard.wasm without its custom sections: {total:,} bytes")
    print("| crate (first path segment) | bytes | share |")
    print("|---|---|---|")
    for crate, size in by_crate.most_common(20):
        print(f"| {crate} | {size:,} | {100 * size / total:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
