"""Authentication through a live Envoy (2 workers) running rag-guard."""

from __future__ import annotations

import re
import subprocess

import pytest

from client import request
from conftest import KEYS, base_plugin_config, digest

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "x-xss-protection": "1; mode=block",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "content-security-policy": "default-src 'self'",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "geolocation=(), microphone=(), camera=()",
}


def assert_401(resp, detail):
    assert resp.status == 401, resp
    assert resp.json() == {"detail": detail}
    assert resp.header("www-authenticate") == "APIKey"
    assert resp.header("content-type") == "application/json"


def received_headers(resp) -> dict[str, list[str]]:
    """Headers that reached the demo upstream's /echo endpoint."""
    seen: dict[str, list[str]] = {}
    for name, value in resp.json()["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


def test_missing_key(envoy):
    assert_401(request(envoy.port, path="/query"), "Missing API Key")


def test_empty_key_is_missing(envoy):
    assert_401(request(envoy.port, path="/query", headers=[("X-API-Key", "")]), "Missing API Key")


def test_unknown_key(envoy):
    assert_401(request(envoy.port, path="/query", headers=[("X-API-Key", "rag_nope")]), "Invalid API Key")


def test_expired_key(envoy):
    assert_401(request(envoy.port, path="/query", headers=[("X-API-Key", KEYS["expired"])]), "API key expired")


def test_disabled_key(envoy):
    assert_401(request(envoy.port, path="/query", headers=[("X-API-Key", KEYS["disabled"])]), "API key disabled")


def test_several_key_headers_are_refused_even_if_valid(envoy):
    resp = request(envoy.port, path="/echo/x",
                   headers=[("X-API-Key", KEYS["good"]), ("X-API-Key", KEYS["good"])])
    assert_401(resp, "Multiple API Keys")
    resp = request(envoy.port, path="/echo/x",
                   headers=[("x-api-key", "rag_nope"), ("X-Api-Key", KEYS["good"])])
    assert_401(resp, "Multiple API Keys")


@pytest.mark.parametrize(
    "value",
    [
        "k" * 10 * 1024,  # 10 KB
        b"\xff\xfe\xfd invalid utf-8",
        "caf\u00e9-\u4e2d\u6587".encode(),  # valid UTF-8, not ASCII
        KEYS["good"].upper(),
    ],
    ids=["10KB", "invalid-utf8", "non-ascii", "wrong-case"],
)
def test_bad_key_values_get_401_and_the_vm_survives(envoy, value):
    resp = request(envoy.port, path="/query", headers=[("X-API-Key", value)])
    assert_401(resp, "Invalid API Key")
    ok = request(envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["good"])])
    assert ok.status == 200


def test_whitespace_around_the_key_is_not_part_of_it(envoy):
    # HTTP strips optional whitespace around field values: this is the good key.
    resp = request(envoy.port, path="/echo/x", headers=[("X-API-Key", f"  {KEYS['good']}\t")])
    assert resp.status == 200
    assert received_headers(resp)["x-api-key-name"] == ["client-good"]


def test_underscore_lookalike_headers_are_refused(envoy):
    # Upstreams that map "_" to "-" would read these as identity headers.
    for name in ["x_api_key_name", "x_api_key", "X_Api_Key_Tier"]:
        resp = request(envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["good"]), (name, "admin")])
        assert resp.status == 400, name
        resp = request(envoy.port, path="/echo/public/x", headers=[(name, KEYS["good"])])
        assert resp.status == 400, name


def test_valid_key_reaches_upstream_without_the_key(envoy):
    resp = request(envoy.port, path="/echo/x?page=1", headers=[("X-API-Key", KEYS["good"])])
    assert resp.status == 200
    seen = received_headers(resp)
    assert seen["x-api-key-name"] == ["client-good"]
    assert seen["x-api-key-tier"] == ["free"]
    assert "x-api-key" not in seen
    assert not any(KEYS["good"] in v for values in seen.values() for v in values)
    assert resp.json()["url"] == "/echo/x?page=1"


def test_header_name_case_does_not_matter(envoy):
    resp = request(envoy.port, path="/echo/x", headers=[("X-API-KEY", KEYS["pro"])])
    assert resp.status == 200
    assert received_headers(resp)["x-api-key-tier"] == ["pro"]


def test_spoofed_identity_headers_are_replaced(envoy):
    resp = request(
        envoy.port,
        path="/echo/x",
        headers=[
            ("X-API-Key", KEYS["good"]),
            ("X-API-Key-Name", "admin"),
            ("x-api-key-name", "root"),
            ("X-API-Key-Tier", "enterprise"),
        ],
    )
    assert resp.status == 200
    seen = received_headers(resp)
    assert seen["x-api-key-name"] == ["client-good"]
    assert seen["x-api-key-tier"] == ["free"]


