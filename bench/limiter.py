"""What rag-guard's authentication and rate limiter cost per request in a
live Envoy (`make bench-limiter`; not part of `make test`).

Three Envoys, each with one worker (`--concurrency 1`, pinned to CPU 0 when
taskset exists) and a `direct_response` route so no upstream is involved,
measured by wrk (pinned to CPU 1) at saturation:

- passthrough: the shipped config without the wasm filter;
- rag-guard, public path: the filter runs, but no key check and no limiter;
- rag-guard, authenticated: key digest + lookup, failed-auth table read,
  the key's entry get + CAS (revocation check, leak-detection window,
  buckets), rate-limit headers, usage bookkeeping;
- the same with usage bookkeeping switched off (`"usage": {"enabled":
  false}`, a third Envoy): the difference is what the bookkeeping adds per
  request.

Each is measured REPEATS times in turn; the table gives the median and the
spread (min-max) of requests/s, and the added cost per request relative to
passthrough as 1/rps - 1/rps_passthrough, in microseconds. The difference
between the last two rows is the cost of authentication plus the limiter.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import stack  # noqa: E402

DURATION = int(os.environ.get("BENCH_SECONDS", "5"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
KEY = "rag_bench-key-0000000000000000000000000000000000"
OUT = stack.ROOT / "bench" / "results" / "limiter.md"


def direct_response(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    # Only the API listener: no metrics listener (its port would clash
    # between the Envoys of this benchmark).
    del cfg["static_resources"]["listeners"][1:]
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    route.pop("route", None)
    route["direct_response"] = {"status": 200, "body": {"inline_string": "ok"}}
    return cfg


def without_wasm(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.wasm"]
    return cfg


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return (["taskset", "-c", str(cpu)] if shutil.which("taskset") else []) + argv


def wrk(port: int, path: str, headers: list[str], script: str | None = None) -> float:
    argv = ["wrk", "-t1", "-c16", f"-d{DURATION}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(pinned(1, argv), capture_output=True, text=True, timeout=DURATION + 60).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} non-2xx responses: the benchmark would measure refusals")
    return float(match.group(1))


def main() -> int:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (make bench-limiter installs it)")
    plugin = {
        "keys": [{"name": "bench", "sha256": hashlib.sha256(KEY.encode()).hexdigest(), "tier": "bench"}],
        "tiers": {"bench": {"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000}},
    }
    base = direct_response(stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                                     admin_port=stack.free_port(), upstream=("127.0.0.1", 9)))
    plain = without_wasm(base)
    plain["admin"]["address"]["socket_address"]["port_value"] = stack.free_port()
    plain["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = stack.free_port()
    no_usage = direct_response(stack.render_envoy_config(
        dict(plugin, usage={"enabled": False}), listen_port=stack.free_port(),
        admin_port=stack.free_port(), upstream=("127.0.0.1", 9)))

    auth = [f"x-api-key: {KEY}"]
    scripts = Path(tempfile.mkdtemp(prefix="rag-guard-bench-"))
    question = '{"question": "' + ("What does the refund policy say about late returns? " * 40)[:2000] + '"}'
    document = '{"filename": "big.txt", "content": "' + "x" * (1024 * 1024) + '"}'
    for name, body in [("question", question), ("document", document)]:
        (scripts / f"{name}.json").write_text(body)
        (scripts / f"{name}.lua").write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{scripts / (name + ".json")}", "rb")\n'
            "wrk.body = f:read(\"*a\")\nf:close()\n")
    scenarios = [
        ("passthrough (no filter)", "plain", "/health", [], None),
        ("rag-guard, public path", "guard", "/health", [], None),
        ("rag-guard, authenticated (key + limiter)", "guard", "/documents", auth, None),
        ("rag-guard, authenticated, usage bookkeeping off", "no-usage", "/documents", auth, None),
        ("rag-guard, POST /query, 2,000-char question (+ inspection)", "guard", "/query", auth,
         str(scripts / "question.lua")),
        ("passthrough, POST 1 MB body", "plain", "/documents", [], str(scripts / "document.lua")),
        ("rag-guard, POST /documents, 1 MB (+ inspection)", "guard", "/documents", auth,
         str(scripts / "document.lua")),
    ]
    rates: dict[str, list[float]] = {name: [] for name, *_ in scenarios}
    envoys = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, cfg in [("plain", plain), ("guard", base), ("no-usage", no_usage)]:
                # wasm:warning as in production: success events are not built.
                envoys[name] = stack.start_envoy(cfg, Path(tmp) / name, concurrency=1,
                                                 wasm_log_level="warning")
                # Envoy on CPU 0, wrk on CPU 1.
                if shutil.which("taskset"):
                    subprocess.run(["taskset", "-a", "-p", "-c", "0", str(envoys[name].proc.pid)],
                                   capture_output=True, check=False)
            for name, which, path, headers, script in scenarios:
                wrk(envoys[which].port, path, headers, script)  # warm-up
            for _ in range(REPEATS):
                for name, which, path, headers, script in scenarios:
                    rates[name].append(wrk(envoys[which].port, path, headers, script))
        finally:
            for e in envoys.values():
                e.stop()

    base_rps = statistics.median(rates[scenarios[0][0]])
    lines = [
        "| scenario | requests/s (median) | spread (min-max) | added per request vs passthrough |",
        "|---|---|---|---|",
    ]
    for name, *_ in scenarios:
        rps = statistics.median(rates[name])
        added = (1 / rps - 1 / base_rps) * 1e6
        lines.append(f"| {name} | {rps:,.0f} | {min(rates[name]):,.0f}-{max(rates[name]):,.0f} | "
                     f"{added:+.1f} us |")
    auth_rps = statistics.median(rates[scenarios[2][0]])
    no_usage_rps = statistics.median(rates[scenarios[3][0]])
    public = statistics.median(rates[scenarios[1][0]])
    q = statistics.median(rates[scenarios[4][0]])
    doc = statistics.median(rates[scenarios[6][0]])
    doc_plain = statistics.median(rates[scenarios[5][0]])
    summary = "\n".join([
        f"Authentication + limiter (authenticated GET minus public path): "
        f"{(1 / auth_rps - 1 / public) * 1e6:.1f} us per request.",
        f"Usage bookkeeping (authenticated GET minus the same with usage off): "
        f"{(1 / auth_rps - 1 / no_usage_rps) * 1e6:+.1f} us per request.",
        f"Inspection of a 2,000-character question (POST /query minus authenticated GET): "
        f"{(1 / q - 1 / auth_rps) * 1e6:.1f} us per request.",
        f"rag-guard on a 1 MB POST /documents (minus the same POST without the filter): "
        f"{(1 / doc - 1 / doc_plain) * 1e6:.0f} us per request.",
    ])
    report = "\n".join([
        f"`make bench-limiter`: Envoy {stack.envoy_binary()} --concurrency 1, direct_response route, "
        f"wrk -t1 -c16 -d{DURATION}s, {REPEATS} runs each (median, min-max).", "",
        *lines, "", summary, ""])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
