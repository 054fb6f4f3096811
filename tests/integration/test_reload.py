"""Configuration reload: a new listener configuration (same vm_id) pushed
through Envoy's filesystem LDS while Envoy runs, as an operator would."""

from __future__ import annotations

import time

import pytest

from client import request
from conftest import KEYS, base_plugin_config, digest

import stack

NEW_KEY = "rag_test-new-key-after-reload-00000000000000000"


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def lds_envoy(tmp_path, upstream):
    cfg = stack.render_envoy_config(base_plugin_config(), listen_port=stack.free_port(),
                                    admin_port=stack.free_port(), upstream=("127.0.0.1", upstream))
    listener = cfg["static_resources"]["listeners"][0]
    boot = stack.split_for_lds(cfg, tmp_path)
    envoy = stack.start_envoy(boot, tmp_path, concurrency=2)
    try:
        yield envoy, listener, tmp_path
    finally:
        envoy.stop()


def push(envoy, listener, workdir, plugin_config, outcome="update_success"):
    """Writes a new plugin configuration into the LDS file and waits until
    Envoy has accepted or rejected it."""
    import copy
    import json

    new = copy.deepcopy(listener)
    wasm = new["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]["config"]
    wasm["configuration"]["value"] = json.dumps(plugin_config)
    counter = f"listener_manager.lds.{outcome}"
    before = stack.admin_stat(envoy, counter)
    stack.write_lds(new, workdir)
    wait_for(lambda: stack.admin_stat(envoy, counter) > before, what=counter)


def status(envoy, key):
    return request(envoy.port, path="/echo/x", headers=[("X-API-Key", key)])


def test_reload_applies_new_keys_and_drops_removed_ones(lds_envoy):
    envoy, listener, workdir = lds_envoy
    assert status(envoy, KEYS["good"]).status == 200
    assert status(envoy, NEW_KEY).status == 401

    changed = base_plugin_config()
    changed["keys"] = [k for k in changed["keys"] if k["name"] != "client-good"]
    changed["keys"].append({"name": "client-new", "sha256": digest(NEW_KEY)})
    for k in changed["keys"]:
        if k["name"] == "client-pro":
            k["tier"] = "enterprise"
    push(envoy, listener, workdir, changed)

    # New connections see the new configuration on every worker.
    for _ in range(6):
        assert status(envoy, NEW_KEY).status == 200
        assert status(envoy, KEYS["good"]).json() == {"detail": "Invalid API Key"}
        pro = status(envoy, KEYS["pro"])
        assert ["x-api-key-tier", "enterprise"] in pro.json()["headers"]

    # And back: the removed key works again, the added one is gone.
    push(envoy, listener, workdir, base_plugin_config())
    for _ in range(6):
        assert status(envoy, KEYS["good"]).status == 200
        assert status(envoy, NEW_KEY).status == 401


def test_bad_reload_is_rejected_and_the_old_config_keeps_serving(lds_envoy):
    envoy, listener, workdir = lds_envoy
    push(envoy, listener, workdir, {"keys": [], "unknown": True}, outcome="update_rejected")
    assert status(envoy, KEYS["good"]).status == 200
    assert "rag-guard: configuration refused: configuration: unknown field `unknown`" in envoy.log()
