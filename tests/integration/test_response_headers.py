"""Security headers on every response: the upstream's, the filter's own local
replies, and Envoy's own errors."""

from __future__ import annotations

import pytest

from client import request
from conftest import KEYS, base_plugin_config
from test_auth import SECURITY_HEADERS

import stack

REMOVED = ["server", "x-envoy-upstream-service-time"]


def assert_security_headers(resp, expected=SECURITY_HEADERS):
    for name, value in expected.items():
        assert resp.all(name) == [value], (name, resp.headers)
    for name in REMOVED:
        assert resp.header(name) is None, (name, resp.headers)


@pytest.fixture(scope="module")
def dead_upstream_envoy(stacks):
    """An Envoy whose upstream port has nothing listening: Envoy answers 503."""
    return stacks.envoy(base_plugin_config(), upstream_port=stack.free_port(), name="dead-upstream")


def test_on_upstream_200(envoy):
    resp = request(envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["good"])])
    assert resp.status == 200
    assert_security_headers(resp)


def test_on_upstream_404(envoy):
    resp = request(envoy.port, path="/no-such-page", headers=[("X-API-Key", KEYS["good"])])
    assert resp.status == 404
    assert_security_headers(resp)


def test_on_public_path(envoy):
    resp = request(envoy.port, path="/health")
    assert resp.status == 200
    assert_security_headers(resp)


def test_on_local_401(envoy):
    resp = request(envoy.port, path="/query")
    assert resp.status == 401
    assert_security_headers(resp)


def test_on_envoy_503(dead_upstream_envoy):
    resp = request(dead_upstream_envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["good"])])
    assert resp.status == 503
    assert_security_headers(resp)


def test_overrides_and_drops(stacks):
    cfg = base_plugin_config(security_headers={
        "X-Frame-Options": "SAMEORIGIN",
        "x-xss-protection": None,
        "cross-origin-opener-policy": "same-origin",
    })
    envoy = stacks.envoy(cfg, name="override-headers")
    expected = dict(SECURITY_HEADERS)
    expected["x-frame-options"] = "SAMEORIGIN"
    del expected["x-xss-protection"]
    expected["cross-origin-opener-policy"] = "same-origin"
    # Upstream reply, rag-guard's own 401, and Envoy's own 400 (which
    # envoy.yaml's local_reply_config decorates: there the dropped header
    # comes back, since that list is Envoy's, not the plugin's).
    for resp in [request(envoy.port, path="/health"), request(envoy.port, path="/query")]:
        assert_security_headers(resp, expected)
        assert resp.header("x-xss-protection") is None


def test_host_allowlist(stacks):
    envoy = stacks.envoy(base_plugin_config(allowed_hosts=["api.example.com", "*.example.org"]), name="hosts")
    good = [("X-API-Key", KEYS["good"])]
    assert request(envoy.port, path="/echo/x", headers=good, host="api.example.com").status == 200
    assert request(envoy.port, path="/echo/x", headers=good, host="API.example.com:10000").status == 200
    assert request(envoy.port, path="/echo/x", headers=good, host="eu.example.org").status == 200
    for host in ["evil.com", "example.org", "api.example.com.evil.com", "127.0.0.1"]:
        resp = request(envoy.port, path="/echo/x", headers=good, host=host)
        assert resp.status == 400, host
        assert resp.json() == {"detail": "Invalid host header"}
        assert_security_headers(resp)
    # Public paths are no way around the allowlist.
    assert request(envoy.port, path="/health", host="evil.com").status == 400


@pytest.mark.parametrize("path,status", [("/echo%2Fx", 307), ("/health%00", 400), ("/health#frag", 400)])
def test_on_envoy_replies_that_never_reach_the_filter(envoy, path, status):
    resp = request(envoy.port, path=path, headers=[("X-API-Key", KEYS["good"])])
    assert resp.status == status
    for name, value in SECURITY_HEADERS.items():
        assert resp.all(name) == [value], (name, resp.headers)
