"""Bad plugin configurations are refused by Envoy with one clear line, and
`rag-guard check-config` gives the same verdict."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import base_plugin_config, digest

import stack

GOOD = digest("k")


def bad_configs():
    dup_name = base_plugin_config()
    dup_name["keys"].append(dict(dup_name["keys"][0], sha256=digest("other")))
    dup_digest = base_plugin_config()
    dup_digest["keys"].append(dict(dup_digest["keys"][0], name="copy"))
    return [
        ("unknown-field", {"keys": [], "rate": 1}, "configuration: unknown field `rate`"),
        ("malformed-digest", {"keys": [{"name": "a", "sha256": GOOD[:60]}]}, "keys[0].sha256: must be 64 lowercase hex"),
        ("uppercase-digest", {"keys": [{"name": "a", "sha256": GOOD.upper()}]}, "keys[0].sha256: must be 64 lowercase hex"),
        ("duplicate-name", dup_name, "keys[4].name: duplicate key name"),
        ("duplicate-digest", dup_digest, "keys[4].sha256: the same digest is already configured"),
        ("bad-timestamp", {"keys": [{"name": "a", "sha256": GOOD, "expires_at": "next year"}]},
         "keys[0].expires_at:"),
        ("missing-keys", {"public_paths": ["/health"]}, "configuration: missing field `keys`"),
        ("not-json", "{keys: []", "configuration: key must be a string"),
        ("event-budget-zero", {"keys": [], "events": {"max_per_second": 0}},
         "events.max_per_second: must be 1..=1000000"),
        ("cluster-failure-mode", {"keys": [], "cluster": {"service": "s", "failure_mode": "open"}},
         'cluster.failure_mode: "open" is not one of deny, local'),
        ("model-threshold", {"keys": [], "body_inspection": {"injection_model": {"threshold": 1.5}}},
         "body_inspection.injection_model.threshold: must be between 0 and 1 (exclusive)"),
        ("model-veto", {"keys": [], "body_inspection": {"injection_model": {"threshold": 0.6, "veto_below": 0.7}}},
         "body_inspection.injection_model.veto_below: must be between 0 and the threshold (0.6)"),
        ("documents-without-scorer", {"keys": [], "body_inspection": {
            "injection_model": {"mode": "off"},
            "routes": [{"path": "/d", "max_body_bytes": 10,
                        "fields": {"content": {"type": "string", "screen": ["document_injection"]}}}]}},
         "body_inspection.routes[0].fields.content.screen: document_injection needs the scorer"),
    ]


@pytest.mark.parametrize("plugin_config,message", [(c, m) for _, c, m in bad_configs()],
                         ids=[i for i, _, _ in bad_configs()])
def test_envoy_refuses_bad_config(tmp_path, upstream, plugin_config, message):
    cfg = stack.render_envoy_config(plugin_config, listen_port=stack.free_port(),
                                    admin_port=stack.free_port(), upstream=("127.0.0.1", upstream))
    code, log = stack.run_envoy_to_exit(cfg, tmp_path)
    assert code is not None and code != 0, f"Envoy did not exit on a bad configuration:\n{log}"
    refused = [line for line in log.splitlines() if "rag-guard: configuration refused:" in line]
    assert refused, log
    assert message in refused[0], refused[0]

    # The CLI uses the same parser and prints the same message.
    path = tmp_path / "plugin.json"
    path.write_text(plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config))
    cli = subprocess.run([str(stack.BIN_DIR / "rag-guard"), "check-config", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode != 0
    assert message in cli.stderr
    assert refused[0].split("rag-guard: configuration refused: ", 1)[1] in cli.stderr


def test_check_config_accepts_a_good_config(tmp_path):
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(base_plugin_config()))
    cli = subprocess.run([str(stack.BIN_DIR / "rag-guard"), "check-config", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    assert "ok (4 keys)" in cli.stdout


def test_keygen_record_is_accepted_and_hash_matches_hashlib(tmp_path):
    out = subprocess.run([str(stack.BIN_DIR / "rag-guard"), "keygen", "--name", "svc", "--tier", "pro",
                          "--expires-in", "90d", "--json"], capture_output=True, text=True, check=True)
    generated = json.loads(out.stdout)
    assert generated["record"]["sha256"] == digest(generated["key"])
    hashed = subprocess.run([str(stack.BIN_DIR / "rag-guard"), "hash", generated["key"]],
                            capture_output=True, text=True, check=True)
    assert hashed.stdout.strip() == digest(generated["key"])
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps({"keys": [generated["record"]]}))
    assert subprocess.run([str(stack.BIN_DIR / "rag-guard"), "check-config", str(path)],
                          capture_output=True).returncode == 0
