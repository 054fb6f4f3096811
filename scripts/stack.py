"""Start and stop a local rag-guard stack: the demo upstream and Envoy.

Shared by `make run` (scripts/run.py) and the integration tests
(tests/integration). The Envoy configuration always starts from the shipped
envoy/envoy.yaml; only addresses, ports, the wasm path, the plugin
configuration and, on request, the upstream address are replaced.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVOY_YAML = ROOT / "envoy" / "envoy.yaml"
WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "rag_guard.wasm"
BIN_DIR = ROOT / "target" / "release"
VENV_ENVOY = Path(os.environ.get("VENV", ROOT / ".venv")).resolve() / "bin" / "envoy"


def envoy_binary() -> str:
    """The same choice as the Makefile: ENVOY_BIN, else an `envoy` on PATH,
    else the project virtualenv's."""
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    found = shutil.which("envoy")
    if found:
        return found
    if VENV_ENVOY.exists():
        return str(VENV_ENVOY)
    raise RuntimeError("no Envoy: run `make envoy` or set ENVOY_BIN")


def _wasm_filter(cfg: dict) -> dict:
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                for hf in f["typed_config"].get("http_filters", []):
                    if hf["name"] == "envoy.filters.http.wasm":
                        return hf["typed_config"]["config"]
    raise KeyError("no wasm filter in envoy.yaml")


def render_envoy_config(
    plugin_config: dict | str,
    *,
    listen_port: int,
    admin_port: int,
    upstream: tuple[str, int],
    wasm: Path = WASM,
    base: Path = ENVOY_YAML,
) -> dict:
    """The shipped Envoy config bound to loopback with the given pieces."""
    cfg = yaml.safe_load(base.read_text())
    cfg = copy.deepcopy(cfg)
    cfg["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen_port}
    wasm_cfg = _wasm_filter(cfg)
    wasm_cfg["vm_config"]["code"]["local"]["filename"] = str(wasm)
    text = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    wasm_cfg["configuration"]["value"] = text
    cluster = cfg["static_resources"]["clusters"][0]
    cluster["type"] = "STATIC"
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    sock["address"], sock["port_value"] = upstream
    # The metrics listener (Prometheus's view of the admin API): a free
    # loopback port, pointed at this Envoy's admin port.
    for extra in cfg["static_resources"]["listeners"][1:]:
        extra["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": free_port()}
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "envoy_admin":
            admin_sock = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            admin_sock["port_value"] = admin_port
    return cfg


def add_jwt_authn(cfg: dict, *, jwks: str, issuer: str, audience: str,
                  lax_prefix: str | None = None) -> dict:
    """Puts Envoy's jwt_authn filter before rag-guard: tokens in the
    Authorization header are verified against the inline JWKS, a request
    without a token passes (for API keys), and the verified payload is
    stored as dynamic metadata `jwt_payload` for rag-guard. Under
    `lax_prefix` a token that fails verification passes too, without a
    payload (`allow_missing_or_failed`), to test rag-guard's own refusal."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    rules = []
    if lax_prefix:
        rules.append({"match": {"prefix": lax_prefix},
                      "requires": {"allow_missing_or_failed": {}}})
    rules.append({"match": {"prefix": "/"},
                  "requires": {"requires_any": {"requirements": [
                      {"provider_name": "idp"}, {"allow_missing": {}}]}}})
    jwt_filter = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"idp": {
                "issuer": issuer,
                "audiences": [audience],
                "local_jwks": {"inline_string": jwks},
                "payload_in_metadata": "jwt_payload",
            }},
            "rules": rules,
        },
    }
    hcm["http_filters"].insert(0, jwt_filter)
    return cfg


CLUSTER_SERVICE = "rag_guard_cluster"


def add_cluster_service(cfg: dict, port: int, *, name: str = CLUSTER_SERVICE) -> dict:
    """Adds the Envoy cluster (HTTP/2, gRPC) that reaches rag-guard-cluster
    on a loopback port: the `service` of the plugin's `cluster` section."""
    cfg["static_resources"]["clusters"].append({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}],
        },
    })
    return cfg


def start_redis(port: int) -> subprocess.Popen:
    """Starts Debian's redis-server on a loopback port, nothing persisted."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    wait_listening(proc, port, "redis-server")
    return proc


def start_cluster_service(port: int, redis_port: int) -> subprocess.Popen:
    """Starts rag-guard-cluster (built by `make cluster`) on a loopback port."""
    proc = subprocess.Popen(
        [str(BIN_DIR / "rag-guard-cluster"), "--listen", f"127.0.0.1:{port}",
         "--redis", f"redis://127.0.0.1:{redis_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(proc, port, "rag-guard-cluster")
    return proc


def wait_listening(proc: subprocess.Popen, port: int, what: str, timeout: float = 10.0) -> None:
    """Waits until `proc` listens on the loopback `port`; stops it and
    raises RuntimeError if it exits or does not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if _listening(port):
            return
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError(f"{what} not listening on {port} after {timeout}s")


