"""What the prompt-injection scorer and document screening cost inside
Envoy (`make bench-detection`, also run by `make bench`).

Three single-worker Envoys with the built module: the default
configuration (scorer on), the same with `injection_model.mode: off`
(rules only), and the same with /documents `content` screened for
`document_injection`. Each gets the same requests one at a time; the
filter's own `rag_guard_inspection_duration_us` histogram (the time of
`BodyInspection::inspect` in V8, per request) gives the mean time per
body, read from Envoy's Prometheus output before and after. The
differences are the scorer's cost on a 2,000-character question and the
document screening's cost on 1 MB of prose. Envoy's histogram sums are
approximate (a few percent); the figures are means over all requests.
"""

from __future__ import annotations

import json
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
# 2,000 characters of varied English prose (the first benign document
# paragraphs), as one question.
QUESTION = " ".join((DATA / "train_documents.txt").read_text().splitlines())[:2000]
PROSE = (" ".join((DATA / "train_documents.txt").read_text().splitlines()) * 200)[: 1024 * 1024]


def histogram(envoy: stack.Envoy) -> tuple[float, int]:
    with urllib.request.urlopen(f"{envoy.admin_url}/stats/prometheus", timeout=5) as r:
        prom = r.read().decode()
    total = re.search(r"^rag_guard_inspection_duration_us_sum\{\} ([\d.e+]+)", prom, re.M)
    count = re.search(r"^rag_guard_inspection_duration_us_count\{\} (\d+)", prom, re.M)
    return (float(total.group(1)) if total else 0.0, int(count.group(1)) if count else 0)


def mean_inspection_us(envoy: stack.Envoy, path: str, body: bytes, n: int) -> float:
    headers = [("X-API-Key", KEY), ("Content-Type", "application/json")]
    for _ in range(max(5, n // 20)):  # warm-up, not counted
        request(envoy.port, "POST", path, headers=headers, body=body, timeout=60)
    time.sleep(6)  # Envoy flushes histograms every 5 s
    before = histogram(envoy)
    for _ in range(n):
        resp = request(envoy.port, "POST", path, headers=headers, body=body, timeout=60)
        assert resp.status in (200, 201), (resp.status, resp.body[:200])
    deadline = time.monotonic() + 30
    while True:
        after = histogram(envoy)
        if after[1] - before[1] >= n or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert after[1] - before[1] == n, (before, after, n)
    return (after[0] - before[0]) / n


def main() -> int:
    upstream, port = stack.start_upstream()
    envoys: dict[str, stack.Envoy] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, plugin in [("scorer", PLUGIN), ("rules", PLUGIN_RULES), ("documents", PLUGIN_DOCS)]:
                cfg = stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                                admin_port=stack.free_port(), upstream=("127.0.0.1", port))
                envoys[name] = stack.start_envoy(cfg, Path(tmp) / name, concurrency=1,
                                                 wasm_log_level="warning")
            question = json.dumps({"question": QUESTION}).encode()
            document = json.dumps({"filename": "big.txt", "content": PROSE}).encode()
            q_on = mean_inspection_us(envoys["scorer"], "/query", question, QUESTIONS)
            q_off = mean_inspection_us(envoys["rules"], "/query", question, QUESTIONS)
            d_off = mean_inspection_us(envoys["scorer"], "/documents", document, DOCUMENTS)
            d_on = mean_inspection_us(envoys["documents"], "/documents", document, DOCUMENTS)
    finally:
        for envoy in envoys.values():
            envoy.stop()
        stack.stop_process(upstream)
    print(f"inspection of a 2,000-character question, mean of {QUESTIONS} in Envoy: "
          f"rules + scorer {q_on:.1f} us, rules only {q_off:.1f} us: the scorer adds {q_on - q_off:.1f} us")
    print(f"inspection of a 1 MB document of prose, mean of {DOCUMENTS} in Envoy: "
          f"screened for document_injection {d_on / 1000:.2f} ms, not screened {d_off / 1000:.2f} ms: "
          f"document screening adds {(d_on - d_off) / 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
