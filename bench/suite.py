"""What rag-guard costs per request, side by side with passthrough Envoy,
Envoy's native filters and the same checks in a Python app (`make bench`;
not part of `make test`).

Method
------
Everything runs on this machine's two cores, on loopback: the servers on
CPU 0, the load generator on CPU 1 (taskset), so the load generator never
takes CPU from the server it measures.

Servers, all started at once and stopped by PID at the end:

- Envoys with one worker (`--concurrency 1`), built from the shipped
  envoy/envoy.yaml: `passthrough` (no filter but the router), `noop` (a
  Rust proxy-wasm filter that does nothing, bench/noop-filter: the floor
  every wasm filter pays), `native`
  (Envoy's own api_key_auth + local_ratelimit + header_mutation: a key
  list, three token buckets per key and the seven security headers, the
  closest an operator gets without rag-guard) and `rag-guard` (the wasm
  filter, wasm log level `warning` as in production);
- a fourth Envoy, `rag-guard-cluster`, the same filter in cluster mode
  (docs/cluster-mode.md): its key's minute and hour budgets are asked of
  rag-guard-cluster over gRPC on every request, with Redis behind it; the
  service and Redis run on CPU 0 too, so that a request's cost includes
  the whole round trip's CPU;
- two uvicorn processes (one worker each) serving bench/app_middleware.py:
  the same routes without checks (`app, no checks`) and with rag-guard's
  checks written in Python (`app middleware`).

The upstream: every Envoy answers from a `direct_response` route with the
same small JSON body the Python apps reply with. That is the same
"upstream" for every scenario, costs the same in each, and keeps a third
process off the two cores, so the differences are the proxy's (or the
app's) own work. The shipped `local_reply_config` is left out of the three
bench Envoys, because Envoy applies it to direct responses, which a real
upstream reply would not get. As a check that a real upstream does not
change the answer, two extra rows send `GET /via-upstream/...` through the
passthrough and rag-guard Envoys to the demo upstream
(target/release/demo-upstream, one thread, pinned to CPU 0 too, so that
CPU 0 does proxy + upstream work for each request).

Measurements, each scenario in turn, all repeated BENCH_REPEATS times
(default 5) in interleaved rounds, so that a noisy minute (these machines
are shared) hits every scenario alike and the median of five shrugs off
two disturbed rounds:

- requests/s at saturation: `wrk -t1 -c16 -dBENCH_SECONDS` (default 2 s);
  median and min-max;
- latency at a fixed moderate rate: wrk with a Lua `delay()` that paces each
  of a few connections (500 requests/s for small requests, 50/s for 1 MB
  bodies; BENCH_RATE, BENCH_RATE_LARGE), BENCH_LATENCY_SECONDS (default
  2 s) per round; p50 and p99 as wrk reports them, median over the rounds;
- added cost per request relative to passthrough of the same request (same
  method and body), `1/rps - 1/rps_passthrough` in microseconds; the range
  pairs the extremes of both spreads;
- every reply is what the scenario expects: 2xx-scenarios must have no
  non-2xx replies, 401/429-scenarios must have (almost) only non-2xx replies,
  each checked with one request before measuring; rag-guard's outcome
  counters must show no `auth_blocked` (the 401 runs must not trip the
  failed-auth limit, set high for the benchmark).

Also reported: the wasm size, each server's memory after the runs
(/proc/PID/status VmRSS; Envoy's admin /memory `allocated` and
`heap_size`), and the native micro-benchmarks of `cargo bench --bench
hot_paths`.

Writes bench/results/latest.md (the tables), bench/results/latest.png (a
plot; matplotlib, Agg backend) and bench/results/latest.json (every round's
figures), and prints the tables.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "scripts"))
import stack  # noqa: E402

DURATION = int(os.environ.get("BENCH_SECONDS", "2"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
LATENCY_SECONDS = int(os.environ.get("BENCH_LATENCY_SECONDS", "2"))
RATE_SMALL = int(os.environ.get("BENCH_RATE", "500"))
RATE_LARGE = int(os.environ.get("BENCH_RATE_LARGE", "50"))
SKIP_MICRO = os.environ.get("BENCH_SKIP_MICRO") == "1"
SATURATION_CONNECTIONS = 16
ENVOYS = ("passthrough", "noop", "native", "rag-guard", "rag-guard-rules", "rag-guard-docs", "rag-guard-cluster")
NOOP_WASM = stack.ROOT / "target" / "wasm32-wasip1" / "release" / "rag_guard_noop_filter.wasm"
SERVER_CPU, CLIENT_CPU = 0, 1
RESULTS = BENCH_DIR / "results"

KEY = "rag_bench-key-0000000000000000000000000000000000"  # generous tier
TINY_KEY = "rag_bench-tiny-000000000000000000000000000000000"  # 1 request/hour
REPLY_BODY = '{"answer": "ok", "sources": []}'  # = app_middleware.REPLY_BODY
QUESTION = ("What does the refund policy say about late returns? " * 40)[:2000]
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "x-xss-protection": "1; mode=block",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "content-security-policy": "default-src 'self'",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "geolocation=(), microphone=(), camera=()",
}


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


PLUGIN = {
    "keys": [
        {"name": "bench", "sha256": sha256_hex(KEY), "tier": "bench"},
        {"name": "tiny", "sha256": sha256_hex(TINY_KEY), "tier": "tiny"},
    ],
    "tiers": {
        "bench": {"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000},
        "tiny": {"per_minute": 1, "per_hour": 1, "burst": 1},
    },
    # The 401 runs send about 100,000 keyless requests a minute from one
    # address: the failed-auth limit must not turn them into 429s.
    "failed_auth": {"per_minute": 1000000},
}
# The same without the prompt-injection scorer (rules only): what scoring a
# question costs.
PLUGIN_RULES = {**PLUGIN, "body_inspection": {"injection_model": {"mode": "off"}}}
# The default routes, with /documents content screened for indirect prompt
# injection (report-only, the default action of document_injection).
PLUGIN_DOCS = {**PLUGIN, "body_inspection": {"routes": [
    {"path": "/query", "max_body_bytes": 65536, "fields": {
        "question": {"type": "string", "required": True, "min_chars": 1, "max_chars": 2000,
                     "max_bytes": 16384, "screen": ["prompt_injection", "sql_injection", "xss", "code_injection",
                                                    "path_traversal", "special_characters"]},
        "max_sources": {"type": "integer", "min": 1, "max": 10},
        "temperature": {"type": "number", "min": 0, "max": 2}}},
    {"path": "/documents", "allow_methods": ["GET", "HEAD"], "max_body_bytes": 10 * 1024 * 1024 + 65536,
     "fields": {"filename": {"type": "filename", "required": True, "extensions": [".txt", ".pdf", ".docx", ".md"]},
                "content": {"type": "string", "required": True, "max_bytes": 10 * 1024 * 1024,
                            "screen": ["document_injection"]}}}]}}
# 1 MB of prose (the benign document paragraphs the project wrote, repeated),
# separated by blank lines as a document has them: joined by spaces, the
# model flags it at byte 352,549 and the screening stops there (as in
# bench/detection_cost.py).
PROSE = ("\n\n".join((stack.ROOT / "tests" / "data" / "train_documents.txt").read_text().splitlines()) * 200)[
    : 1024 * 1024]


# --------------------------------------------------------------------------
# Requests and scenarios
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """One kind of request: method, path, JSON body, paced rate."""

    name: str
    method: str
    path: str
    body: str | None
    rate: int

    @property
    def connections(self) -> int:
        # Few connections for the paced runs: each waits connections/rate s.
        return 4 if self.rate >= 100 else 2


GET = Shape("get", "GET", "/documents", None, RATE_SMALL)
QUERY = Shape("query", "POST", "/query", json.dumps({"question": QUESTION}), RATE_SMALL)
DOCUMENT = Shape("document", "POST", "/documents",
                 json.dumps({"filename": "big.txt", "content": "x" * (1024 * 1024)}), RATE_LARGE)
PROSE_DOCUMENT = Shape("prose", "POST", "/documents", json.dumps({"filename": "big.txt", "content": PROSE}),
                       RATE_LARGE)
GET_UPSTREAM = Shape("get-upstream", "GET", "/via-upstream/documents", None, RATE_SMALL)


@dataclass
class Scenario:
    name: str
    system: str  # passthrough, native, rag-guard, app, app-bare
    target: str  # which server
    shape: Shape
    key: str | None
    expect: int
    baseline: str | None = None  # scenario name; None: is a baseline
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)  # microseconds
    p99: list[float] = field(default_factory=list)
    paced_rps: list[float] = field(default_factory=list)
    # CPU seconds per process during the saturation runs (cluster mode: its
    # Envoy, the service, Redis), and the requests they served.
    cpu: dict[str, float] = field(default_factory=dict)
    served: float = 0.0


P_GET, P_QUERY, P_DOC = "passthrough: GET", "passthrough: POST /query, 2,000-char question", \
    "passthrough: POST /documents, 1 MB"
P_UP = "passthrough -> demo upstream: GET"
P_PROSE = "passthrough: POST /documents, 1 MB of prose"
RG_QUERY_RULES = "rag-guard, scorer off: POST /query, 2,000-char question"
RG_PROSE = "rag-guard: POST /documents, 1 MB of prose"
RG_PROSE_DOCS = "rag-guard, document screening: POST /documents, 1 MB of prose"
C_GET = "rag-guard cluster mode (+ service + Redis): GET, valid key"
NOOP_GET = "no-op Rust wasm filter (the floor): GET"
A_GET, A_QUERY, A_DOC = "app, no checks: GET", "app, no checks: POST /query, 2,000-char question", \
    "app, no checks: POST /documents, 1 MB"


def scenarios() -> list[Scenario]:
    return [
        Scenario(P_GET, "passthrough", "passthrough", GET, None, 200),
        Scenario(P_QUERY, "passthrough", "passthrough", QUERY, None, 200),
        Scenario(P_DOC, "passthrough", "passthrough", DOCUMENT, None, 200),
        Scenario(NOOP_GET, "noop", "noop", GET, None, 200, P_GET),
        Scenario("native: GET, valid key", "native", "native", GET, KEY, 200, P_GET),
        Scenario("native: GET, no key (401)", "native", "native", GET, None, 401, P_GET),
        Scenario("native: GET, over limit (429)", "native", "native", GET, TINY_KEY, 429, P_GET),
        Scenario("rag-guard: GET, valid key", "rag-guard", "rag-guard", GET, KEY, 200, P_GET),
        Scenario("rag-guard: POST /query, 2,000-char question", "rag-guard", "rag-guard", QUERY, KEY, 200,
                 P_QUERY),
        Scenario("rag-guard: POST /documents, 1 MB", "rag-guard", "rag-guard", DOCUMENT, KEY, 200, P_DOC),
        Scenario(RG_QUERY_RULES, "rag-guard", "rag-guard-rules", QUERY, KEY, 200, P_QUERY),
        Scenario(P_PROSE, "passthrough", "passthrough", PROSE_DOCUMENT, None, 200),
        Scenario(RG_PROSE, "rag-guard", "rag-guard", PROSE_DOCUMENT, KEY, 200, P_PROSE),
        Scenario(RG_PROSE_DOCS, "rag-guard", "rag-guard-docs", PROSE_DOCUMENT, KEY, 200, P_PROSE),
        Scenario("rag-guard: GET, no key (401)", "rag-guard", "rag-guard", GET, None, 401, P_GET),
        Scenario("rag-guard: GET, over limit (429)", "rag-guard", "rag-guard", GET, TINY_KEY, 429, P_GET),
        Scenario(C_GET, "rag-guard-cluster", "rag-guard-cluster", GET, KEY, 200, P_GET),
        Scenario(P_UP, "passthrough", "passthrough", GET_UPSTREAM, None, 200),
        Scenario("rag-guard -> demo upstream: GET, valid key", "rag-guard", "rag-guard", GET_UPSTREAM, KEY, 200,
                 P_UP),
        Scenario(A_GET, "app-bare", "app-bare", GET, None, 200, P_GET),
        Scenario(A_QUERY, "app-bare", "app-bare", QUERY, None, 200, P_QUERY),
        Scenario(A_DOC, "app-bare", "app-bare", DOCUMENT, None, 200, P_DOC),
        Scenario("app middleware: GET, valid key", "app", "app", GET, KEY, 200, P_GET),
        Scenario("app middleware: POST /query, 2,000-char question", "app", "app", QUERY, KEY, 200, P_QUERY),
        Scenario("app middleware: POST /documents, 1 MB", "app", "app", DOCUMENT, KEY, 200, P_DOC),
        Scenario("app middleware: GET, no key (401)", "app", "app", GET, None, 401, P_GET),
        Scenario("app middleware: GET, over limit (429)", "app", "app", GET, TINY_KEY, 429, P_GET),
    ]


# --------------------------------------------------------------------------
# Envoy configurations
# --------------------------------------------------------------------------

def _hcm(cfg: dict) -> dict:
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def envoy_config(kind: str, upstream_port: int, cluster_port: int = 0) -> dict:
    """The shipped config with the benchmark's routes, for `kind`
    (passthrough, native, rag-guard or rag-guard-cluster)."""
    plugin = {"rag-guard-rules": PLUGIN_RULES, "rag-guard-docs": PLUGIN_DOCS}.get(kind, PLUGIN)
    if kind == "rag-guard-cluster":
        plugin = {**PLUGIN, "cluster": {"service": stack.CLUSTER_SERVICE, "domain": "bench",
                                        "timeout_ms": 100, "failure_mode": "deny"}}
    cfg = stack.render_envoy_config(plugin, listen_port=stack.free_port(), admin_port=stack.free_port(),
                                    upstream=("127.0.0.1", upstream_port),
                                    wasm=NOOP_WASM if kind == "noop" else stack.WASM)
    if kind == "rag-guard-cluster":
        stack.add_cluster_service(cfg, cluster_port)
    hcm = _hcm(cfg)
    hcm.pop("local_reply_config", None)
    cluster = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"]
    hcm["route_config"]["virtual_hosts"][0]["routes"] = [
        {"match": {"prefix": "/via-upstream/"},
         "route": {"cluster": cluster, "prefix_rewrite": "/", "timeout": "60s"}},
        {"match": {"prefix": "/"},
         "direct_response": {"status": 200, "body": {"inline_string": REPLY_BODY}},
         "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"},
                                      "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]},
    ]
    filters = hcm["http_filters"]
    router = [f for f in filters if f["name"] == "envoy.filters.http.router"]
    if kind == "passthrough":
        hcm["http_filters"] = router
    elif kind == "native":
        hcm["http_filters"] = native_filters() + router
    return cfg


def native_filters() -> list[dict]:
    """Envoy's own filters doing what rag-guard does, as far as they can: a
    key list (api_key_auth; keys in clear, no hashes, no tiers, no expiry),
    three token buckets per client (local_ratelimit descriptors on the
    client id that api_key_auth forwards), and the security headers
    (header_mutation). No body inspection exists among Envoy's filters."""
    def bucket(tokens: int, seconds: int) -> dict:
        return {"max_tokens": tokens, "tokens_per_fill": tokens, "fill_interval": f"{seconds}s"}

    bench = PLUGIN["tiers"]["bench"]
    descriptors = [
        {"entries": [{"key": "burst", "value": "bench"}], "token_bucket": bucket(bench["burst"], 60)},
        {"entries": [{"key": "minute", "value": "bench"}], "token_bucket": bucket(bench["per_minute"], 60)},
        {"entries": [{"key": "hour", "value": "bench"}], "token_bucket": bucket(bench["per_hour"], 3600)},
        {"entries": [{"key": "burst", "value": "tiny"}], "token_bucket": bucket(1, 3600)},
        {"entries": [{"key": "minute", "value": "tiny"}], "token_bucket": bucket(1, 3600)},
        {"entries": [{"key": "hour", "value": "tiny"}], "token_bucket": bucket(1, 3600)},
    ]
    return [
        {"name": "envoy.filters.http.api_key_auth",
         "typed_config": {
             "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
             "credentials": [{"key": KEY, "client": "bench"}, {"key": TINY_KEY, "client": "tiny"}],
             "key_sources": [{"header": "x-api-key"}],
             "forwarding": {"header": "x-client-id", "hide_credentials": True}}},
        {"name": "envoy.filters.http.local_ratelimit",
         "typed_config": {
             "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
             "stat_prefix": "native_limit",
             "token_bucket": bucket(100000000, 1),
             "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
             "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
             "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
             "rate_limits": [{"actions": [{"request_headers": {"header_name": "x-client-id",
                                                               "descriptor_key": window}}]}
                             for window in ("burst", "minute", "hour")],
             "descriptors": descriptors}},
        {"name": "envoy.filters.http.header_mutation",
         "typed_config": {
             "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
             "mutations": {"response_mutations": [
                 {"append": {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
                 for k, v in SECURITY_HEADERS.items()]}}},
    ]


def validate_envoy_config(cfg: dict, workdir: Path) -> None:
    import yaml

    path = workdir / "validate.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    done = subprocess.run([stack.envoy_binary(), "--mode", "validate", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"envoy --mode validate refused the config:\n{done.stdout}{done.stderr}")


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------

def pin(pid: int, cpu: int) -> None:
    """Pins every thread of `pid` to `cpu` (no-op without taskset)."""
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], capture_output=True, check=False)


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    stop: Callable[[], None]
    admin_url: str | None = None


