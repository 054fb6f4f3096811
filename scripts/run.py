"""`make run`: the demo upstream on 127.0.0.1:8000, Envoy with rag-guard on
127.0.0.1:10000 (Envoy admin 127.0.0.1:9901, metrics listener
127.0.0.1:9902), a freshly generated demo key and admin secret, and curl
lines to try. Ctrl-C stops both processes.

The ports can be changed with RUN_LISTEN_PORT, RUN_ADMIN_PORT,
RUN_METRICS_PORT and RUN_UPSTREAM_PORT (the tests do, to run beside
anything else).

The plugin configuration used is written to .run/plugin-config.json and the
rendered Envoy config to .run/envoy.yaml, so they can be read and changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import stack

RUN_DIR = stack.ROOT / ".run"


def keygen(name: str) -> dict:
    out = subprocess.run(
        [str(stack.BIN_DIR / "rag-guard"), "keygen", "--name", name, "--tier", "free",
         "--expires-in", "30d", "--json"],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def main() -> int:
    generated = keygen("demo")
    # The admin secret is a random key too; only its digest is configured.
    admin_secret = keygen("admin")
    plugin_config = {
        "keys": [generated["record"]],
        "public_paths": ["/health"],
        "admin": {"secret_sha256": admin_secret["record"]["sha256"]},
    }
    RUN_DIR.mkdir(exist_ok=True)
    (RUN_DIR / "plugin-config.json").write_text(json.dumps(plugin_config, indent=2) + "\n")

    listen = int(os.environ.get("RUN_LISTEN_PORT", "10000"))
    admin = int(os.environ.get("RUN_ADMIN_PORT", "9901"))
    upstream = envoy = None
    try:
        upstream, port = stack.start_upstream(int(os.environ.get("RUN_UPSTREAM_PORT", "8000")))
        cfg = stack.render_envoy_config(
            plugin_config, listen_port=listen, admin_port=admin, upstream=("127.0.0.1", port)
        )
        metrics = int(os.environ.get("RUN_METRICS_PORT", "9902"))
        for listener in cfg["static_resources"]["listeners"][1:]:
            listener["address"]["socket_address"]["port_value"] = metrics
        envoy = stack.start_envoy(cfg, RUN_DIR, concurrency=2, log_level="info")
        key = generated["key"]
        print(f"""
rag-guard is running.
  Envoy + rag-guard  http://127.0.0.1:{listen}   (Envoy admin http://127.0.0.1:{admin}, metrics http://127.0.0.1:{metrics}/stats/prometheus)
  demo upstream      http://127.0.0.1:{port}
  Envoy log          {envoy.log_path}
  plugin config      {RUN_DIR / 'plugin-config.json'}

Demo API key (generated now, expires in 30 days, not stored anywhere):
  {key}
Admin secret (only its SHA-256 is in the plugin config):
  {admin_secret["key"]}

Try it:
  curl -i -H 'x-api-key: {key}' -H 'content-type: application/json' \\
       -d '{{"question": "What is our refund policy?"}}' http://127.0.0.1:{listen}/query
  curl -i http://127.0.0.1:{listen}/query          # 401 Missing API Key
  curl -s -H 'x-admin-secret: {admin_secret["key"]}' http://127.0.0.1:{listen}/rag-guard/admin/keys
  curl -s http://127.0.0.1:{metrics}/stats/prometheus | grep '^rag_guard'


Ctrl-C stops Envoy and the upstream.""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # Ctrl-C stops it even when it was started with SIGINT ignored, as
        # a shell's background job is (Python then installs no handler).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        while envoy.proc.poll() is None and upstream.poll() is None:
            time.sleep(0.5)
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if envoy:
            envoy.stop()
        stack.stop_process(upstream)
        print("stopped Envoy and the demo upstream")


if __name__ == "__main__":
    sys.exit(main())
