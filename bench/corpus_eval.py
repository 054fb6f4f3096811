"""Detection and false-positive rates of the injection screening on the
development corpus (`make corpus-eval`; not part of `make test`).

Runs `rag-guard scan` (the filter's own code) on ../shared/corpus/dev/
malicious.txt and benign.txt as the `question` field of POST /query with
the default configuration, and prints the rates, the categories that fired,
and (with --show N) up to N misses and N false positives to look at.

Then the sets written for rag-guard (tests/data/README.md), which neither
the rules nor any model were tuned on: the hard-benign questions (each
should pass) and the own attacks by kind (each should be blocked), then
the RAG-specific benign messages and attacks.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "train"))
from sources import unescape  # noqa: E402  (the corpus format undone)
CORPUS = ROOT.parent / "shared" / "corpus" / "dev"
SCANNER = ROOT / "target" / "release" / "rag-guard"
DATA = ROOT / "tests" / "data"


def escape(text: str) -> str:
    """The corpus format of one sample (the scanner undoes it)."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def scan_texts(texts: list[str], config: str | None) -> list[dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
        f.write("".join(escape(t) + "\n" for t in texts))
        f.flush()
        verdicts = scan(Path(f.name), config)
    assert len(verdicts) == len(texts), (len(verdicts), len(texts))
    return verdicts


def benign_set(name: str, config: str | None, show: int, escaped: bool = False) -> None:
    benign = [unescape(l) if escaped else l for l in (DATA / name).read_text(encoding="utf-8").split("\n") if l.strip()]
    verdicts = scan_texts(benign, config)
    blocked = [(t, v) for t, v in zip(benign, verdicts) if v["verdict"] != "pass"]
    print(f"{name} (tests/data): {len(blocked)}/{len(benign)} flagged = "
          f"{100 * len(blocked) / len(benign):.1f}%")
    for text, v in blocked[:show]:
        print(f"    [{v.get('rule') or v.get('reason') or ''}] {text[:160]}")


def attack_set(name: str, config: str | None) -> None:
    attacks = [json.loads(l) for l in (DATA / name).read_text(encoding="utf-8").split("\n") if l.strip()]
    verdicts = scan_texts([a["text"] for a in attacks], config)
    by_kind: dict[str, list[bool]] = collections.defaultdict(list)
    for a, v in zip(attacks, verdicts):
        by_kind[a["kind"]].append(v["verdict"] != "pass")
    caught = sum(sum(v) for v in by_kind.values())
    print(f"{name} (tests/data): {caught}/{len(attacks)} flagged = {100 * caught / len(attacks):.1f}%")
    for kind, hits in by_kind.items():
        print(f"    {kind}: {sum(hits)}/{len(hits)}")


def own_sets(config: str | None, show: int) -> None:
    benign_set("hard_benign.txt", config, show)
    attack_set("own_attacks.jsonl", config)
    # RAG-specific attacks and their benign look-alikes, held out as well.
    benign_set("rag_benign.txt", config, show, escaped=True)
    attack_set("rag_attacks.jsonl", config)


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
    own_sets(args.config, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