def metrics_port(envoy: "Envoy") -> int:
    """The port of the started Envoy's metrics listener."""
    cfg = yaml.safe_load(envoy.config_path.read_text())
    listener = next(x for x in cfg["static_resources"]["listeners"] if x["name"] == "metrics")
    return listener["address"]["socket_address"]["port_value"]


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, below Linux's ephemeral range
    (32768-60999): a port the OS handed out for binding port 0 can be taken
    by any outgoing connection (Envoy to its upstream, the cluster service
    to Redis) before the server meant for it binds it. Never the same port
    twice in one process."""
    import random
    import socket

    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        if port in _GIVEN_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN_PORTS.add(port)
        return port
    raise RuntimeError("no free loopback port in 20000-32767 after 200 tries")


def stop_process(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Stops a process we started, by its PID: SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def start_upstream(port: int = 0) -> tuple[subprocess.Popen, int]:
    """Starts the demo upstream; returns it and the port it bound."""
    proc = subprocess.Popen(
        [str(BIN_DIR / "demo-upstream"), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("listening on http://"):
        stop_process(proc)
        raise RuntimeError(f"demo-upstream did not start: {line!r}")
    return proc, int(line.strip().rsplit(":", 1)[1])


class EnvoyFailed(RuntimeError):
    """Envoy exited (returncode set) or never got ready (returncode None)."""

    def __init__(self, message: str, returncode: int | None, log: str):
        super().__init__(f"{message}:\n{log}")
        self.returncode = returncode
        self.log = log


@dataclass
class Envoy:
    proc: subprocess.Popen
    port: int
    admin_port: int
    log_path: Path
    config_path: Path
    extra: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)


def start_envoy(
    config: dict,
    workdir: Path,
    *,
    concurrency: int = 2,
    log_level: str = "warning",
    wasm_log_level: str = "info",
    ready_timeout: float = 30.0,
    base_id: int | None = None,
) -> Envoy:
    """Starts Envoy with `config` and waits until its listener answers.

    Raises EnvoyFailed, with Envoy's log, if it exits or never gets ready;
    the process is stopped in that case.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = dict(config)
    port = config.pop("_lds_listener_port", None)
    if port is None:
        port = config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
    config_path = workdir / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = workdir / "envoy.log"
    admin_port = config["admin"]["address"]["socket_address"]["port_value"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                envoy_binary(),
                "-c", str(config_path),
                "--concurrency", str(concurrency),
                "--disable-hot-restart",
                *(["--base-id", str(base_id)] if base_id is not None else []),
                "--log-level", log_level,
                "--component-log-level", f"wasm:{wasm_log_level}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    envoy = Envoy(proc, port, admin_port, log_path, config_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EnvoyFailed(f"envoy exited with {proc.returncode}", proc.returncode, envoy.log())
        try:
            with urllib.request.urlopen(f"{envoy.admin_url}/ready", timeout=1) as r:
                ready = r.status == 200
            if ready and _listening(port):
                return envoy
        except OSError:
            pass
        time.sleep(0.1)
    envoy.stop()
    raise EnvoyFailed(f"envoy not ready after {ready_timeout}s", None, envoy.log())


def split_for_lds(config: dict, workdir: Path) -> dict:
    """Moves the listener of `config` into a file watched by Envoy's
    filesystem LDS (`workdir/lds.yaml`), so that `write_lds` can change it
    while Envoy runs, the way an operator pushes a new listener config.
    Returns the bootstrap to start Envoy with."""
    boot = copy.deepcopy(config)
    listeners = boot["static_resources"].pop("listeners")
    boot["node"] = {"id": "rag-guard-test", "cluster": "rag-guard-test"}
    lds_dir = workdir / "lds"
    lds_dir.mkdir(parents=True, exist_ok=True)
    boot["dynamic_resources"] = {
        "lds_config": {
            "resource_api_version": "V3",
            "path_config_source": {
                "path": str(lds_dir / "lds.yaml"),
                "watched_directory": {"path": str(lds_dir)},
            },
        }
    }
    boot["static_resources"]["listeners"] = []
    write_lds(listeners[0], workdir)
    # start_envoy reads the listener port from the bootstrap; keep it there
    # in a field Envoy ignores.
    boot["_lds_listener_port"] = listeners[0]["address"]["socket_address"]["port_value"]
    return boot


def write_lds(listener: dict, workdir: Path) -> None:
    """Atomically replaces the LDS file (Envoy reacts to the move)."""
    lds_dir = workdir / "lds"
    resource = dict(listener)
    resource["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
    tmp = lds_dir / "lds.yaml.tmp"
    tmp.write_text(yaml.safe_dump({"resources": [resource]}, sort_keys=False))
    tmp.replace(lds_dir / "lds.yaml")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def admin_stat(envoy: Envoy, name: str) -> int:
    """One counter or gauge from Envoy's /stats (0 when absent)."""
    import re

    with urllib.request.urlopen(f"{envoy.admin_url}/stats?filter=^{re.escape(name)}$", timeout=5) as r:
        text = r.read().decode()
    match = re.search(rf"^{re.escape(name)}: (\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def run_envoy_to_exit(config: dict, workdir: Path, timeout: float = 30.0) -> tuple[int | None, str]:
    """Runs Envoy on a config expected to be refused.

    Returns Envoy's exit code and log; the code is None if Envoy came up
    instead (it is then stopped)."""
    try:
        envoy = start_envoy(config, workdir, concurrency=1, ready_timeout=timeout)
    except EnvoyFailed as failed:
        return failed.returncode, failed.log
    envoy.stop()
    return None, envoy.log()


if __name__ == "__main__":
    # `python3 scripts/stack.py render PLUGIN_JSON` prints a loopback config.
    if len(sys.argv) == 3 and sys.argv[1] == "render":
        cfg = render_envoy_config(
            Path(sys.argv[2]).read_text(), listen_port=10000, admin_port=9901, upstream=("127.0.0.1", 8000)
        )
        print(yaml.safe_dump(cfg, sort_keys=False))
    else:
        sys.exit("usage: stack.py render PLUGIN_JSON")
