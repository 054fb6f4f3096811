"""The training and evaluation texts of the prompt-injection scorer, by
family (a family is one source, or one surface form of a source).

The development corpus (../shared/corpus/dev) has no source labels; its
lines are assigned to families by their surface form:

- malicious `spikee`: jailbreak-template x instruction combinations, marked
  by the generator's placeholders (`'TEST'`, `spikee`, `PLACEHOLDER`,
  `[QUERY]`);
- malicious `handwritten`: the other natural-language injections (at least
  six words, mostly letters, no markup or code);
- the rest of malicious.txt (XSS, SQL, template and path payloads) is not
  prompt injection: the rules handle it and the scorer does not train on it;
- benign `questions` (ending in `?`, five words or more: multi-hop and
  text-to-SQL questions), `chat` (other natural-language lines) and
  `strings` (mostly symbols, or under four words: the naughty strings, the
  false-positive lists, the CRS cases).

Families written for rag-guard (tests/data/README.md): malicious
`rg-attacks` and `rg-attacks-b` to `-g` (train_attacks*.jsonl, each
written separately in other styles), `rg-indirect`, `rg-indirect-b`
(train_indirect*.jsonl), benign `rg-benign` and `rg-benign-b` to `-g`
(train_benign*.txt; `-d` to `-g` escaped like the corpus), `rg-meta` (train_meta.txt), `rg-documents`,
`rg-documents-b` (train_documents*.txt), and `rg-poisoned`,
`rg-poisoned-b`, made of three of them each (our attacks planted in our
paragraphs). Held out from all training, for
evaluation only: hard_benign.txt, own_attacks.jsonl, documents_eval.jsonl,
rag_attacks.jsonl, rag_benign.txt (the last two: bench/corpus_eval.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "dev"
DATA = ROOT / "tests" / "data"

SPIKEE = re.compile(r"'TEST'|spikee|PLACEHOLDER|\[QUERY\]")
CODE = re.compile(
    r"javascript|alert\s*\(|onerror|\bon[a-z]+\s*=|<\s*(iframe|img|svg|frameset|body|div|a\s|input|style|script|math|object)"
    r"|=>|\(\)|\bselect\b.*\bfrom\b|\(\s*select\b|\bunion\b|@@?version|\boutfile\b|^\s*//|--\s*$"
    r"|\{\{|\{%|\$\{|\.\./",
    re.I,
)


def unescape(line: str) -> str:
    """Undo the corpus escaping (backslash, CR, LF)."""
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            n = line[i + 1]
            if n in "\\nr":
                out.append({"\\": "\\", "n": "\n", "r": "\r"}[n])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def letter_share(text: str) -> float:
    return sum(c.isalpha() or c.isspace() for c in text) / max(1, len(text))


def corpus_lines(name: str) -> list[str]:
    return [unescape(l) for l in (CORPUS / f"{name}.txt").read_text(encoding="utf-8").splitlines() if l]


def malicious_family(text: str) -> str | None:
    if SPIKEE.search(text):
        return "spikee"
    if len(text.split()) >= 6 and letter_share(text) >= 0.75 and not CODE.search(text):
        return "handwritten"
    return None


def benign_family(text: str) -> str:
    words = len(text.split())
    if words < 4 or letter_share(text) < 0.75:
        return "strings"
    if text.rstrip().endswith("?") and words >= 5:
        return "questions"
    return "chat"


def lines(path: Path) -> list[str]:
    return [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def training_families() -> dict[str, tuple[int, list[str]]]:
    """family -> (label, texts); label 1 is an injection."""
    fams: dict[str, tuple[int, list[str]]] = {}
    for text in corpus_lines("malicious"):
        fam = malicious_family(text)
        if fam:
            fams.setdefault(fam, (1, []))[1].append(text)
    for text in corpus_lines("benign"):
        fams.setdefault(benign_family(text), (0, []))[1].append(text)
    attacks = [json.loads(l)["text"] for l in lines(DATA / "train_attacks.jsonl")]
    fams["rg-attacks"] = (1, attacks)
    fams["rg-attacks-b"] = (1, [json.loads(l)["text"] for l in lines(DATA / "train_attacks_b.jsonl")])
    attacks_c = [json.loads(l)["text"] for l in lines(DATA / "train_attacks_c.jsonl")]
    fams["rg-attacks-c"] = (1, attacks_c)
    fams["rg-attacks-d"] = (1, [json.loads(l)["text"] for l in lines(DATA / "train_attacks_d.jsonl")])
    fams["rg-attacks-e"] = (1, [json.loads(l)["text"] for l in lines(DATA / "train_attacks_e.jsonl")])
    fams["rg-attacks-f"] = (1, [json.loads(l)["text"] for l in lines(DATA / "train_attacks_f.jsonl")])
    fams["rg-attacks-g"] = (1, [json.loads(l)["text"] for l in lines(DATA / "train_attacks_g.jsonl")])
    fams["rg-benign"] = (0, lines(DATA / "train_benign.txt"))
    fams["rg-benign-b"] = (0, lines(DATA / "train_benign_b.txt"))
    fams["rg-benign-c"] = (0, lines(DATA / "train_benign_c.txt"))
    # One message per line, escaped like the corpus (\\n between paragraphs).
    fams["rg-benign-d"] = (0, [unescape(l) for l in lines(DATA / "train_benign_d.txt")])
    fams["rg-benign-e"] = (0, [unescape(l) for l in lines(DATA / "train_benign_e.txt")])
    fams["rg-benign-f"] = (0, [unescape(l) for l in lines(DATA / "train_benign_f.txt")])
    fams["rg-benign-g"] = (0, [unescape(l) for l in lines(DATA / "train_benign_g.txt")])
    fams["rg-meta"] = (0, lines(DATA / "train_meta.txt"))
    paragraphs = lines(DATA / "train_documents.txt")
    fams["rg-documents"] = (0, windows(paragraphs))
    paragraphs_b = lines(DATA / "train_documents_b.txt")
    fams["rg-documents-b"] = (0, windows(paragraphs_b))
    indirect = [json.loads(l)["text"] for l in lines(DATA / "train_indirect.jsonl")]
    fams["rg-indirect"] = (1, indirect)
    indirect_b = [json.loads(l)["text"] for l in lines(DATA / "train_indirect_b.jsonl")]
    fams["rg-indirect-b"] = (1, indirect_b)
    fams["rg-poisoned"] = (1, poisoned(paragraphs, attacks) + poisoned(paragraphs[::-1], indirect))
    fams["rg-poisoned-b"] = (1, poisoned(paragraphs_b, indirect_b) + poisoned(paragraphs_b[::-1], attacks_c))
    return fams


# Families made from others: left out of training whenever one of those is.
DERIVED = {
    "rg-poisoned": {"rg-documents", "rg-attacks", "rg-indirect"},
    "rg-poisoned-b": {"rg-documents-b", "rg-indirect-b", "rg-attacks-c"},
}
# Document paragraphs: the document threshold is chosen on these.
DOCUMENTS = {"rg-documents", "rg-documents-b"}


def windows(paragraphs: list[str]) -> list[str]:
    """Documents come to the scorer in windows of about 512 bytes: the
    paragraphs (about 300-600) and pairs of neighbours cut to that size."""
    return paragraphs + [f"{a} {b}"[:560] for a, b in zip(paragraphs, paragraphs[1:] + paragraphs[:1])]


def poisoned(paragraphs: list[str], attacks: list[str]) -> list[str]:
    """Indirect injections for training: each of our attacks planted in one
    of our benign document paragraphs, at a sentence boundary (start,
    middle or end, in turn). Deterministic."""
    out = []
    for i, attack in enumerate(attacks):
        para = paragraphs[(i * 7) % len(paragraphs)]
        cuts = [0] + [m.end() for m in re.finditer(r"[.!?]\s+", para)] + [len(para)]
        cut = cuts[[0, len(cuts) // 2, -1][i % 3]]
        out.append(f"{para[:cut]} {attack} {para[cut:]}".strip())
    return out


def held_out() -> dict[str, list]:
    return {
        "hard_benign": lines(DATA / "hard_benign.txt"),
        "own_attacks": [json.loads(l) for l in lines(DATA / "own_attacks.jsonl")],
        "documents": [json.loads(l) for l in lines(DATA / "documents_eval.jsonl")]
        if (DATA / "documents_eval.jsonl").exists()
        else [],
    }
