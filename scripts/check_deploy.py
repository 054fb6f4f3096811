"""Static checks of the shipped deployment files (no Docker engine needed).

1. `docker-compose config -q` parses docker-compose.yml against the Compose
   schema.
2. `envoy --mode validate` on the Envoy config that docker-compose mounts,
   with only the wasm path pointed at the local build (Envoy's validation
   opens the wasm file and runs the plugin's configuration).
3. The same validation refuses that config when its plugin configuration is
   broken, so the check above can fail.
4. Prometheus: `promtool check config` on the scrape config (and the alert
   rules it loads), `promtool test rules` on the alert unit tests, and every
   query of the Grafana dashboard through `promtool check rules`.
5. The Istio WasmPlugin and Envoy Gateway EnvoyExtensionPolicy manifests:
   their kind and the fields that decide safety (never fail open, image
   pinned by digest, root id), and their plugin configuration through
   `rag-guard check-config`, the filter's own parser.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

import stack

DEPLOY = stack.ROOT / "deploy"
CLI = stack.BIN_DIR / "rag-guard"


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def check_prometheus() -> list[str]:
    errors = []
    prom = DEPLOY / "prometheus"
    for argv in (["promtool", "check", "config", "prometheus.yml"],
                 ["promtool", "test", "rules", "rag-guard-alerts.test.yml"]):
        r = run(argv, cwd=prom)
        if r.returncode != 0:
            errors.append(f"{' '.join(argv)} failed:\n{r.stdout}{r.stderr}")
    dashboard = json.loads((DEPLOY / "grafana" / "rag-guard-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump(rules))
        r = run(["promtool", "check", "rules", str(path)])
        if r.returncode != 0:
            errors.append(f"Grafana dashboard queries are not valid PromQL:\n{r.stdout}{r.stderr}")
    return errors


def check_plugin_config(name: str, config: dict) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plugin.json"
        path.write_text(json.dumps(config))
        r = run([str(CLI), "check-config", str(path)])
    return [] if r.returncode == 0 else [f"{name}: plugin configuration refused: {r.stdout}{r.stderr}"]


def check_mesh_manifests() -> list[str]:
    errors = []
    istio = yaml.safe_load((DEPLOY / "istio" / "wasmplugin.yaml").read_text())
    spec = istio.get("spec", {})
    expect = {
        "apiVersion": istio.get("apiVersion") == "extensions.istio.io/v1alpha1",
        "kind WasmPlugin": istio.get("kind") == "WasmPlugin",
        "url oci://": str(spec.get("url", "")).startswith("oci://"),
        "sha256 pinned": len(str(spec.get("sha256", ""))) == 64,
        "failStrategy FAIL_CLOSE": spec.get("failStrategy") == "FAIL_CLOSE",
        "phase AUTHN": spec.get("phase") == "AUTHN",
        "pluginName rag_guard": spec.get("pluginName") == "rag_guard",
    }
    errors += [f"deploy/istio/wasmplugin.yaml: expected {k}" for k, ok in expect.items() if not ok]
    errors += check_plugin_config("deploy/istio/wasmplugin.yaml", spec.get("pluginConfig", {}))

    eg = yaml.safe_load((DEPLOY / "envoy-gateway" / "envoy-extension-policy.yaml").read_text())
    wasm = (eg.get("spec", {}).get("wasm") or [{}])[0]
    image = wasm.get("code", {}).get("image", {})
    expect = {
        "apiVersion": eg.get("apiVersion") == "gateway.envoyproxy.io/v1alpha1",
        "kind EnvoyExtensionPolicy": eg.get("kind") == "EnvoyExtensionPolicy",
        "targetRefs": bool(eg.get("spec", {}).get("targetRefs")),
        "code type Image": wasm.get("code", {}).get("type") == "Image",
        "image sha256 pinned": len(str(image.get("sha256", ""))) == 64,
        "failOpen false": wasm.get("failOpen") is False,
        "rootID rag_guard": wasm.get("rootID") == "rag_guard",
    }
    errors += [f"deploy/envoy-gateway/envoy-extension-policy.yaml: expected {k}" for k, ok in expect.items() if not ok]
    errors += check_plugin_config("deploy/envoy-gateway/envoy-extension-policy.yaml", wasm.get("config", {}))
    return errors


def validate(cfg: dict) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "envoy.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        run = subprocess.run(
            [stack.envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
            capture_output=True, text=True, timeout=60,
        )
        return run.returncode, run.stdout + run.stderr


def main() -> int:
    compose = subprocess.run(
        ["docker-compose", "-f", str(stack.ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, timeout=60,
    )
    if compose.returncode != 0:
        print(f"docker-compose.yml: invalid\n{compose.stderr}")
        return 1
    print("docker-compose.yml: valid (docker-compose config)")

    mounted = yaml.safe_load(stack.ENVOY_YAML.read_text())
    stack._wasm_filter(mounted)["vm_config"]["code"]["local"]["filename"] = str(stack.WASM)
    code, out = validate(mounted)
    if code != 0:
        print(f"envoy/envoy.yaml: envoy --mode validate failed\n{out}")
        return 1
    print("envoy/envoy.yaml: valid (envoy --mode validate)")

    stack._wasm_filter(mounted)["configuration"]["value"] = json.dumps({"keys": [], "bogus": 1})
    code, out = validate(mounted)
    if code == 0 or "rag-guard: configuration refused: configuration: unknown field `bogus`" not in out:
        print(f"envoy --mode validate did not refuse a broken plugin configuration as expected:\n{out}")
        return 1
    print("envoy --mode validate refuses a broken plugin configuration, as it should")

    errors = check_prometheus()
    if errors:
        print("\n".join(errors))
        return 1
    print("deploy/prometheus: config, alert rules and their unit tests pass (promtool); "
          "Grafana dashboard queries parse")

    errors = check_mesh_manifests()
    if errors:
        print("\n".join(errors))
        return 1
    print("deploy/istio, deploy/envoy-gateway: manifests have the safe settings; "
          "their plugin configurations pass rag-guard check-config")
    return 0


if __name__ == "__main__":
    sys.exit(main())
