"""Static checks of the shipped deployment files (no Docker engine needed).

1. `docker-compose config -q` parses docker-compose.yml against the Compose
   schema.
2. `envoy --mode validate` on the Envoy config that docker-compose mounts,
   with only the wasm path pointed at the local build (Envoy's validation
   opens the wasm file and runs the plugin's configuration).
3. The same validation refuses that config when its plugin configuration is
   broken, so the check above can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

import stack


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
