"""What the prompt-injection scorer and document screening cost inside
Envoy (`make bench-detection`, also run by `make bench`).

Three single-worker Envoys with the built module: the default
configuration (scorer on), the same with `injection_model.mode: off`
(rules only), and the same with /documents `content` screened for
`document_injection`. Each gets the same requests one at a time; the
filter's own `rag_guard_inspection_duration_us` histogram (the time of
`BodyInspection::inspect` in V8, per request) gives the mean time per
body, read from Envoy's Prometheus output before and after each round.
The two Envoys compared get their requests alternately (drift on a shared
machine falls on both), in five rounds; the differences (their median) are
the scorer's cost on a 2,000-character question and the
document screening's cost on 1 MB of prose. Envoy's histogram sums are
approximate (a few percent); the figures are means over all requests.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import stack  # noqa: E402
from client import request  # noqa: E402
from suite import KEY, PLUGIN, PLUGIN_DOCS, PLUGIN_RULES  # noqa: E402

DATA = stack.ROOT / "tests" / "data"
QUESTIONS = 1000
DOCUMENTS = 20
ROUNDS = 5
# BASELINE_WASM=path: also compare this module with another build (both
# with the scorer on), alternately, e.g. the module of an earlier commit.
BASELINE = Path(os.environ["BASELINE_WASM"]).resolve() if os.environ.get("BASELINE_WASM") else None
# 2,000 characters of varied English prose (the first benign document
# paragraphs), as one question.
QUESTION = " ".join((DATA / "train_documents.txt").read_text().splitlines())[:2000]
# 1 MB of the paragraphs separated by blank lines, as a document has them.
# A flagged document's screening stops at its finding, so the run fails if
# this one is flagged (main) rather than time part of a megabyte.
PROSE = ("\n\n".join((DATA / "train_documents.txt").read_text().splitlines()) * 200)[: 1024 * 1024]


def histogram(envoy: stack.Envoy) -> tuple[float, int]:
    with urllib.request.urlopen(f"{envoy.admin_url}/stats/prometheus", timeout=5) as r:
        prom = r.read().decode()
    total = re.search(r"^rag_guard_inspection_duration_us_sum\{\} ([\d.e+]+)", prom, re.M)
    count = re.search(r"^rag_guard_inspection_duration_us_count\{\} (\d+)", prom, re.M)
    return (float(total.group(1)) if total else 0.0, int(count.group(1)) if count else 0)


def documents_flagged(envoy: stack.Envoy) -> int:
    with urllib.request.urlopen(f"{envoy.admin_url}/stats/prometheus", timeout=5) as r:
        prom = r.read().decode()
    found = re.search(r'^rag_guard_body_flagged\{category="document_injection"\} (\d+)', prom, re.M)
    return int(found.group(1)) if found else 0


def send(envoy: stack.Envoy, path: str, body: bytes) -> None:
    headers = [("X-API-Key", KEY), ("Content-Type", "application/json")]
    resp = request(envoy.port, "POST", path, headers=headers, body=body, timeout=60)
    assert resp.status in (200, 201), (resp.status, resp.body[:200])


def settled(envoys: list[stack.Envoy], counts: list[int]) -> list[tuple[float, int]]:
    """The histograms once each has counted `counts` more requests."""
    deadline = time.monotonic() + 30
    while True:
        now = [histogram(e) for e in envoys]
        if all(h[1] >= c for h, c in zip(now, counts)) or time.monotonic() > deadline:
            return now
        time.sleep(1)


def added_us(with_: tuple, without: tuple, n: int, rounds: int) -> tuple[float, float, list[float]]:
    """Mean inspection time per body in `with_` and `without` (each an
    (envoy, path, body)), and the median of the rounds' differences: the
    two Envoys get their requests alternately, so that the machine's drift
    (large on a shared VM) falls on both alike."""
    (ea, pa, ba), (eb, pb, bb) = with_, without
    for _ in range(max(5, n // 20)):  # warm-up, not counted
        send(ea, pa, ba)
        send(eb, pb, bb)
    time.sleep(6)  # Envoy flushes histograms every 5 s
    sums, diffs = [0.0, 0.0], []
    for _ in range(rounds):
        before = [histogram(ea), histogram(eb)]
        for _ in range(n // rounds):
            send(ea, pa, ba)
            send(eb, pb, bb)
        after = settled([ea, eb], [h[1] + n // rounds for h in before])
        means = []
        for i, (h0, h1) in enumerate(zip(before, after)):
            assert h1[1] - h0[1] == n // rounds, (h0, h1, n // rounds)
            means.append((h1[0] - h0[0]) / (n // rounds))
            sums[i] += means[-1] / rounds
        diffs.append(means[0] - means[1])
    return sums[0], sums[1], sorted(diffs)


def main() -> int:
    upstream, port = stack.start_upstream()
    envoys: dict[str, stack.Envoy] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [("scorer", PLUGIN, stack.WASM), ("rules", PLUGIN_RULES, stack.WASM),
                    ("documents", PLUGIN_DOCS, stack.WASM)]
            if BASELINE:
                runs += [("base-scorer", PLUGIN, BASELINE), ("base-documents", PLUGIN_DOCS, BASELINE)]
            for name, plugin, wasm in runs:
                cfg = stack.render_envoy_config(plugin, listen_port=stack.free_port(), wasm=wasm,
                                                admin_port=stack.free_port(), upstream=("127.0.0.1", port))
                envoys[name] = stack.start_envoy(cfg, Path(tmp) / name, concurrency=1,
                                                 wasm_log_level="warning")
            question = json.dumps({"question": QUESTION}).encode()
            document = json.dumps({"filename": "big.txt", "content": PROSE}).encode()
            q_on, q_off, q_diffs = added_us((envoys["scorer"], "/query", question),
                                            (envoys["rules"], "/query", question), QUESTIONS, ROUNDS)
            d_on, d_off, d_diffs = added_us((envoys["documents"], "/documents", document),
                                            (envoys["scorer"], "/documents", document), DOCUMENTS, ROUNDS)
            if BASELINE:
                bq_on, q_new, bq_diffs = added_us((envoys["base-scorer"], "/query", question),
                                                  (envoys["scorer"], "/query", question), QUESTIONS, ROUNDS)
                bd_on, d_new, bd_diffs = added_us((envoys["base-documents"], "/documents", document),
                                                  (envoys["documents"], "/documents", document), DOCUMENTS, ROUNDS)
            for name in ("documents", "base-documents"):
                if name in envoys and documents_flagged(envoys[name]):
                    print(f"the 1 MB document is flagged by {name}: its screening stopped at the finding, "
                          "the times are not of a whole megabyte", file=sys.stderr)
                    return 1
    finally:
        for envoy in envoys.values():
            envoy.stop()
        stack.stop_process(upstream)
    q_mid, d_mid = q_diffs[len(q_diffs) // 2], d_diffs[len(d_diffs) // 2]
    print(f"inspection of a 2,000-character question, {QUESTIONS} to each Envoy alternately in {ROUNDS} rounds: "
          f"rules + scorer {q_on:.1f} us, rules only {q_off:.1f} us: the scorer adds {q_mid:.1f} us "
          f"(median of the rounds; {q_diffs[0]:.1f} to {q_diffs[-1]:.1f})")
    print(f"inspection of a 1 MB document of prose, {DOCUMENTS} to each Envoy alternately in {ROUNDS} rounds: "
          f"screened for document_injection {d_on / 1000:.2f} ms, not screened {d_off / 1000:.2f} ms: "
          f"document screening adds {d_mid / 1000:.2f} ms (median of the rounds; "
          f"{d_diffs[0] / 1000:.2f} to {d_diffs[-1] / 1000:.2f})")
    if BASELINE:
        print(f"against {BASELINE} (scorer on, alternately): 2,000-character question {bq_on:.1f} us there, "
              f"{q_new:.1f} us here, there minus here {bq_diffs[len(bq_diffs) // 2]:+.1f} us (median of the "
              f"rounds; {bq_diffs[0]:+.1f} to {bq_diffs[-1]:+.1f}); 1 MB document screened {bd_on / 1000:.2f} ms "
              f"there, {d_new / 1000:.2f} ms here, there minus here {bd_diffs[len(bd_diffs) // 2] / 1000:+.2f} ms "
              f"({bd_diffs[0] / 1000:+.2f} to {bd_diffs[-1] / 1000:+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
