"""Detection and false-positive rates of the injection screening on the
development corpus (`make corpus-eval`; not part of `make test`).

Runs `rag-guard scan` (the filter's own code) on ../shared/corpus/dev/
malicious.txt and benign.txt as the `question` field of POST /query with
the default configuration, and prints the rates, the categories that fired,
and (with --show N) up to N misses and N false positives to look at.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "dev"
SCANNER = ROOT / "target" / "release" / "rag-guard"


def scan(path: Path, config: str | None) -> list[dict]:
    argv = [str(SCANNER), "scan"] + (["--config", config] if config else [])
    with open(path, "rb") as f:
        out = subprocess.run(argv, stdin=f, capture_output=True, check=True, timeout=600).stdout
    return [json.loads(line) for line in out.decode().splitlines()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config")
    ap.add_argument("--show", type=int, default=0)
    ap.add_argument("--corpus", default=str(CORPUS))
    args = ap.parse_args()
    corpus = Path(args.corpus)
    results = {}
    for name in ["malicious", "benign"]:
        path = corpus / f"{name}.txt"
        verdicts = scan(path, args.config)
        # Split exactly as the scanner does (on \n only; splitlines() would
        # also split on \x0b, \x1c, U+2028 and misalign the examples).
        lines = path.read_bytes().decode("utf-8", "replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        assert len(lines) == len(verdicts), (len(lines), len(verdicts))
        flagged = [v["verdict"] != "pass" for v in verdicts]
        by_cat = collections.Counter(v.get("category") or v.get("reason") for v in verdicts if v["verdict"] != "pass")
        results[name] = (sum(flagged), len(flagged), by_cat)
        print(f"{name}: {sum(flagged)}/{len(flagged)} flagged = {100 * sum(flagged) / len(flagged):.1f}%")
        for cat, n in by_cat.most_common():
            print(f"    {cat}: {n}")
        if args.show:
            want = name == "benign"
            picks = [(l, v) for l, v, f in zip(lines, verdicts, flagged) if f == want][: args.show]
            print(f"  {'false positives' if want else 'misses'}:")
            for line, v in picks:
                print(f"    [{v.get('rule') or v.get('reason') or ''}] {line[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