def start_app(name: str, factory: str, workdir: Path, plugin_path: Path) -> Server:
    port = stack.free_port()
    log = open(workdir / f"{name}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(BENCH_DIR),
         f"app_middleware:{factory}", "--host", "127.0.0.1", "--port", str(port),
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RAG_BENCH_PLUGIN_CONFIG": str(plugin_path)})
    log.close()
    server = Server(name, proc, port, lambda: stack.stop_process(proc))
    stack.wait_listening(proc, port, name, timeout=30.0)
    pin(proc.pid, SERVER_CPU)
    return server


def start_servers(workdir: Path) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    try:
        # The demo upstream with one tokio worker, on the server core with
        # the Envoys (stack.start_upstream has no --threads).
        upstream = subprocess.Popen([str(stack.BIN_DIR / "demo-upstream"), "--listen", "127.0.0.1:0",
                                     "--threads", "1"], stdout=subprocess.PIPE, text=True)
        line = upstream.stdout.readline() if upstream.stdout else ""
        if not line.startswith("listening on http://"):
            stack.stop_process(upstream)
            raise RuntimeError(f"demo-upstream did not start: {line!r}")
        upstream_port = int(line.strip().rsplit(":", 1)[1])
        servers["upstream"] = Server("upstream", upstream, upstream_port, lambda: stack.stop_process(upstream))
        pin(upstream.pid, SERVER_CPU)
        # Cluster mode's service and its Redis, on the server core.
        redis_port, cluster_port = stack.free_port(), stack.free_port()
        redis = stack.start_redis(redis_port)
        servers["redis"] = Server("redis", redis, redis_port, lambda: stack.stop_process(redis))
        pin(redis.pid, SERVER_CPU)
        service = stack.start_cluster_service(cluster_port, redis_port)
        servers["cluster-service"] = Server("cluster-service", service, cluster_port,
                                            lambda: stack.stop_process(service))
        pin(service.pid, SERVER_CPU)
        for kind in ENVOYS:
            cfg = envoy_config(kind, upstream_port, cluster_port)
            validate_envoy_config(cfg, workdir)
            envoy = stack.start_envoy(cfg, workdir / kind, concurrency=1, wasm_log_level="warning")
            servers[kind] = Server(kind, envoy.proc, envoy.port, envoy.stop, envoy.admin_url)
            pin(envoy.proc.pid, SERVER_CPU)
        plugin_path = workdir / "plugin.json"
        plugin_path.write_text(json.dumps(PLUGIN))
        servers["app-bare"] = start_app("app-bare", "create_bare_app", workdir, plugin_path)
        servers["app"] = start_app("app", "create_guarded_app", workdir, plugin_path)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: dict[str, Server]) -> None:
    for server in servers.values():
        server.stop()


