"""`make run`: the demo upstream on 127.0.0.1:8000, Envoy with rag-guard on
127.0.0.1:10000 (admin 127.0.0.1:9901), a freshly generated demo key, and a
curl line to try. Ctrl-C stops both processes.

The ports can be changed with RUN_LISTEN_PORT, RUN_ADMIN_PORT and
RUN_UPSTREAM_PORT (the tests do, to run beside anything else).

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


def main() -> int:
    keygen = subprocess.run(
        [str(stack.BIN_DIR / "rag-guard"), "keygen", "--name", "demo", "--tier", "free",
         "--expires-in", "30d", "--json"],
        capture_output=True, text=True, check=True,
    )
    generated = json.loads(keygen.stdout)
    plugin_config = {"keys": [generated["record"]], "public_paths": ["/health"]}
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
        envoy = stack.start_envoy(cfg, RUN_DIR, concurrency=2, log_level="info")
        key = generated["key"]
        print(f"""
rag-guard is running.
  Envoy + rag-guard  http://127.0.0.1:{listen}   (admin http://127.0.0.1:{admin})
  demo upstream      http://127.0.0.1:{port}
  Envoy log          {envoy.log_path}
  plugin config      {RUN_DIR / 'plugin-config.json'}

Demo API key (generated now, expires in 30 days, not stored anywhere):
  {key}

Try it:
  curl -i -H 'x-api-key: {key}' -H 'content-type: application/json' \\
       -d '{{"question": "What is our refund policy?"}}' http://127.0.0.1:{listen}/query
  curl -i http://127.0.0.1:{listen}/query          # 401 Missing API Key
  curl -s http://127.0.0.1:{admin}/stats | grep rag_guard

Ctrl-C stops Envoy and the upstream.""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
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
