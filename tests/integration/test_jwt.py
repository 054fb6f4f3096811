"""JWT callers and role-based access through a live Envoy (2 workers): Envoy's
jwt_authn verifies tokens against a local JWKS the test generates, rag-guard
reads the verified payload, forwards the subject and tier, limits each
subject exactly across workers in a bounded table, and checks roles."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

import stack
from client import request
from conftest import KEYS, base_plugin_config, digest
from load import build_request, fire_simultaneously
from test_auth import received_headers

ISSUER = "https://idp.rag-guard.test"
AUDIENCE = "rag-api"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ADMIN_SECRET = "admin-secret-for-jwt-tests"
ADMIN = "/rag-guard/admin/"
QUERY = json.dumps({"question": "What is our refund policy?"}).encode()
DOCUMENT = json.dumps({"filename": "notes.md", "content": "Quarterly numbers."}).encode()


def jwks() -> str:
    key = json.loads(RSAAlgorithm.to_jwk(SIGNING_KEY.public_key()))
    key.update({"kid": "test-1", "alg": "RS256", "use": "sig"})
    return json.dumps({"keys": [key]})


def token(sub: str = "alice", *, key=SIGNING_KEY, iss: str = ISSUER, aud: str = AUDIENCE,
          exp_in: int = 3600, **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + exp_in, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "test-1"})


def bearer(tok: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {tok}")]


def plugin_config(**overrides) -> dict:
    cfg = base_plugin_config(
        tiers={
            "free": {"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000},
            "pro": {"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000},
            # 5 tokens/s refill: a round of simultaneous requests is exact.
            "tiny": {"per_minute": 300, "per_hour": 100000, "burst": 10},
        },
        admin={"secret_sha256": digest(ADMIN_SECRET)},
        jwt={"tier_claim": "tier", "roles_claim": "roles", "name_claim": "email"},
        access={
            "roles": {
                "reader": [{"prefix": "/query", "methods": ["POST"]},
                           {"prefix": "/echo", "methods": ["GET"]}],
                "ingest": [{"prefix": "/documents", "methods": ["POST"]}],
                "admin": [{"prefix": "/rag-guard/admin"}],
            },
            "default_roles": ["reader"],
        },
    )
    cfg.update(overrides)
    return cfg


def start(stacks, cfg: dict, name: str):
    envoy_cfg = stack.render_envoy_config(
        cfg, listen_port=stack.free_port(), admin_port=stack.free_port(),
        upstream=("127.0.0.1", stacks.upstream_port))
    stack.add_jwt_authn(envoy_cfg, jwks=jwks(), issuer=ISSUER, audience=AUDIENCE,
                        lax_prefix="/echo/lax")
    envoy = stack.start_envoy(envoy_cfg, stacks.tmp / f"{name}-{len(stacks.started)}", concurrency=2)
    stacks.started.append(envoy)
    return envoy


@pytest.fixture(scope="module")
def jwt_envoy(stacks):
    return start(stacks, plugin_config(), "jwt")


def test_a_valid_token_is_admitted_with_its_name_and_tier(jwt_envoy):
    resp = request(jwt_envoy.port, path="/echo/x",
                   headers=bearer(token("u-1", email="alice@example.com", tier="pro")))
    assert resp.status == 200, resp.body
    seen = received_headers(resp)
    assert seen["x-api-key-name"] == ["alice@example.com"]
    assert seen["x-api-key-tier"] == ["pro"]
    # jwt_authn (forward: false) removed the token before the upstream.
    assert "authorization" not in seen
    # No tier claim, or a tier that is not configured: the default tier.
    for claims in ({}, {"tier": "platinum"}):
        resp = request(jwt_envoy.port, path="/echo/x", headers=bearer(token("u-2", **claims)))
        assert received_headers(resp)["x-api-key-tier"] == ["free"]
        # No email claim: the subject is the name.
        assert received_headers(resp)["x-api-key-name"] == ["u-2"]


def test_a_client_cannot_forge_the_identity_headers(jwt_envoy):
    resp = request(jwt_envoy.port, path="/echo/x",
                   headers=bearer(token("u-3")) + [("x-api-key-name", "root"), ("x-api-key-tier", "pro")])
    assert received_headers(resp)["x-api-key-name"] == ["u-3"]
    assert received_headers(resp)["x-api-key-tier"] == ["free"]


@pytest.mark.parametrize("case", ["expired", "wrong_issuer", "wrong_audience", "bad_signature"])
def test_tokens_jwt_authn_refuses_never_reach_the_upstream(jwt_envoy, case):
    tok = {
        "expired": lambda: token(exp_in=-120),
        "wrong_issuer": lambda: token(iss="https://evil.test"),
        "wrong_audience": lambda: token(aud="other-api"),
        "bad_signature": lambda: token(key=OTHER_KEY),
    }[case]()
    resp = request(jwt_envoy.port, path="/echo/x", headers=bearer(tok))
    # jwt_authn's own answers: 401, and 403 for an audience it does not allow.
    assert resp.status == (403 if case == "wrong_audience" else 401), (case, resp.body)
    assert resp.header("www-authenticate").startswith("Bearer")
    assert b"headers" not in resp.body


def test_an_unverified_bearer_token_is_refused_by_rag_guard(jwt_envoy):
    # Under /echo/lax jwt_authn lets failed tokens through without a
    # payload (allow_missing_or_failed): rag-guard must not trust them.
    resp = request(jwt_envoy.port, path="/echo/lax", headers=bearer(token(key=OTHER_KEY)))
    assert resp.status == 401
    assert resp.json() == {"detail": "Invalid bearer token"}
    assert resp.header("www-authenticate") == "APIKey, Bearer"
    # A valid token is verified there too.
    assert request(jwt_envoy.port, path="/echo/lax", headers=bearer(token("u-4"))).status == 200


def test_no_credential_names_both_schemes_and_keys_still_work(jwt_envoy):
    resp = request(jwt_envoy.port, path="/echo/x")
    assert resp.status == 401
    assert resp.json() == {"detail": "Missing API Key"}
    assert resp.header("www-authenticate") == "APIKey, Bearer"
    resp = request(jwt_envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["good"])])
    assert resp.status == 200
    assert received_headers(resp)["x-api-key-name"] == ["client-good"]


def test_a_key_takes_precedence_over_a_token(jwt_envoy):
    resp = request(jwt_envoy.port, path="/echo/x",
                   headers=bearer(token("u-5")) + [("X-API-Key", "not-a-key")])
    assert resp.status == 401
    assert resp.json() == {"detail": "Invalid API Key"}
    resp = request(jwt_envoy.port, path="/echo/x",
                   headers=bearer(token("u-5")) + [("X-API-Key", KEYS["good"])])
    assert resp.status == 200
    seen = received_headers(resp)
    assert seen["x-api-key-name"] == ["client-good"]
    assert "x-api-key" not in seen
    # A token that jwt_authn let through unverified (/echo/lax) on a key
    # request never reaches the upstream either.
    resp = request(jwt_envoy.port, path="/echo/lax",
                   headers=bearer(token("u-5", key=OTHER_KEY)) + [("X-API-Key", KEYS["good"])])
    assert resp.status == 200
    assert "authorization" not in received_headers(resp)


def test_per_subject_limits_are_exact_across_two_workers(jwt_envoy):
    """Burst 10: of 100 simultaneous requests of one subject, spread over
    both workers, exactly 10 pass; two subjects interleaved get 10 each."""
    def wait_full(tok: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = request(jwt_envoy.port, path="/rate-limit/status", headers=bearer(tok))
            assert r.status == 200, r.body
            if r.json()["burst_remaining"] == 10:
                return
            time.sleep(0.1)
        raise AssertionError("burst did not refill")

    a, b = token("exact-a", tier="tiny"), token("exact-b", tier="tiny")
    rounds, slow = 0, 0
    while rounds < 3:
        wait_full(a)
        wait_full(b)
        reqs = [build_request("/echo/x", bearer(a if i % 2 else b)) for i in range(100)]
        results, elapsed = fire_simultaneously(jwt_envoy.port, reqs)
        if elapsed >= 0.2:
            slow += 1
            assert slow <= 10, "too many slow rounds to judge exactness"
            continue
        rounds += 1
        admitted_a = sum(1 for i, (s, _) in enumerate(results) if s == 200 and i % 2)
        admitted_b = sum(1 for i, (s, _) in enumerate(results) if s == 200 and not i % 2)
        assert (admitted_a, admitted_b) == (10, 10), (admitted_a, admitted_b)
        refused = [h for s, h in results if s == 429]
        assert len(refused) == 80 and all(h["retry-after"] == "1" for h in refused)


def test_roles_decide_query_documents_and_admin(jwt_envoy):
    json_type = [("Content-Type", "application/json")]
    reader = bearer(token("r-1", roles=["reader"])) + json_type
    ingest = bearer(token("r-2", roles=["ingest"])) + json_type
    admin = bearer(token("r-3", roles=["admin"]))
    assert request(jwt_envoy.port, "POST", "/query", headers=reader, body=QUERY).status == 200
    for headers, method, path, body in [
        (reader, "POST", "/documents", DOCUMENT),
        (ingest, "POST", "/query", QUERY),
        (reader, "GET", ADMIN + "keys", None),
        (ingest, "GET", ADMIN + "keys", None),
    ]:
        resp = request(jwt_envoy.port, method, path, headers=headers, body=body)
        assert resp.status == 403, (path, resp.body)
        if not path.startswith(ADMIN):
            assert resp.json() == {"detail": "Insufficient permissions"}
    assert request(jwt_envoy.port, "POST", "/documents", headers=ingest, body=DOCUMENT).status == 201
    # The admin API: an admin-role token, or the secret, as before.
    resp = request(jwt_envoy.port, path=ADMIN + "keys", headers=admin)
    assert resp.status == 200, resp.body
    assert {k["name"] for k in resp.json()["keys"]} >= {"client-good", "client-pro"}
    resp = request(jwt_envoy.port, path=ADMIN + "keys", headers=[("x-admin-secret", ADMIN_SECRET)])
    assert resp.status == 200
    # No roles claim: the default roles (reader).
    plain = bearer(token("r-4")) + json_type
    assert request(jwt_envoy.port, "POST", "/query", headers=plain, body=QUERY).status == 200
    assert request(jwt_envoy.port, "POST", "/documents", headers=plain, body=DOCUMENT).status == 403


def test_a_broad_grant_is_no_admin_grant_and_key_names_cannot_be_borrowed(stacks):
    cfg = plugin_config()
    cfg["access"]["roles"]["everything"] = [{"prefix": "/"}]
    envoy = start(stacks, cfg, "jwt-broad")
    every = bearer(token("b-1", roles=["everything"]))
    assert request(envoy.port, path="/echo/x", headers=every).status == 200
    assert request(envoy.port, path=ADMIN + "keys", headers=every).status == 403
    # A token whose name claim is a configured key's name would pose as
    # that key upstream: refused.
    resp = request(envoy.port, path="/echo/x",
                   headers=bearer(token("b-2", email="client-good")))
    assert resp.status == 401
    assert resp.json() == {"detail": "Invalid bearer token"}


def test_key_roles_and_an_admin_key(stacks):
    cfg = plugin_config()
    cfg["keys"][0]["roles"] = ["admin"]  # client-good
    envoy = start(stacks, cfg, "jwt-key-roles")
    good = [("X-API-Key", KEYS["good"])]
    pro = [("X-API-Key", KEYS["pro"])]  # no roles: the default (reader)
    assert request(envoy.port, path=ADMIN + "keys", headers=good).status == 200
    assert request(envoy.port, path="/echo/x", headers=good).status == 403
    assert request(envoy.port, path="/echo/x", headers=pro).status == 200
    assert request(envoy.port, path=ADMIN + "keys", headers=pro).status == 403
    # Revoked at runtime: no longer an admin.
    resp = request(envoy.port, "POST", ADMIN + "keys/client-good/revoke",
                   headers=[("x-admin-secret", ADMIN_SECRET)])
    assert resp.status == 200, resp.body
    assert request(envoy.port, path=ADMIN + "keys", headers=good).status == 403


def test_a_full_subject_table_refuses_newcomers_not_known_subjects(stacks):
    """16 subjects fill the table (jwt.max_subjects 16, one set). Each keeps
    its record until its buckets are full again (one request of 360 per
    hour: 10 s), so the 17th new subject gets 429 with a Retry-After, while
    the 16 go on. Nothing else is evicted."""
    cfg = plugin_config(
        jwt={"max_subjects": 16, "tier_claim": "tier"},
        tiers={"slow": {"per_minute": 360, "per_hour": 360, "burst": 100}},
        default_tier="slow",
    )
    cfg.pop("access")
    envoy = start(stacks, cfg, "jwt-full")
    started = time.monotonic()
    for i in range(16):
        resp = request(envoy.port, path="/echo/x", headers=bearer(token(f"fill-{i}")))
        assert resp.status == 200, (i, resp.body)
    resp = request(envoy.port, path="/echo/x", headers=bearer(token("newcomer")))
    assert time.monotonic() - started < 9, "too slow to judge the table"
    assert resp.status == 429
    assert resp.json() == {"detail": "Too many active callers, retry later"}
    assert 1 <= int(resp.header("retry-after")) <= 10
    for i in (0, 15):
        assert request(envoy.port, path="/echo/x", headers=bearer(token(f"fill-{i}"))).status == 200
    # Once a record is free again the newcomer gets it.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        resp = request(envoy.port, path="/echo/x", headers=bearer(token("newcomer")))
        if resp.status == 200:
            break
        time.sleep(0.5)
    assert resp.status == 200