# --------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------

def probe(server: Server, s: Scenario) -> int:
    """The status of one request of scenario `s`."""
    headers = {"content-type": "application/json"} if s.shape.body else {}
    if s.key:
        headers["x-api-key"] = s.key
    data = s.shape.body.encode() if s.shape.body else None
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{s.shape.path}", data=data,
                                 headers=headers, method=s.shape.method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def write_script(shape: Shape, paced: bool, workdir: Path) -> Path:
    """A wrk Lua script: method and body of `shape`; with `paced`, a fixed
    delay before each request on each connection so that the connections
    together send `shape.rate` requests/s."""
    path = workdir / f"{shape.name}{'-paced' if paced else ''}.lua"
    lines = [f'wrk.method = "{shape.method}"']
    if shape.body:
        body_path = workdir / f"{shape.name}.json"
        body_path.write_text(shape.body)
        lines += ['wrk.headers["Content-Type"] = "application/json"',
                  f'local f = assert(io.open("{body_path}", "rb"))',
                  'wrk.body = f:read("*a")', "f:close()"]
    if paced:
        lines += [f"function delay() return {1000 * shape.connections / shape.rate:.3f} end"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    errors: int
    p50_us: float
    p99_us: float


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def run_wrk(server: Server, s: Scenario, script: Path, seconds: int, connections: int) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    if s.key:
        argv += ["-H", f"x-api-key: {s.key}"]
    argv.append(f"http://127.0.0.1:{server.port}{s.shape.path}")
    if shutil.which("taskset"):
        argv = ["taskset", "-c", str(CLIENT_CPU)] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rate or not total:
        raise RuntimeError(f"{s.name}: wrk printed no rate:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    pct = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)]
           for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)}
    return WrkResult(float(rate.group(1)), int(total.group(1)), int(non2xx.group(1)) if non2xx else 0,
                     sum(int(g) for g in errors.groups()) if errors else 0,
                     pct.get("50", float("nan")), pct.get("99", float("nan")))


