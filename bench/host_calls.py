"""What one host call costs a Rust wasm filter in Envoy, by kind (`make
bench-host-calls`; not part of `make test`).

The no-op filter of the floor row (bench/noop-filter) repeats one kind of
host call N times per request when its plugin configuration says
`"probe <call> N"`. One Envoy (one worker, pinned to CPU 0) per kind, plus one with
no probe, all answering `GET /documents` from a `direct_response` route;
wrk -t1 -c16 on CPU 1 measures requests/s, in interleaved rounds (median of
BENCH_REPEATS, default 5, of BENCH_SECONDS, default 2 s). The cost of one
call: `(1/rps_probe - 1/rps_none) / N`.

Multiplied by the counts of src/filter/tests.rs (the README's host-call
table), this says how much of a path's cost is its host calls. Then the
same Envoy setup with rag-guard built with the `phase-timing` feature
(PHASE_WASM, built by the Makefile) answers authenticated GETs and keyless
GETs (401): its log gives the mean time spent inside the filter's
request-headers and response-headers callbacks, next to each request's cost
over the no-probe floor.

Writes bench/results/host_calls.md and prints it.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "scripts"))
import stack  # noqa: E402
import suite  # noqa: E402

N = int(os.environ.get("BENCH_HOST_CALLS", "16"))
# (probe name, what rag-guard uses it for)
PROBES = [
    ("get_header_map_pairs", "read the request header map (a wrk GET with a key: 7 headers)"),
    ("get_header_map_value", "read one request header"),
    ("replace_header_map_value", "set one request header"),
    ("remove_header_map_value", "remove one request header"),
    ("get_property", "`source.address`"),
    ("get_current_time", "the clock"),
    ("get_shared_data", "read a 41-byte shared-data value"),
    ("set_shared_data", "write a 41-byte shared-data value"),
    ("increment_metric", "add 1 to a counter"),
    ("log_filtered", "a log line below Envoy's level (not printed)"),
    ("response_headers", "the response phase's read + write back of the header map (a pair)"),
]


def start(workdir: Path, probe: str | None) -> suite.Server:
    cfg = suite.envoy_config("noop", upstream_port=stack.free_port())
    stack._wasm_filter(cfg)["configuration"]["value"] = f"probe {probe} {N}" if probe else ""
    name = probe or "none"
    envoy = stack.start_envoy(cfg, workdir / name, concurrency=1, wasm_log_level="warning")
    suite.pin(envoy.proc.pid, suite.SERVER_CPU)
    return suite.Server(name, envoy.proc, envoy.port, envoy.stop, envoy.admin_url)


def rps(server: suite.Server, key: str | None = "bench-key-0123456789") -> float:
    # The header set of rag-guard's authenticated GET: wrk's own plus a key.
    argv = ["wrk", "-t1", "-c16", f"-d{suite.DURATION}s", *(["-H", f"x-api-key: {key}"] if key else []),
            f"http://127.0.0.1:{server.port}/documents"]
    argv = ["taskset", "-c", str(suite.CLIENT_CPU)] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=suite.DURATION + 60).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"{server.name}: wrk printed no rate:\n{out}")


PHASE_WASM = stack.ROOT / "target" / "phase-timing" / "rag_guard.wasm"
PHASE_LINE = re.compile(r"phase timing: request headers (\d+) ns, response headers (\d+) ns")


def phase_timing(workdir: Path, floor_rps: float) -> list[str]:
    """Rows: path, cost over the floor, time inside the two callbacks."""
    cfg = suite.envoy_config("rag-guard", upstream_port=stack.free_port())
    stack._wasm_filter(cfg)["vm_config"]["code"]["local"]["filename"] = str(PHASE_WASM)
    envoy = stack.start_envoy(cfg, workdir / "phase-timing", concurrency=1, wasm_log_level="warning")
    suite.pin(envoy.proc.pid, suite.SERVER_CPU)
    server = suite.Server("phase-timing", envoy.proc, envoy.port, envoy.stop, envoy.admin_url)
    rows = []
    try:
        for name, key in (("authenticated GET", suite.KEY), ("401, no key", None)):
            rates = [rps(server, key) for _ in range(suite.REPEATS)]
            found = PHASE_LINE.findall(envoy.log())
            if not found:
                raise RuntimeError("the phase-timing build logged no timing")
            req, resp = (int(v) / 1000 for v in found[-1])
            over = (1 / statistics.median(rates) - 1 / floor_rps) * 1e6
            rows.append(f"| {name} | {statistics.median(rates):,.0f} | {over:.1f} | {req:.1f} | {resp:.1f} | "
                        f"{req + resp:.1f} |")
    finally:
        envoy.stop()
    return rows


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rag-guard-host-calls-") as tmp:
        workdir = Path(tmp)
        servers: dict[str, suite.Server] = {}
        try:
            servers["none"] = start(workdir, None)
            for probe, _ in PROBES:
                servers[probe] = start(workdir, probe)
            rates: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(suite.REPEATS):
                for name, server in servers.items():
                    rates[name].append(rps(server))
        finally:
            for server in servers.values():
                server.stop()
        base = statistics.median(rates["none"])
        phases = phase_timing(workdir, base)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"`make bench-host-calls`, {stamp}: the no-op filter repeating one host call {N} times per "
        f"request, Envoy {suite.REPEATS} x {suite.DURATION} s rounds (median), 1 worker on CPU 0, "
        f"wrk -t1 -c16 on CPU 1. No probe: {base:,.0f} requests/s "
        f"({min(rates['none']):,.0f}-{max(rates['none']):,.0f}).",
        "",
        "| host call | what for | requests/s with the probe | us per call |",
        "|---|---|---|---|",
    ]
    for probe, what in PROBES:
        r = statistics.median(rates[probe])
        per_call = (1 / r - 1 / base) * 1e6 / N
        lines.append(f"| `{probe}` | {what} | {r:,.0f} ({min(rates[probe]):,.0f}-{max(rates[probe]):,.0f}) "
                     f"| {per_call:.2f} |")
    lines += [
        "",
        "rag-guard built with `--features phase-timing` (the same Envoy setup; its worker logs the mean time "
        "of the filter's two header callbacks, host calls included, every 10,000 requests; two clock reads "
        "per callback are part of it). Cost over the floor: `1/rps - 1/rps_no_probe`.",
        "",
        "| path | requests/s | us over the floor | us in request headers | us in response headers | "
        "us inside the filter |",
        "|---|---|---|---|---|---|",
        *phases,
    ]
    text = "\n".join(lines) + "\n"
    out = BENCH_DIR / "results" / "host_calls.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
