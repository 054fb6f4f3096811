"""Instructions the prompt-injection scorer executes, counted by valgrind
(`make bench-scorer`, also run by `make bench-detection`).

Timings on the shared development VM vary by a third from one run to the
next; instruction counts repeat exactly. This runs the native example
`scorer_instructions` (examples/scorer_instructions.rs) under callgrind
with 0 and N repetitions of one text and prints the difference per text:
`Scorer::logit` on a 2,000-character question and `screen_document` on
1 MB of prose, the texts of `cargo bench --bench hot_paths`; then the
last-level cache misses a question adds when other work ran before it (as
in a proxy), simulated by cachegrind. Native x86-64
instructions, not V8's: a count to compare one build of the scorer with
another, not a time in Envoy (bench/detection_cost.py measures that).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "target" / "bench-native" / "release" / "examples" / "scorer_instructions"
RUNS = {"question": 100, "document": 2}


def instructions(what: str, runs: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(EXAMPLE), what, str(runs)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if not found:
        raise SystemExit(f"no instruction count from valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def ll_misses(what: str, runs: int) -> int:
    """Last-level data-cache misses simulated by cachegrind (1 MiB, 16-way)."""
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--cachegrind-out-file=/dev/null",
         "--LL=1048576,16,64", str(EXAMPLE), what, str(runs)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    found = re.search(r"LLd misses:\s+([\d,]+)", out.stderr)
    if not found:
        raise SystemExit(f"no cache counts from valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    if not EXAMPLE.exists():
        print(f"{EXAMPLE} is missing: run `make bench-scorer`", file=sys.stderr)
        return 1
    for what, runs in RUNS.items():
        per = (instructions(what, runs) - instructions(what, 0)) / runs
        text = "a 2,000-character question (Scorer::logit)" if what == "question" \
            else "1 MB of prose (Scorer::screen_document)"
        print(f"scorer instructions, {text}: {per:,.0f} per text ({per / (2000 if what == 'question' else 1 << 20):.1f} per byte)")
    # In a proxy the scorer's table is cold: other work runs between two
    # questions. 4 MiB written between questions ("pollute"), with and
    # without the question ("cold"): the misses the question adds.
    runs = 200
    misses = (ll_misses("cold", runs) - ll_misses("pollute", runs)) / runs
    print(f"scorer cache misses, a 2,000-character question after 4 MiB of other work: {misses:,.0f} "
          f"last-level misses per question (cachegrind, 1 MiB LL; the table is 1,024 lines of 64 bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