def check_replies(s: Scenario, r: WrkResult) -> None:
    """Refuses a run that measured something else than the scenario."""
    if r.requests == 0:
        raise RuntimeError(f"{s.name}: no request completed")
    if s.expect < 300 and r.non_2xx:
        raise RuntimeError(f"{s.name}: {r.non_2xx} of {r.requests} replies were not 2xx")
    # A 429 scenario may see one admission when a bucket refills.
    if s.expect >= 400 and r.non_2xx < r.requests - 2:
        raise RuntimeError(f"{s.name}: only {r.non_2xx} of {r.requests} replies were {s.expect}")
    if r.errors > max(2, r.requests // 100):
        raise RuntimeError(f"{s.name}: {r.errors} socket errors in {r.requests} requests")


# --------------------------------------------------------------------------
# Memory and micro-benchmarks
# --------------------------------------------------------------------------

CLUSTER_PROCESSES = ("rag-guard-cluster", "cluster-service", "redis")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid` so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def service_round_trip(port: int) -> tuple[int, int]:
    """p50 and p99 (us) of ShouldRateLimit sent straight to the service,
    one at a time, 2 ms apart (cluster/examples/service_latency.rs)."""
    out = subprocess.run([str(stack.BIN_DIR / "examples" / "service_latency"), str(port), "2000", "1500"],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    return int(out[1]), int(out[3])


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


IDLE_KINDS = ("passthrough", "noop", "rag-guard")


def idle_rss_by_concurrency(workdir: Path) -> dict[str, dict[int, int]]:
    """Each Envoy's RSS (KiB) one second after it is ready, at
    `--concurrency` 1 and 2, started one at a time: what loading the filter
    costs, and what one more worker (one more VM) adds."""
    rss: dict[str, dict[int, int]] = {}
    for kind in IDLE_KINDS:
        for workers in (1, 2):
            cfg = envoy_config(kind, upstream_port=stack.free_port())
            envoy = stack.start_envoy(cfg, workdir / f"idle-{kind}-{workers}", concurrency=workers,
                                      wasm_log_level="warning")
            try:
                time.sleep(1.0)
                rss.setdefault(kind, {})[workers] = rss_kib(envoy.proc.pid)
            finally:
                envoy.stop()
    return rss


def idle_rss_lines(rss: dict[str, dict[int, int]]) -> list[str]:
    mib = lambda kib: kib / 1024  # noqa: E731
    base = rss["passthrough"]
    lines = ["| Envoy RSS idle (MiB), started alone | `--concurrency 1` | `--concurrency 2` | "
             "one more worker | over passthrough at 2 |", "|---|---|---|---|---|"]
    for kind in IDLE_KINDS:
        r = rss[kind]
        lines.append(f"| {kind} | {mib(r[1]):,.1f} | {mib(r[2]):,.1f} | {mib(r[2] - r[1]):+,.1f} | "
                     f"{mib(r[2] - base[2]):+,.1f} |")
    return lines


def envoy_memory(server: Server) -> tuple[int, int]:
    """Envoy's admin /memory: (allocated, heap_size) in bytes."""
    with urllib.request.urlopen(f"{server.admin_url}/memory", timeout=5) as r:
        mem = json.loads(r.read())
    return int(mem["allocated"]), int(mem["heap_size"])


def rag_guard_outcomes(server: Server) -> dict[str, int]:
    with urllib.request.urlopen(f"{server.admin_url}/stats?filter=rag_guard.requests", timeout=5) as r:
        text = r.read().decode()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"rag_guard\.requests\.(\w+): (\d+)", text)}


def micro_benchmarks() -> list[tuple[str, float]]:
    """`cargo bench --bench hot_paths`: (name, ns per operation).

    In its own target directory and with the release profile's panic
    strategy set to unwind: a bench builds the crate's binaries too, with
    the release profile (panic=abort), and the library both ways; since the
    library is also a cdylib, both land on the same file names in
    target/release/deps and the build fails now and then. The bench code
    itself is built with unwind in any case (cargo's rule for benches)."""
    env = {**os.environ, "CARGO_TARGET_DIR": str(stack.ROOT / "target" / "bench-native"),
           "CARGO_PROFILE_RELEASE_PANIC": "unwind"}
    done = subprocess.run(["cargo", "bench", "--quiet", "--bench", "hot_paths"], cwd=stack.ROOT,
                          capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"cargo bench failed:\n{done.stderr[-3000:]}")
    return [(m.group(1).strip(), float(m.group(2)))
            for m in re.finditer(r"^(.+?)\s+(\d+) ns/op", done.stdout, re.MULTILINE)]


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def fmt_us(us: float) -> str:
    if us != us:  # NaN
        return "n/a"
    if abs(us) >= 10000:
        return f"{us / 1000:,.1f} ms"
    if abs(us) >= 1000:
        return f"{us / 1000:,.2f} ms"
    return f"{us:,.0f} us" if abs(us) >= 100 else f"{us:,.1f} us"


def spread(values: list[float]) -> float:
    """(max - min) / median."""
    return (max(values) - min(values)) / statistics.median(values)


def added_cost(s: Scenario, by_name: dict[str, Scenario]) -> tuple[float, float, float] | None:
    """(median, low, high) of 1/rps - 1/rps_baseline in microseconds."""
    if s.baseline is None:
        return None
    b = by_name[s.baseline]
    med = 1e6 * (1 / statistics.median(s.rps) - 1 / statistics.median(b.rps))
    low = 1e6 * (1 / max(s.rps) - 1 / min(b.rps))
    high = 1e6 * (1 / min(s.rps) - 1 / max(b.rps))
    return med, low, high


def noisy(s: Scenario, by_name: dict[str, Scenario]) -> bool:
    """Throughput spread above 10% in the row or its baseline."""
    rows = [s] + ([by_name[s.baseline]] if s.baseline else [])
    return any(spread(r.rps) > 0.10 for r in rows)


def main_table(scs: list[Scenario]) -> list[str]:
    by_name = {s.name: s for s in scs}
    number = {s.name: i + 1 for i, s in enumerate(scs)}
    lines = [
        "| # | scenario | reply | requests/s: median (min-max) | added per request vs # "
        "| p50 | p99 | paced at |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scs:
        cost = added_cost(s, by_name)
        if cost is None:
            added = "baseline"
        else:
            med, low, high = cost
            added = f"{med:+,.1f} us ({low:+,.0f} to {high:+,.0f}) vs #{number[s.baseline]}"
            if noisy(s, by_name):
                added += " (noisy)"
        lines.append(
            f"| {number[s.name]} | {s.name} | {s.expect} | {statistics.median(s.rps):,.0f} "
            f"({min(s.rps):,.0f}-{max(s.rps):,.0f}) | {added} | {fmt_us(statistics.median(s.p50))} "
            f"| {fmt_us(statistics.median(s.p99))} | {statistics.median(s.paced_rps):,.0f}/s |")
    return lines


def difference(a: Scenario, b: Scenario) -> tuple[float, float, float]:
    """1/rps_a - 1/rps_b in microseconds: (median, low, high), the range
    pairing the extremes of both spreads."""
    return (1e6 * (1 / statistics.median(a.rps) - 1 / statistics.median(b.rps)),
            1e6 * (1 / max(a.rps) - 1 / min(b.rps)),
            1e6 * (1 / min(a.rps) - 1 / max(b.rps)))


def fmt_diff(d: tuple[float, float, float]) -> str:
    med, low, high = d
    text = f"{'+' if med >= 0 else '-'}{fmt_us(abs(med))} (range {low:+,.0f} to {high:+,.0f} us)"
    return text + (", within the noise" if low < 0 < high else "")


def derived(scs: list[Scenario]) -> list[str]:
    """The differences the table is for, in words."""
    by = {s.name: s for s in scs}

    def diff(a: str, b: str) -> str:
        return fmt_diff(difference(by[a], by[b]))

    rg_get, rg_query = "rag-guard: GET, valid key", "rag-guard: POST /query, 2,000-char question"
    return [
        f"- the floor: a Rust proxy-wasm filter that does nothing (bench/noop-filter, same SDK, profile and V8 "
        f"runtime) costs {diff(NOOP_GET, P_GET)} over passthrough; rag-guard's authenticated GET over that floor: "
        f"{diff(rg_get, NOOP_GET)}, its 401: {diff('rag-guard: GET, no key (401)', NOOP_GET)}, its 429: "
        f"{diff('rag-guard: GET, over limit (429)', NOOP_GET)}.",
        f"- rag-guard, authenticated GET (key digest + lookup, failed-auth slot read, three buckets with one "
        f"CAS, rate-limit and security headers): {diff(rg_get, P_GET)}; Envoy's native filters for a similar "
        f"job (keys kept in clear, three buckets per client): {diff('native: GET, valid key', P_GET)}.",
        f"- rag-guard, inspection of a 2,000-character question, on top of the authenticated GET: "
        f"{fmt_us(added_cost(by[rg_query], by)[0] - added_cost(by[rg_get], by)[0])}.",
        f"- rag-guard, 1 MB POST /documents (buffering, copy into the VM, strict JSON parse, no screening): "
        f"{diff('rag-guard: POST /documents, 1 MB', P_DOC)}.",
        f"- the prompt-injection scorer on a 2,000-character question (default configuration minus the same "
        f"with `injection_model.mode: off`): {diff(rg_query, RG_QUERY_RULES)}.",
        f"- document screening of 1 MB of prose (`screen: [document_injection]` on /documents content, minus "
        f"the same request unscreened): {diff(RG_PROSE_DOCS, RG_PROSE)}.",
        f"- cluster mode, authenticated GET (the same, plus a gRPC call to rag-guard-cluster and one Redis "
        f"script per request, their CPU included): {diff(C_GET, P_GET)}; on top of the single-Envoy row: "
        f"{diff(C_GET, rg_get)}. At {RATE_SMALL} requests/s, p50 "
        f"{fmt_us(statistics.median(by[C_GET].p50))} vs {fmt_us(statistics.median(by[rg_get].p50))} "
        f"(+{fmt_us(statistics.median(by[C_GET].p50) - statistics.median(by[rg_get].p50))}; target: at most "
        f"+500 us), p99 {fmt_us(statistics.median(by[C_GET].p99))} vs "
        f"{fmt_us(statistics.median(by[rg_get].p99))}. CPU per request at saturation, by process: "
        + ", ".join(f"{p} {1e6 * by[C_GET].cpu.get(p, 0) / max(by[C_GET].served, 1):,.1f} us"
                    for p in CLUSTER_PROCESSES) + ".",
        f"- through the demo upstream instead of a direct response, rag-guard's authenticated GET: "
        f"{diff('rag-guard -> demo upstream: GET, valid key', P_UP)}.",
        f"- a Python server by itself (FastAPI + uvicorn, no checks) vs passthrough Envoy: "
        f"{diff(A_GET, P_GET)} per GET.",
        f"- the checks in Python on top of that server (app middleware minus the app without checks, same "
        f"request): GET {diff('app middleware: GET, valid key', A_GET)}; POST /query "
        f"{diff('app middleware: POST /query, 2,000-char question', A_QUERY)}; POST /documents "
        f"{diff('app middleware: POST /documents, 1 MB', A_DOC)}.",
        "- 401 and 429 rows: rag-guard writes one JSON security event per refusal into Envoy's log (as in "
        "production), the app middleware one line to stderr; Envoy's native filters only count them.",
        "- p50/p99 at the fixed rate are well above the CPU time per request at saturation: between paced "
        "requests the server core idles, and waking it (a VM's vCPU) with cold caches dominates. Compare "
        "the latency columns between rows, not with the cost column.",
    ]


def plot(scs: list[Scenario], path: Path) -> None:
    """Left: added cost per request (log scale), with the spread-derived
    range; for the app middleware also the checks alone (minus the app
    without checks). Right: p50 and p99 at the fixed rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    by_name = {s.name: s for s in scs}
    colors = {"passthrough": "#888888", "noop": "#aaaaaa", "native": "#4c72b0", "rag-guard": "#dd8452",
              "rag-guard-cluster": "#c44e52",
              "app-bare": "#bbbbbb", "app": "#55a868"}
    labels = {"passthrough": "passthrough Envoy", "noop": "no-op wasm filter", "native": "Envoy native filters",
              "rag-guard": "rag-guard",
              "rag-guard-cluster": "rag-guard cluster mode",
              "app-bare": "FastAPI app, no checks", "app": "FastAPI app middleware"}
    bare_for = {GET: A_GET, QUERY: A_QUERY, DOCUMENT: A_DOC}
    floor = 0.1  # log scale: values <= 0 are drawn here

    rows = [s for s in scs if s.baseline is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, 0.4 * len(scs) + 2.2))
    for y, s in enumerate(rows):
        med, low, high = added_cost(s, by_name)
        value = max(med, floor)
        ax1.barh(y, value, color=colors[s.system])
        lo, hi = max(low, floor), max(high, floor)
        ax1.plot([lo, hi], [y, y], color="black", lw=0.8)
        text = f"{med:+,.1f} us" if abs(med) < 1000 else f"{med / 1000:+,.2f} ms"
        if s.system == "app":
            checks = 1e6 * (1 / statistics.median(s.rps) - 1 / statistics.median(by_name[bare_for[s.shape]].rps))
            ax1.plot(max(checks, floor), y, marker="D", color="black", markersize=5)
            text += f"  (checks alone {checks:+,.0f} us)" if abs(checks) < 1000 else \
                f"  (checks alone {checks / 1000:+,.2f} ms)"
        ax1.text(max(hi, value) * 1.25, y, text, va="center", fontsize=7)
    ax1.set_xscale("log")
    ax1.set_xlim(floor / 1.5, 1e5)
    ax1.set_yticks(range(len(rows)), [s.name for s in rows], fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel("microseconds per request (log; <= 0 drawn at 0.1); line: min-max range")
    ax1.set_title("Added cost vs passthrough Envoy, same request: 1/rps - 1/rps_passthrough\n"
                  "diamond: app middleware minus the same app without checks", fontsize=9)
    ax1.grid(axis="x", which="major", alpha=0.3)

    for y, s in enumerate(scs):
        ax2.barh(y - 0.2, statistics.median(s.p50), height=0.4, color=colors[s.system])
        ax2.barh(y + 0.2, statistics.median(s.p99), height=0.4, color=colors[s.system], alpha=0.4)
    ax2.set_xscale("log")
    ax2.set_yticks(range(len(scs)), [s.name for s in scs], fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("microseconds (log)")
    ax2.set_title(f"Latency at a fixed rate ({RATE_SMALL}/s; 1 MB bodies {RATE_LARGE}/s): "
                  "p50 (solid), p99 (light)", fontsize=9)
    ax2.grid(axis="x", which="major", alpha=0.3)
    fig.legend(handles=[Patch(color=colors[k], label=labels[k]) for k in colors], loc="lower center",
               ncol=5, fontsize=8, frameon=False)
    fig.suptitle("rag-guard per-request cost: one Envoy worker / one uvicorn worker on CPU 0, wrk on CPU 1 "
                 f"({datetime.now(timezone.utc):%Y-%m-%d})", fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def measure(servers: dict[str, Server], scs: list[Scenario], workdir: Path) -> None:
    scripts = {(sh.name, paced): write_script(sh, paced, workdir)
               for sh in {s.shape for s in scs} for paced in (False, True)}
    # The tiny key's single token goes before anything is measured.
    for s in scs:
        if s.key == TINY_KEY:
            probe(servers[s.target], s)
    for s in scs:
        status = probe(servers[s.target], s)
        if status != s.expect:
            raise RuntimeError(f"{s.name}: expected {s.expect}, a probe got {status}")
        check_replies(s, run_wrk(servers[s.target], s, scripts[(s.shape.name, False)], 1,
                                 SATURATION_CONNECTIONS))  # warm-up
    for round_ in range(REPEATS):
        for s in scs:
            watched = CLUSTER_PROCESSES if s.target == "rag-guard-cluster" else ()
            before = {p: cpu_seconds(servers[p].proc.pid) for p in watched}
            r = run_wrk(servers[s.target], s, scripts[(s.shape.name, False)], DURATION, SATURATION_CONNECTIONS)
            for p in watched:
                s.cpu[p] = s.cpu.get(p, 0.0) + cpu_seconds(servers[p].proc.pid) - before[p]
            s.served += r.rps * DURATION
            check_replies(s, r)
            s.rps.append(r.rps)
        print(f"  saturation round {round_ + 1}/{REPEATS} done", flush=True)
    for round_ in range(REPEATS):
        for s in scs:
            r = run_wrk(servers[s.target], s, scripts[(s.shape.name, True)], LATENCY_SECONDS,
                        s.shape.connections)
            check_replies(s, r)
            s.p50.append(r.p50_us)
            s.p99.append(r.p99_us)
            s.paced_rps.append(r.rps)
        print(f"  fixed-rate round {round_ + 1}/{REPEATS} done", flush=True)


def by_cluster_cpu(scs: list[Scenario]) -> dict:
    return {s.name: {"cpu_s": s.cpu, "requests": s.served} for s in scs if s.cpu}


def main() -> int:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (make bench installs it)")
    started = time.monotonic()
    scs = scenarios()
    total = len(scs) * REPEATS * (DURATION + LATENCY_SECONDS) + len(scs)
    print(f"make bench: {len(scs)} scenarios, {REPEATS} rounds, about {total // 60 + 1} min of load", flush=True)
    with tempfile.TemporaryDirectory(prefix="rag-guard-bench-") as tmp:
        workdir = Path(tmp)
        idle_rss = idle_rss_by_concurrency(workdir)
        servers = start_servers(workdir)
        try:
            # "Idle": started and configured, before any request.
            memory_idle = {name: rss_kib(srv.proc.pid) for name, srv in servers.items()}
            envoy_mem_idle = {k: envoy_memory(servers[k]) for k in ENVOYS}
            measure(servers, scs, workdir)
            memory = {name: rss_kib(srv.proc.pid) for name, srv in servers.items()}
            envoy_mem = {k: envoy_memory(servers[k]) for k in ENVOYS}
            outcomes = rag_guard_outcomes(servers["rag-guard"])
            service_rtt = service_round_trip(servers["cluster-service"].port)
        finally:
            stop_servers(servers)
    if outcomes.get("auth_blocked", 0):
        raise RuntimeError(f"rag-guard answered {outcomes['auth_blocked']} requests auth_blocked: "
                           "the 401 scenario measured the wrong path")
    load_seconds = time.monotonic() - started
    micro = [] if SKIP_MICRO else micro_benchmarks()

    wasm_size = stack.WASM.stat().st_size
    rtt_line = (f"- cluster mode's service and Redis alone (ShouldRateLimit straight to rag-guard-cluster, one "
                f"call at a time, 2 ms apart, `cluster/examples/service_latency.rs`): p50 {fmt_us(service_rtt[0])}, "
                f"p99 {fmt_us(service_rtt[1])}.")
    upstream_rows = "-".join(str(i + 1) for i, s in enumerate(scs) if s.shape is GET_UPSTREAM)
    envoy_version = subprocess.run([stack.envoy_binary(), "--version"], capture_output=True,
                                   text=True).stdout.strip().split("version: ")[-1].split("/")[1]
    report = [
        f"`make bench`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores. "
        f"Envoy {envoy_version} `--concurrency 1` and uvicorn (1 worker) pinned to CPU 0, wrk on CPU 1. "
        f"Saturation: `wrk -t1 -c{SATURATION_CONNECTIONS} -d{DURATION}s`, {REPEATS} rounds "
        f"(median, min-max). Latency: wrk paced at {RATE_SMALL} requests/s ({RATE_LARGE}/s for 1 MB), "
        f"{LATENCY_SECONDS} s x {REPEATS} rounds, median of the rounds' p50 and p99. Added cost: "
        f"`1/rps - 1/rps_baseline` (range from the extremes of both spreads); `(noisy)`: a throughput "
        f"spread above 10% in the row or its baseline. Envoy scenarios answer from a `direct_response` "
        f"route, the apps from an equivalent handler; rows {upstream_rows} go through to the demo upstream.",
        "",
        *main_table(scs),
        "",
        *derived(scs),
        rtt_line,
        "",
        "| memory (MiB) | RSS idle | RSS after the runs | Envoy allocated idle / after | Envoy heap idle / after |",
        "|---|---|---|---|---|",
        *[f"| Envoy, {k} | {memory_idle[k] / 1024:,.1f} | {memory[k] / 1024:,.1f} | "
          f"{envoy_mem_idle[k][0] / 2**20:,.1f} / {envoy_mem[k][0] / 2**20:,.1f} | "
          f"{envoy_mem_idle[k][1] / 2**20:,.1f} / {envoy_mem[k][1] / 2**20:,.1f} |" for k in ENVOYS],
        *[f"| uvicorn, {label} | {memory_idle[k] / 1024:,.1f} | {memory[k] / 1024:,.1f} | | |"
          for k, label in (("app-bare", "no checks"), ("app", "middleware"))],
        *[f"| {label} | {memory_idle[k] / 1024:,.1f} | {memory[k] / 1024:,.1f} | | |"
          for k, label in (("cluster-service", "rag-guard-cluster"), ("redis", "Redis"))],
        "",
        "Idle: started, before any request. After the runs, Envoy's heap holds the buffers of the 1 MB "
        "bodies (tcmalloc keeps freed pages), so compare the idle column for the cost of loading the filter "
        f"(rag-guard minus passthrough: {(memory_idle['rag-guard'] - memory_idle['passthrough']) / 1024:+,.1f} "
        "MiB RSS: V8 and the module, one VM on the main thread and one per worker).",
        "",
        *idle_rss_lines(idle_rss),
        "",
        f"rag_guard.wasm: {wasm_size:,} bytes ({wasm_size / 2**20:.2f} MiB).",
        "",
    ]
    if micro:
        report += ["| native micro-benchmark (`cargo bench --bench hot_paths`, best of 5) | time |",
                   "|---|---|",
                   *[f"| {name} | {fmt_us(ns / 1000) if ns >= 1000 else f'{ns:,.0f} ns'} |" for name, ns in micro],
                   ""]
    report.append(f"Load phase {load_seconds / 60:.1f} min.")
    text = "\n".join(report) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    plot(scs, RESULTS / "latest.png")
    raw = {"duration_s": DURATION, "rounds": REPEATS, "latency_s": LATENCY_SECONDS,
           "scenarios": [{"name": s.name, "expect": s.expect, "baseline": s.baseline, "rps": s.rps,
                          "p50_us": s.p50, "p99_us": s.p99, "paced_rps": s.paced_rps} for s in scs],
           "memory_kib": {"idle": memory_idle, "after": memory, "idle_by_concurrency": idle_rss},
           "wasm_bytes": wasm_size,
           "micro_ns": dict(micro),
           "cluster_cpu_s": by_cluster_cpu(scs), "service_round_trip_us": list(service_rtt)}
    (RESULTS / "latest.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(text)
    print(f"wrote {RESULTS / 'latest.md'}, latest.png and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