def test_public_path_needs_no_key_and_strips_identity(envoy):
    assert request(envoy.port, path="/health").status == 200
    assert request(envoy.port, path="/health?probe=1").status == 200
    resp = request(
        envoy.port,
        path="/echo/public/info",
        headers=[("X-API-Key-Name", "admin"), ("X-API-Key-Tier", "pro"), ("X-API-Key", KEYS["good"])],
    )
    assert resp.status == 200
    seen = received_headers(resp)
    assert "x-api-key-name" not in seen and "x-api-key-tier" not in seen and "x-api-key" not in seen


@pytest.mark.parametrize("path", ["/healthz", "/health/", "/echo/public", "/Health"])
def test_near_misses_of_public_paths_need_a_key(envoy, path):
    assert_401(request(envoy.port, path=path), "Missing API Key")


def test_path_normalization_cannot_dodge_auth(envoy):
    # Envoy normalizes before the filter: these are /query, not public.
    for path in ["//query", "/health/../query", "/./query"]:
        assert_401(request(envoy.port, path=path), "Missing API Key")
    # ...and these are /health, public.
    for path in ["//health", "/query/../health"]:
        assert request(envoy.port, path=path).status == 200


def test_post_query_end_to_end(envoy):
    resp = request(envoy.port, "POST", "/query", headers=[("X-API-Key", KEYS["good"]),
                                                          ("Content-Type", "application/json")],
                   body=b'{"question": "What is our refund policy?"}')
    assert resp.status == 200
    assert "refund policy" in resp.json()["answer"]


def test_events_name_keys_but_never_log_them(envoy):
    request(envoy.port, path="/query", headers=[("X-API-Key", "rag_this-must-not-be-logged")])
    request(envoy.port, path="/query?token=secret-in-query", headers=[("X-API-Key", KEYS["good"])])
    request(envoy.port, path="/query", headers=[("X-API-Key", KEYS["expired"])])
    log = envoy.log()
    events = [line.split("rag_guard: ", 1)[1] for line in log.splitlines() if '{"event"' in line]
    assert any('"reason":"invalid_key"' in e and f'"key_id":"{digest("rag_this-must-not-be-logged")[:16]}"' in e
               for e in events)
    assert any('"event":"auth_success"' in e and '"key_name":"client-good"' in e for e in events)
    assert any('"reason":"expired_key"' in e and '"key_name":"client-expired"' in e for e in events)
    assert "rag_this-must-not-be-logged" not in log
    assert "secret-in-query" not in log
    for key in KEYS.values():
        assert key not in log
    assert not re.search(r"panic|Wasm VM failed|critical", log, re.IGNORECASE)


def test_counters_by_outcome(envoy):
    invalid_name = "wasmcustom.rag_guard.requests.decision.invalid.reason.invalid_key"
    allowed_name = "wasmcustom.rag_guard.requests.decision.allowed.reason.none"
    public_name = "wasmcustom.rag_guard.requests.decision.public.reason.none"
    before = stat(envoy, invalid_name)
    allowed = stat(envoy, allowed_name)
    public = stat(envoy, public_name)
    for _ in range(3):
        request(envoy.port, path="/query", headers=[("X-API-Key", "rag_wrong")])
        request(envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["good"])])
        request(envoy.port, path="/health")
    assert stat(envoy, invalid_name) == before + 3
    assert stat(envoy, allowed_name) == allowed + 3
    assert stat(envoy, public_name) == public + 3


def stat(envoy, name: str) -> int:
    text = request(envoy.admin_port, path=f"/stats?filter=^{re.escape(name)}$").body.decode()
    match = re.search(rf"^{re.escape(name)}: (\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def test_custom_key_header(stacks):
    envoy = stacks.envoy(base_plugin_config(api_key_header="X-Custom-Key"), name="custom-header")
    resp = request(envoy.port, path="/echo/x", headers=[("x-custom-key", KEYS["good"])])
    assert resp.status == 200
    seen = received_headers(resp)
    assert "x-custom-key" not in seen and seen["x-api-key-name"] == ["client-good"]
    # The default header name means nothing now.
    assert_401(request(envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["good"])]), "Missing API Key")


def test_http2_cleartext(envoy):
    """The listener speaks HTTP/2 too (codec AUTO); the filter behaves the same."""
    def curl(*args):
        run = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null",
                              "-w", "%{http_version} %{http_code}", *args,
                              f"http://127.0.0.1:{envoy.port}/echo/x"],
                             capture_output=True, text=True, timeout=30)
        return run.stdout
    assert curl() == "2 401"
    assert curl("-H", f"x-api-key: {KEYS['good']}") == "2 200"
    assert curl("-H", f"x-api-key: {KEYS['good']}", "-H", "x-api-key: other") == "2 401"
