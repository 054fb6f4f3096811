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
6. Cluster mode: envoy/envoy-cluster.yaml (mounted by the compose `cluster`
   profile) is exactly envoy/envoy.yaml plus the cluster service's Envoy
   cluster and the plugin's `cluster` section (regenerate it with
   `python3 scripts/check_deploy.py --write-cluster-config`), and passes
   `envoy --mode validate`; the Kubernetes manifests of the service and the
   Envoy Gateway patch name the same cluster and port.
"""

from __future__ import annotations

import copy
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


CLUSTER_YAML = stack.ROOT / "envoy" / "envoy-cluster.yaml"
CLUSTER_HEADER = """# GENERATED from envoy/envoy.yaml by
#   python3 scripts/check_deploy.py --write-cluster-config
# (`make test` fails when the two drift): the same Envoy, plus the Envoy
# cluster of rag-guard-cluster (compose service "cluster-service", HTTP/2)
# and the plugin configuration's `cluster` section. Mounted by the compose
# `cluster` profile (envoy-a, envoy-b). See envoy/envoy.yaml for the
# comments and docs/cluster-mode.md for cluster mode.
"""


def cluster_envoy_config() -> dict:
    cfg = yaml.safe_load(stack.ENVOY_YAML.read_text())
    wasm = stack._wasm_filter(cfg)
    plugin = json.loads(wasm["configuration"]["value"])
    plugin["cluster"] = {"service": stack.CLUSTER_SERVICE, "domain": "rag-guard",
                         "timeout_ms": 100, "failure_mode": "deny"}
    wasm["configuration"]["value"] = json.dumps(plugin, indent=2) + "\n"
    stack.add_cluster_service(cfg, 8081)
    service = cfg["static_resources"]["clusters"][-1]
    service["type"] = "STRICT_DNS"
    sock = service["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    sock["address"] = "cluster-service"
    return cfg


def check_cluster_files() -> list[str]:
    errors = []
    expected = cluster_envoy_config()
    if yaml.safe_load(CLUSTER_YAML.read_text()) != expected:
        errors.append("envoy/envoy-cluster.yaml: differs from envoy/envoy.yaml plus cluster mode; "
                      "run python3 scripts/check_deploy.py --write-cluster-config")
    mounted = copy.deepcopy(expected)
    stack._wasm_filter(mounted)["vm_config"]["code"]["local"]["filename"] = str(stack.WASM)
    code, out = validate(mounted)
    if code != 0:
        errors.append(f"envoy/envoy-cluster.yaml: envoy --mode validate failed\n{out}")
    docs = list(yaml.safe_load_all((DEPLOY / "cluster" / "rag-guard-cluster.yaml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for want in [("Deployment", "rag-guard-cluster"), ("Service", "rag-guard-cluster"),
                 ("Deployment", "rag-guard-redis"), ("Service", "rag-guard-redis"),
                 ("NetworkPolicy", "rag-guard-cluster-clients")]:
        if want not in kinds:
            errors.append(f"deploy/cluster/rag-guard-cluster.yaml: no {want[0]} {want[1]}")
    svc = next((d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "rag-guard-cluster"), {})
    port = (svc.get("spec", {}).get("ports") or [{}])[0]
    if port.get("port") != 8081 or port.get("appProtocol") != "grpc":
        errors.append("deploy/cluster/rag-guard-cluster.yaml: the service port must be 8081, appProtocol grpc")
    istio = yaml.safe_load((DEPLOY / "istio" / "wasmplugin.yaml").read_text())
    istio_service = istio["spec"]["pluginConfig"].get("cluster", {}).get("service")
    if istio_service != "outbound|8081||rag-guard-cluster.rag-guard.svc.cluster.local":
        errors.append(f"deploy/istio/wasmplugin.yaml: cluster.service {istio_service!r} is not Istio's name "
                      "for the rag-guard-cluster Service")
    patch = yaml.safe_load((DEPLOY / "envoy-gateway" / "cluster-service-patch.yaml").read_text())
    added = patch["spec"]["jsonPatches"][0]["operation"]["value"]
    eg = yaml.safe_load((DEPLOY / "envoy-gateway" / "envoy-extension-policy.yaml").read_text())
    eg_service = eg["spec"]["wasm"][0]["config"].get("cluster", {}).get("service")
    h2 = added.get("typed_extension_protocol_options", {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {}).get("explicit_http_config", {})
    if patch.get("kind") != "EnvoyPatchPolicy" or added.get("name") != eg_service or "http2_protocol_options" not in h2:
        errors.append("deploy/envoy-gateway/cluster-service-patch.yaml: must add the HTTP/2 cluster "
                      f"{eg_service!r} that envoy-extension-policy.yaml names")
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
    if sys.argv[1:] == ["--write-cluster-config"]:
        class Literal(yaml.SafeDumper):
            pass

        # Multi-line strings (the plugin configuration) as readable blocks.
        Literal.add_representer(str, lambda d, v: d.represent_scalar(
            "tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))
        text = yaml.dump(cluster_envoy_config(), Dumper=Literal, sort_keys=False, width=100)
        CLUSTER_YAML.write_text(CLUSTER_HEADER + text)
        print(f"wrote {CLUSTER_YAML}")
        return 0
    compose = subprocess.run(
        ["docker-compose", "-f", str(stack.ROOT / "docker-compose.yml"), "--profile", "cluster", "config", "-q"],
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

    errors = check_cluster_files()
    if errors:
        print("\n".join(errors))
        return 1
    print("cluster mode: envoy/envoy-cluster.yaml matches envoy/envoy.yaml and validates; "
          "deploy/cluster and the Envoy Gateway patch name the same service")
    return 0


if __name__ == "__main__":
    sys.exit(main())
