"""Operating rag-guard through a live Envoy with 2 workers: the admin API
(secret handling, key listing, runtime revoke/restore seen by every worker
and kept across a listener reload, usage counts), leaked-key detection with
automatic revocation, and the labelled Prometheus metrics."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time

import pytest

from client import request
from conftest import KEYS, base_plugin_config, digest
from test_rate_limit import worker_connections
from test_reload import push

import stack

ADMIN_SECRET = "rag-admin-secret-for-tests-0000000000000"
ADMIN = [("x-admin-secret", ADMIN_SECRET)]
P = "/rag-guard/admin/"

OPS_KEYS = {
    "ops-revoke": "rag_ops-revoke-key-00000000000000000000000000000",
    "ops-usage": "rag_ops-usage-key-000000000000000000000000000000",
    "ops-leak": "rag_ops-leak-key-0000000000000000000000000000000",
    "ops-office": "rag_ops-office-key-00000000000000000000000000000",
    "ops-soon": "rag_ops-soon-key-0000000000000000000000000000000",
    "ops-metrics": "rag_ops-metrics-key-000000000000000000000000000",
}
OFFICE_RANGE = "127.0.11.0/24"
FAILURES_PER_MINUTE = 20


def ops_config(**overrides) -> dict:
    cfg = base_plugin_config(**overrides)
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 86400))
    for name, key in OPS_KEYS.items():
        entry = {"name": name, "sha256": digest(key)}
        if name == "ops-usage":
            entry["tier"] = "tiny"
        if name == "ops-soon":
            entry["expires_at"] = soon
        cfg["keys"].append(entry)
    # burst 5, then one token every 2 s
    cfg["tiers"]["tiny"] = {"per_minute": 30, "per_hour": 1000, "burst": 5}
    cfg["admin"] = {"secret_sha256": hashlib.sha256(ADMIN_SECRET.encode()).hexdigest()}
    cfg["failed_auth"] = {"per_minute": FAILURES_PER_MINUTE}
    cfg["leak_detection"] = {"allowlist": [OFFICE_RANGE]}
    return cfg


@pytest.fixture(scope="module")
def ops(stacks):
    return stacks.envoy(ops_config(), name="ops", concurrency=2)


def admin(envoy, method: str, path: str, source: str | None = None):
    return request(envoy.port, method, P + path, headers=ADMIN, source=source)


def key_row(envoy, name: str) -> dict:
    resp = admin(envoy, "GET", "keys")
    assert resp.status == 200, resp.body
    return next(k for k in resp.json()["keys"] if k["name"] == name)


def use(envoy, key: str, source: str | None = None, path: str = "/echo/x"):
    return request(envoy.port, path=path, headers=[("X-API-Key", key)], source=source)


def events(envoy, name: str) -> list[dict]:
    return [json.loads(line.split("rag_guard: ", 1)[1]) for line in envoy.log().splitlines()
            if f'"event":"{name}"' in line]


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# -- admin API access -------------------------------------------------------

def test_admin_secret_right_wrong_missing_and_in_query(ops):
    ok = admin(ops, "GET", "keys")
    assert ok.status == 200
    assert ok.header("cache-control") == "no-store"
    assert ok.header("x-content-type-options") == "nosniff"
    names = {k["name"] for k in ok.json()["keys"]}
    assert names >= set(OPS_KEYS)
    text = ok.body.decode()
    for key in list(KEYS.values()) + list(OPS_KEYS.values()):
        assert key not in text and digest(key) not in text  # no keys, no full digests

    wrong = request(ops.port, path=P + "keys", headers=[("x-admin-secret", "nope")], source="127.0.20.1")
    assert (wrong.status, wrong.json()) == (403, {"detail": "Forbidden"})
    assert wrong.header("cache-control") == "no-store"
    missing = request(ops.port, path=P + "keys", source="127.0.20.2")
    assert missing.status == 403
    in_query = request(ops.port, path=P + "keys?admin_secret=" + ADMIN_SECRET, headers=ADMIN,
                       source="127.0.20.3")
    assert in_query.status == 400
    assert "header" in in_query.json()["detail"]
    # Never forwarded: the upstream's echo shape is absent.
    assert "headers" not in wrong.json() and "headers" not in in_query.json()
    log = ops.log()
    assert ADMIN_SECRET not in log
    access = events(ops, "admin_access")
    assert {(e["reason"], e["status"]) for e in access} >= {("ok", 200), ("denied", 403), ("query_secret", 400)}


def test_wrong_secrets_are_limited_like_failed_keys(ops):
    source = "127.0.21.1"
    n = FAILURES_PER_MINUTE
    statuses = [request(ops.port, path=P + "keys", headers=[("x-admin-secret", f"guess-{i}")],
                        source=source).status for i in range(n + 2)]
    assert statuses[:n] == [403] * n and statuses[n:] == [429, 429], statuses
    # The right secret from that address is blocked too, until the budget refills.
    assert request(ops.port, path=P + "keys", headers=ADMIN, source=source).status == 429
    assert admin(ops, "GET", "keys").status == 200  # other addresses are unaffected


def test_no_admin_section_answers_404(envoy):
    resp = request(envoy.port, path=P + "keys", headers=ADMIN)
    assert resp.status == 404
    assert "headers" not in resp.json()


def test_expiring_keys(ops):
    soon = admin(ops, "GET", "keys/expiring?days=7").json()["keys"]
    assert [k["name"] for k in soon] == ["ops-soon"]
    assert admin(ops, "GET", "keys/expiring?days=1").json()["keys"] == []
    assert admin(ops, "GET", "keys/expiring?days=abc").status == 400


# -- runtime revocation ------------------------------------------------------

def connections_on_both_workers(envoy, key: str, source: str, per_worker: int = 2,
                                limit: int = 40) -> list[http.client.HTTPConnection]:
    """Keep-alive connections, each with one admitted request, until each of
    the 2 workers holds `per_worker` of them (the kernel spreads new
    connections by hash, so 8 at once can all land on one worker)."""
    conns, held = [], [0, 0]
    try:
        for _ in range(limit):
            before = worker_connections(envoy)
            c = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10, source_address=(source, 0))
            conns.append(c)
            assert get_on(c, key) == 200
            after = worker_connections(envoy)
            grew = [i for i, (a, b) in enumerate(zip(after, before)) if a > b]
            assert len(after) == 2 and len(grew) == 1, (before, after)
            held[grew[0]] += 1
            if min(held) >= per_worker:
                return conns
    except BaseException:
        for c in conns:
            c.close()
        raise
    for c in conns:
        c.close()
    raise AssertionError(f"{limit} connections did not reach both workers: {held}")


def get_on(conn: http.client.HTTPConnection, key: str) -> int:
    conn.request("GET", "/echo/x", headers={"X-API-Key": key})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def test_revoke_then_restore_is_seen_by_both_workers_at_once(ops):
    key = OPS_KEYS["ops-revoke"]
    conns = connections_on_both_workers(ops, key, source="127.0.22.1")
    n = len(conns)
    try:

        resp = admin(ops, "POST", "keys/ops-revoke/revoke")
        assert resp.status == 200
        body = resp.json()
        assert body["runtime_override"] is True and body["changed"] is True
        assert body["config_change"] == {"keys": [{"name": "ops-revoke", "enabled": False}]}
        assert "restart" in body["note"]
        # The same connections, on both workers, refuse the key right away.
        assert [get_on(c, key) for c in conns] == [403] * n
        assert use(ops, key).json() == {"detail": "API key revoked"}
        row = key_row(ops, "ops-revoke")
        assert (row["status"], row["revoked_by"], row["runtime_override"]) == ("revoked", "admin", True)

        assert admin(ops, "POST", "keys/ops-revoke/restore").json()["changed"] is True
        assert [get_on(c, key) for c in conns] == [200] * n
        assert key_row(ops, "ops-revoke")["status"] == "active"
    finally:
        for c in conns:
            c.close()
    revoked = [e for e in events(ops, "key_revoked") if e.get("key_name") == "ops-revoke"]
    restored = [e for e in events(ops, "key_restored") if e.get("key_name") == "ops-revoke"]
    assert revoked and revoked[0]["by"] == "admin" and restored
    assert admin(ops, "POST", "keys/nobody/revoke").status == 404
    assert admin(ops, "GET", "keys/ops-revoke/revoke").status == 405


def test_revocation_survives_a_listener_reload(tmp_path, upstream):
    cfg = stack.render_envoy_config(ops_config(), listen_port=stack.free_port(),
                                    admin_port=stack.free_port(), upstream=("127.0.0.1", upstream))
    listener = cfg["static_resources"]["listeners"][0]
    boot = stack.split_for_lds(cfg, tmp_path)
    envoy = stack.start_envoy(boot, tmp_path, concurrency=2)
    try:
        key = OPS_KEYS["ops-revoke"]
        assert use(envoy, key).status == 200
        assert admin(envoy, "POST", "keys/ops-revoke/revoke").status == 200
        # A new configuration (one more key) arrives through LDS.
        changed = ops_config()
        changed["keys"].append({"name": "added-later", "sha256": digest("rag_added-later-0000000000000000000")})
        push(envoy, listener, tmp_path, changed)
        names = {k["name"] for k in admin(envoy, "GET", "keys").json()["keys"]}
        assert "added-later" in names  # the new configuration serves
        for _ in range(6):
            assert use(envoy, key).status == 403
        assert key_row(envoy, "ops-revoke")["runtime_override"] is True
        assert admin(envoy, "POST", "keys/ops-revoke/restore").status == 200
        assert use(envoy, key).status == 200
    finally:
        envoy.stop()


# -- usage -------------------------------------------------------------------

def test_usage_counts_match_the_traffic_sent(ops):
    key = OPS_KEYS["ops-usage"]  # tier tiny: burst 5, one token every 2 s
    statuses = [use(ops, key).status for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3, statuses
    # A body refused by inspection has passed the limiter first: wait for a token.
    time.sleep(2.2)
    bad = request(ops.port, "POST", "/query", headers=[("X-API-Key", key), ("Content-Type", "application/json")],
                  body=b'{"question": "x", "unknown": 1}')
    assert bad.status == 400, bad.body

    def usage_matches():
        report = admin(ops, "GET", "usage?days=1").json()
        row = next(k for k in report["keys"] if k["name"] == "ops-usage")
        return row if row["totals"] == {"admitted": 5, "rate_limited": 3, "rejected": 1} else None

    row = wait_for(usage_matches, what="usage flushed by every worker")
    assert row["days"][0]["date"] == time.strftime("%Y-%m-%d", time.gmtime())
    report = admin(ops, "GET", "usage?days=7").json()
    assert len(report["keys"][0]["days"]) == 7
    tiny = next(t for t in report["tiers"] if t["tier"] == "tiny")
    assert tiny["totals"] == {"admitted": 5, "rate_limited": 3, "rejected": 1}
    listed = key_row(ops, "ops-usage")
    assert listed["request_count"] == 9
    assert listed["last_used"] is not None


# -- leaked keys ---------------------------------------------------------------

def test_a_key_used_from_11_addresses_is_revoked(ops):
    key = OPS_KEYS["ops-leak"]
    for i in range(1, 11):
        assert use(ops, key, source=f"127.0.10.{i}").status == 200, i
    assert key_row(ops, "ops-leak")["addresses_in_window"] == 10
    eleventh = use(ops, key, source="127.0.10.11")
    assert (eleventh.status, eleventh.json()) == (403, {"detail": "API key revoked due to suspicious activity"})
    # From then on, from anywhere, including the addresses that used it before.
    assert use(ops, key, source="127.0.10.1").status == 403
    assert use(ops, key).status == 403
    row = key_row(ops, "ops-leak")
    assert (row["status"], row["revoked_by"]) == ("revoked", "leak_detection")
    detected = [e for e in events(ops, "key_leak_detected") if e.get("key_name") == "ops-leak"]
    assert len(detected) == 1
    assert detected[0]["addresses"] == 11 and detected[0]["action"] == "revoke"
    assert detected[0]["window_secs"] == 300 and detected[0]["ip"] == "127.0.10.11"
    assert "[error]" in next(line for line in ops.log().splitlines() if '"key_leak_detected"' in line)
    prom = request(ops.admin_port, path="/stats/prometheus").body.decode()
    assert re.search(r'^rag_guard_leak_detections\{key="ops-leak",action="revoke"\} 1$', prom, re.M)


def test_an_allowlisted_range_does_not_trip_detection(ops):
    key = OPS_KEYS["ops-office"]
    for i in range(1, 31):
        assert use(ops, key, source=f"127.0.11.{i}").status == 200, i
    assert key_row(ops, "ops-office")["addresses_in_window"] == 0
    assert not [e for e in events(ops, "key_leak_detected") if e.get("key_name") == "ops-office"]


# -- metrics -------------------------------------------------------------------

def test_prometheus_output_carries_the_labels(ops):
    good = [("X-API-Key", KEYS["good"])]
    use(ops, KEYS["good"])
    request(ops.port, path="/echo/x")
    request(ops.port, path="/echo/x", headers=[("X-API-Key", "rag_wrong")])
    request(ops.port, "POST", "/query", headers=good + [("Content-Type", "application/json")],
            body=b'{"question": "What is the refund policy?"}')
    request(ops.port, "POST", "/query", headers=good + [("Content-Type", "application/json")],
            body=b'{"question": "x\' UNION SELECT password FROM users --"}')

    def scrape():
        prom = request(ops.admin_port, path="/stats/prometheus").body.decode()
        # Histograms reach the admin output at Envoy's stats flush (5 s).
        return prom if re.search(r"^rag_guard_inspection_duration_us_count\{\} [1-9]", prom, re.M) else None

    prom = wait_for(scrape, timeout=15, what="inspection histogram")
    expected = [
        r'rag_guard_requests\{decision="allowed",reason="none"\} [1-9]',
        r'rag_guard_requests\{decision="unauthenticated",reason="missing_key"\} [1-9]',
        r'rag_guard_requests\{decision="invalid",reason="invalid_key"\} [1-9]',
        r'rag_guard_requests\{decision="invalid_input",reason="sql_injection"\} [1-9]',
        r'rag_guard_requests\{decision="admin",reason="ok"\} [1-9]',
        r'rag_guard_key_requests\{key="client-good",tier="free",decision="allowed"\} [1-9]',
        r'rag_guard_key_requests\{key="client-good",tier="free",decision="invalid_input"\} [1-9]',
        r'rag_guard_cas_retries\{\} \d+',
        r'rag_guard_inspection_duration_us_bucket\{le="[\d.e+]+"\} \d+',
    ]
    for pattern in expected:
        assert re.search("^" + pattern, prom, re.M), pattern
    # No label-less leftovers: every rag_guard stat name was tagged.
    leftovers = re.findall(r"^rag_guard_\w*_(?:decision|reason|key|tier|action|category)_\w*", prom, re.M)
    assert not leftovers, leftovers[:5]


def key_series(prom: str, key: str) -> dict[str, int]:
    return {d: int(v) for d, v in re.findall(
        rf'^rag_guard_key_requests\{{key="{key}",tier="free",decision="(\w+)"\}} (\d+)$', prom, re.M)}


def test_an_inspected_request_is_counted_once(ops):
    key = OPS_KEYS["ops-metrics"]
    prom = request(ops.admin_port, path="/stats/prometheus").body.decode()
    # Every per-key series exists from configuration time, at 0.
    assert key_series(prom, "ops-metrics") == {
        "allowed": 0, "rate_limited": 0, "invalid_input": 0, "revoked": 0, "expired": 0}
    headers = [("X-API-Key", key), ("Content-Type", "application/json")]
    assert request(ops.port, "POST", "/query", headers=headers,
                   body=b'{"question": "<script>alert(1)</script>"}').status == 400
    assert request(ops.port, "POST", "/query", headers=headers,
                   body=b'{"question": "What changed in the 2024 travel policy?"}').status == 200
    prom = request(ops.admin_port, path="/stats/prometheus").body.decode()
    series = key_series(prom, "ops-metrics")
    assert (series["allowed"], series["invalid_input"]) == (1, 1), series


def test_the_metrics_listener_exposes_prometheus_output_only(ops):
    port = stack.metrics_port(ops)
    scrape = request(port, path="/stats/prometheus")
    assert scrape.status == 200
    assert re.search(r'^rag_guard_requests\{decision="admin",reason="ok"\} [1-9]', scrape.body.decode(), re.M)
    for method, path in [("POST", "/quitquitquit"), ("GET", "/config_dump"), ("GET", "/stats"),
                         ("POST", "/stats/prometheus"), ("GET", "/stats/prometheus/../config_dump")]:
        assert request(port, method, path).status == 404, path
    assert request(ops.port, path="/health").status == 200  # still serving


def test_dashboard_and_alerts_use_metrics_envoy_exports(ops):
    """Every rag_guard metric name in the Grafana dashboard and the alert
    rules exists in this Envoy's Prometheus output (after the traffic of the
    tests above), with the labels the queries select on."""
    root = stack.ROOT / "deploy"
    prom = request(ops.admin_port, path="/stats/prometheus").body.decode()
    exported = {}
    for name, labels in re.findall(r"^(rag_guard_\w+)\{([^}]*)\}", prom, re.M):
        exported.setdefault(name, set()).update(re.findall(r'(\w+)="', labels))
    exprs = [t["expr"] for p in json.loads((root / "grafana" / "rag-guard-dashboard.json").read_text())["panels"]
             for t in p["targets"]]
    exprs += re.findall(r"expr: (.+)", (root / "prometheus" / "rag-guard-alerts.yml").read_text())
    assert len(exprs) > 10
    for expr in exprs:
        names = re.findall(r"\b(rag_guard_\w+)", expr)
        for name in names:
            assert name in exported, f"{name} (in {expr}) is not exported"
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr):
                if label != "le":
                    assert label in exported[name] or name.endswith("_bucket"), (label, name, expr)
        # Labels grouped on (sum by (...)) exist on some metric of the query.
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in (g.strip() for g in group.split(",")):
                assert any(label in exported[n] for n in names), (label, expr)


def test_key_expiry_is_a_gauge_for_the_expiring_keys_alert(ops):
    """The RagGuardKeyExpiringSoon rule reads rag_guard_key_expires_at_seconds:
    one series per key, labelled with the key, holding its expires_at (0 for
    keys that never expire, which the rule ignores)."""
    prom = request(ops.admin_port, path="/stats/prometheus").body.decode()
    series = dict(re.findall(r'^rag_guard_key_expires_at_seconds\{key="([\w-]+)"\} (\d+)$', prom, re.M))
    soon = int(series["ops-soon"])
    assert 2 * 86400 < soon - time.time() <= 3 * 86400
    assert series["client-good"] == "4070908800"  # 2099-01-01T00:00:00Z
    assert series["client-pro"] == "0"
