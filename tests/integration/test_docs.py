"""The documentation stays true: every ```json block in README.md and
docs/*.md is either a plugin configuration that `rag-guard check-config`
accepts, or explicitly marked as something else, and the README stays short
and points at every docs file.

How a ```json block is treated:

- no marker, and a JSON object with a top-level `keys`: a full plugin
  configuration, checked as it is;
- `<!-- config-fragment -->` on the line just before the fence: part of a
  configuration (`{"tiers": ...}`), merged at the top level into
  `{"keys": []}` and checked;
- `<!-- config-fragment: key -->`: one entry of `keys`, checked as
  `{"keys": [entry]}`;
- `<!-- not-config -->`: a reply, an event, anything that is not a
  configuration; it must still be valid JSON (one value, or one value per
  line);
- anything else fails, so that a new example cannot escape the check.

Relative links (files and #anchors) in these files must resolve too.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import stack

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS_DIR = ROOT / "docs"
MAX_README_LINES = 260

FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
MARKER = re.compile(r"^[ \t]*<!--[ \t]*(?P<kind>[a-z-]+(?::[ \t]*[a-z]+)?)[ \t]*-->[ \t]*$")
MARKER_KINDS = {"config-fragment", "config-fragment: key", "not-config"}
JSON_LANGS = {"json"}


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS_DIR.glob("*.md"))]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str | None  # normalized marker kind on the line just before the fence
    text: str

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"


@dataclass
class Parsed:
    blocks: list[Block]
    # (line, problem) found while parsing: unterminated fences, stray markers
    problems: list[tuple[int, str]]
    # the text with fenced blocks blanked out (line numbers preserved)
    prose: str


def normalize_marker(kind: str) -> str:
    return re.sub(r":[ \t]*", ": ", kind)


def parse(path: Path) -> Parsed:
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    problems: list[tuple[int, str]] = []
    prose = list(lines)
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m.group("fence"), m.group("indent")
        lang = m.group("info").lower()
        start = i
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                closed = True
                break
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        if not closed:
            problems.append((start + 1, "unterminated code fence"))
        for j in range(start, min(i + 1, len(lines))):
            prose[j] = ""
        marker = None
        if start > 0:
            mm = MARKER.match(lines[start - 1])
            if mm:
                marker = normalize_marker(mm.group("kind"))
        blocks.append(Block(path, start + 1, lang, marker, "\n".join(body)))
        i += 1
    # Markers must sit on the line just before a ```json fence, and be known.
    fence_lines = {b.line: b for b in blocks}
    for n, line in enumerate(lines, start=1):
        mm = MARKER.match(line)
        if not mm or not mm.group("kind").startswith(("config", "not-config")):
            continue
        kind = normalize_marker(mm.group("kind"))
        if kind not in MARKER_KINDS:
            problems.append((n, f"unknown marker <!-- {kind} --> (known: {sorted(MARKER_KINDS)})"))
        nxt = fence_lines.get(n + 1)
        if nxt is None or nxt.lang not in JSON_LANGS:
            problems.append((n, f"marker <!-- {kind} --> is not on the line just before a ```json fence"))
    return Parsed(blocks, problems, "\n".join(prose))


PARSED = {path: parse(path) for path in doc_files()}
JSON_BLOCKS = [b for p in PARSED.values() for b in p.blocks if b.lang in JSON_LANGS]


def load_json_values(block: Block) -> list:
    """A not-config block: one JSON value, or one JSON value per line."""
    try:
        return [json.loads(block.text)]
    except json.JSONDecodeError:
        pass
    values = []
    for n, line in enumerate(block.text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as e:
            pytest.fail(f"{block.where}: not valid JSON (nor one JSON value per line; "
                        f"line {n} of the block: {e})\n{block.text}")
    return values


def plugin_config(block: Block) -> dict:
    """The configuration a block stands for, or a test failure saying why it
    is neither a configuration nor marked."""
    try:
        value = json.loads(block.text)
    except json.JSONDecodeError as e:
        pytest.fail(f"{block.where}: ```json block is not valid JSON ({e}); fix it, or mark it "
                    f"<!-- not-config --> on the line before the fence if it is not a "
                    f"configuration\n{block.text}")
    if block.marker == "config-fragment: key":
        assert isinstance(value, dict), f"{block.where}: a key entry must be a JSON object"
        return {"keys": [value]}
    if block.marker == "config-fragment":
        assert isinstance(value, dict), f"{block.where}: a configuration fragment must be a JSON object"
        return {"keys": [], **value}
    if not (isinstance(value, dict) and "keys" in value):
        pytest.fail(f"{block.where}: ```json block is not a full plugin configuration (no top-level "
                    f"`keys`) and is not marked. Put <!-- config-fragment --> (merged into "
                    f'{{"keys": []}}), <!-- config-fragment: key --> (one entry of `keys`) or '
                    f"<!-- not-config --> on the line just before the fence.\n{block.text}")
    return value


@pytest.fixture(scope="module")
def rag_guard() -> Path:
    binary = stack.BIN_DIR / "rag-guard"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build it with `make bins` (make test does)")
    return binary


def test_docs_have_json_examples():
    assert (DOCS_DIR).is_dir(), "docs/ is missing"
    assert JSON_BLOCKS, "no ```json block found in README.md and docs/*.md"


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_fences_and_markers_are_well_formed(path):
    problems = PARSED[path].problems
    assert not problems, "\n".join(f"{rel(path)}:{n}: {what}" for n, what in problems)


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=lambda b: b.where)
def test_json_block_is_a_valid_config_or_marked(block, rag_guard, tmp_path):
    if block.marker == "not-config":
        load_json_values(block)
        return
    config = plugin_config(block)
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(config, indent=2))
    cli = subprocess.run([str(rag_guard), "check-config", str(path)],
                         capture_output=True, text=True, timeout=30)
    kind = block.marker or "full configuration"
    assert cli.returncode == 0, (
        f"{block.where}: `rag-guard check-config` refused this example ({kind}), "
        f"exit {cli.returncode}:\n{cli.stderr.strip()}\nchecked configuration:\n"
        f"{json.dumps(config, indent=2)}"
    )


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move details into docs/")


# --- links -----------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$", re.M)


def blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def prose_without_code(path: Path) -> str:
    """Text outside fenced blocks and inline code spans, offsets preserved."""
    return CODE_SPAN.sub(blank, PARSED[path].prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(PARSED[path].prose):
        base = slug(m.group("text"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    text = prose_without_code(path)
    return [(text.count("\n", 0, m.start()) + 1, m.group("target")) for m in LINK.finditer(text)]


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_relative_links_resolve(path):
    broken = []
    for line, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{rel(path)}:{line}: {target}: no such file")
            continue
        if anchor and dest.suffix == ".md":
            if dest not in PARSED:
                PARSED[dest] = parse(dest)
            if anchor not in anchors(dest):
                broken.append(f"{rel(path)}:{line}: {target}: no heading with anchor #{anchor} "
                              f"in {rel(dest)}")
    assert not broken, "\n".join(broken)


def test_readme_links_every_doc():
    linked = set()
    for _, target in links(README):
        file_part = target.partition("#")[0]
        if file_part:
            linked.add((README.parent / file_part).resolve())
    missing = [rel(p) for p in sorted(DOCS_DIR.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md does not link to: {', '.join(missing)}"
