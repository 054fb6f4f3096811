"""Fixtures for the integration tests: every test session starts its own demo
upstream and Envoy processes on free loopback ports and stops each of them,
by PID, when the tests end, including on failure."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import stack  # noqa: E402

# Plain-text test keys. Their digests are computed with hashlib, exactly as an
# existing Python service would have stored them.
KEYS = {
    "good": "rag_test-good-key-000000000000000000000000000000",
    "pro": "rag_test-pro-key-0000000000000000000000000000000",
    "expired": "rag_test-expired-key-00000000000000000000000000",
    "disabled": "rag_test-disabled-key-0000000000000000000000000",
}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def base_plugin_config(**overrides) -> dict:
    cfg = {
        "keys": [
            {"name": "client-good", "sha256": digest(KEYS["good"]), "tier": "free",
             "expires_at": "2099-01-01T00:00:00Z"},
            {"name": "client-pro", "sha256": digest(KEYS["pro"]), "tier": "pro"},
            {"name": "client-expired", "sha256": digest(KEYS["expired"]),
             "expires_at": "2020-01-01T00:00:00Z"},
            {"name": "client-disabled", "sha256": digest(KEYS["disabled"]), "enabled": False},
        ],
        "public_paths": ["/health", "/echo/public/*"],
        # Suites that are not about limits must not trip them.
        "tiers": {
            "free": {"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000},
            "pro": {"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000},
        },
        "failed_auth": {"per_minute": 1000000},
    }
    cfg.update(overrides)
    return cfg


class StackFactory:
    """Starts Envoys (all sharing one upstream unless told otherwise) and
    remembers every process so the session can stop them."""

    def __init__(self, tmp: Path, upstream_port: int):
        self.tmp = tmp
        self.upstream_port = upstream_port
        self.started: list[stack.Envoy] = []

    def envoy(self, plugin_config: dict | str, *, upstream_port: int | None = None,
              concurrency: int = 2, name: str = "envoy") -> stack.Envoy:
        cfg = stack.render_envoy_config(
            plugin_config,
            listen_port=stack.free_port(),
            admin_port=stack.free_port(),
            upstream=("127.0.0.1", upstream_port or self.upstream_port),
        )
        workdir = self.tmp / f"{name}-{len(self.started)}"
        envoy = stack.start_envoy(cfg, workdir, concurrency=concurrency)
        self.started.append(envoy)
        return envoy

    def stop_all(self) -> None:
        for envoy in self.started:
            envoy.stop()


@pytest.fixture(scope="session")
def upstream():
    proc, port = stack.start_upstream()
    try:
        yield port
    finally:
        stack.stop_process(proc)


@pytest.fixture(scope="session")
def stacks(tmp_path_factory, upstream):
    factory = StackFactory(tmp_path_factory.mktemp("stacks"), upstream)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def envoy(stacks):
    """Envoy (2 workers) with the base plugin configuration."""
    return stacks.envoy(base_plugin_config(), name="base")
