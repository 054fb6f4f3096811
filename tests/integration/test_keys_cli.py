"""`rag-guard keys`: rotation with a grace period through a live Envoy, and
edits that check-config would refuse are never written."""

from __future__ import annotations

import json
import re
import subprocess
import time

from client import request
from conftest import KEYS, base_plugin_config, digest
from test_auth import assert_401, received_headers

import stack

CLI = str(stack.BIN_DIR / "rag-guard")


def keys(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "keys", *args], capture_output=True, text=True, check=check, timeout=30)


def printed_key(out: str) -> str:
    match = re.search(r"^  (rag_\S+)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def test_a_rotated_key_and_its_predecessor_both_work_until_the_grace_ends(stacks, tmp_path):
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(base_plugin_config()))
    out = keys("rotate", str(path), "client-pro", "--grace", "4s").stdout
    new = printed_key(out)
    assert "accepted until" in out
    assert subprocess.run([CLI, "check-config", str(path)], capture_output=True).returncode == 0
    envoy = stacks.envoy(json.loads(path.read_text()), name="rotated")
    for key in (KEYS["pro"], new):
        resp = request(envoy.port, path="/echo/x", headers=[("X-API-Key", key)])
        assert resp.status == 200, (key, resp.body)
        # Both are the same client upstream.
        assert received_headers(resp)["x-api-key-name"] == ["client-pro"]
        assert received_headers(resp)["x-api-key-tier"] == ["pro"]
    # The grace ends (whole seconds, from the CLI's clock): the old key is
    # refused as expired, the new one still works.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp = request(envoy.port, path="/echo/x", headers=[("X-API-Key", KEYS["pro"])])
        if resp.status == 401:
            break
        time.sleep(0.5)
    assert_401(resp, "API key expired")
    assert request(envoy.port, path="/echo/x", headers=[("X-API-Key", new)]).status == 200


def test_add_disable_enable_remove_and_list(tmp_path):
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(base_plugin_config()))
    new = printed_key(keys("add", str(path), "--name", "svc", "--tier", "pro", "--expires-in", "30d").stdout)
    record = next(k for k in json.loads(path.read_text())["keys"] if k["name"] == "svc")
    assert record["sha256"] == digest(new) and record["tier"] == "pro"
    listed = keys("list", str(path)).stdout
    line = next(l for l in listed.splitlines() if l.startswith("svc "))
    assert "active" in line and re.search(r"\s(29|30)\s", line), line
    # No digest (and so no key) is ever printed for an existing key.
    assert not re.search(r"[0-9a-f]{64}", listed)
    keys("disable", str(path), "svc")
    assert re.search(r"^svc\s+pro\s+disabled", keys("list", str(path)).stdout, re.MULTILINE)
    keys("enable", str(path), "svc")
    keys("remove", str(path), "svc")
    assert "svc" not in [k["name"] for k in json.loads(path.read_text())["keys"]]
    assert keys("remove", str(path), "svc", check=False).returncode != 0


def test_an_edit_check_config_would_refuse_is_not_written(tmp_path):
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(base_plugin_config()))
    before = path.read_bytes()
    for args in (["add", str(path), "--name", "svc", "--tier", "no-such-tier"],
                 ["add", str(path), "--name", "bad name"],
                 ["add", str(path), "--name", "client-good"],
                 ["rotate", str(path), "nobody"],
                 # It expires: the new key's lifetime must be given.
                 ["rotate", str(path), "client-expired"],
                 ["rotate", str(path), "client-pro", "--grace", "soon"]):
        result = keys(*args, check=False)
        assert result.returncode != 0, args
        assert "API key" not in result.stdout, args
        assert path.read_bytes() == before, args
    refused = keys("add", str(path), "--name", "svc", "--tier", "no-such-tier", check=False)
    assert "would be refused" in refused.stderr and "unknown tier" in refused.stderr
    out = keys("rotate", str(path), "client-expired", "--expires-in", "90d").stdout
    record = next(k for k in json.loads(path.read_text())["keys"] if k["name"] == "client-expired")
    assert record["sha256"] == digest(printed_key(out)) and record["expires_at"] > "2026"
    # The replaced key had expired: rotation does not bring it back.
    assert "stays refused" in out and record["previous"] == []
    # No temporary file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["plugin.json"]
