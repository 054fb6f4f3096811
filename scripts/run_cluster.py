"""`make run-cluster`: cluster mode on one machine. Redis (Debian's
redis-server) on 127.0.0.1:6380, rag-guard-cluster on 127.0.0.1:8081, the
demo upstream on 127.0.0.1:8000, and two Envoys with rag-guard in front of
it: A on 127.0.0.1:10000 (admin 9901) and B on 127.0.0.1:10001 (admin
9911), separate processes with different --base-id, sharing one budget per
key through the service. Prints a key (20 requests a minute, over both
Envoys together) and curl lines for both. Ctrl-C stops everything.

Ports: RUN_LISTEN_PORT (A; B is the next one), RUN_ADMIN_PORT (A; B is +10),
RUN_UPSTREAM_PORT, RUN_CLUSTER_PORT, RUN_REDIS_PORT. Files in .run-cluster/.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import stack
from run import keygen

RUN_DIR = stack.ROOT / ".run-cluster"


def main() -> int:
    generated = keygen("demo")
    admin_secret = keygen("admin")
    plugin_config = {
        "keys": [generated["record"]],
        "public_paths": ["/health"],
        "tiers": {"free": {"per_minute": 20, "per_hour": 500, "burst": 20}},
        "admin": {"secret_sha256": admin_secret["record"]["sha256"]},
        "cluster": {"service": stack.CLUSTER_SERVICE, "domain": "rag-guard",
                    "timeout_ms": 100, "failure_mode": "deny"},
    }
    RUN_DIR.mkdir(exist_ok=True)
    (RUN_DIR / "plugin-config.json").write_text(json.dumps(plugin_config, indent=2) + "\n")

    env = os.environ.get
    listen = int(env("RUN_LISTEN_PORT", "10000"))
    admin = int(env("RUN_ADMIN_PORT", "9901"))
    cluster_port = int(env("RUN_CLUSTER_PORT", "8081"))
    redis_port = int(env("RUN_REDIS_PORT", "6380"))
    procs = []
    envoys: list[stack.Envoy] = []
    try:
        redis = stack.start_redis(redis_port)
        procs.append(redis)
        service = stack.start_cluster_service(cluster_port, redis_port)
        procs.append(service)
        upstream, port = stack.start_upstream(int(env("RUN_UPSTREAM_PORT", "8000")))
        procs.append(upstream)
        for i, name in enumerate(["a", "b"]):
            cfg = stack.render_envoy_config(
                plugin_config, listen_port=listen + i, admin_port=admin + 10 * i,
                upstream=("127.0.0.1", port),
            )
            stack.add_cluster_service(cfg, cluster_port)
            envoys.append(stack.start_envoy(cfg, RUN_DIR / name, concurrency=2, log_level="info",
                                            base_id=10 + i))
        key = generated["key"]
        print(f"""
rag-guard cluster mode is running.
  Envoy A + rag-guard  http://127.0.0.1:{listen}   (admin http://127.0.0.1:{admin})
  Envoy B + rag-guard  http://127.0.0.1:{listen + 1}   (admin http://127.0.0.1:{admin + 10})
  rag-guard-cluster    127.0.0.1:{cluster_port} (gRPC), Redis 127.0.0.1:{redis_port}
  demo upstream        http://127.0.0.1:{port}
  logs                 {envoys[0].log_path}, {envoys[1].log_path}

Demo API key: 20 requests a minute over both Envoys together:
  {key}
Admin secret:
  {admin_secret["key"]}

Try it (30 requests alternating A and B: 20 admitted, then 429):
  for i in $(seq 30); do curl -s -o /dev/null -w '%{{http_code}} ' -H 'x-api-key: {key}' http://127.0.0.1:$(({listen} + i % 2))/echo/x; done; echo
  curl -i -H 'x-api-key: {key}' http://127.0.0.1:{listen}/echo/x
  curl -i -H 'x-api-key: {key}' http://127.0.0.1:{listen + 1}/echo/x
Revoke on A, refused on B within a second:
  curl -s -X POST -H 'x-admin-secret: {admin_secret["key"]}' http://127.0.0.1:{listen}/rag-guard/admin/keys/demo/revoke
  curl -s -H 'x-admin-secret: {admin_secret["key"]}' http://127.0.0.1:{listen + 1}/rag-guard/admin/usage


Ctrl-C stops the Envoys, the service, Redis and the upstream.""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # Ctrl-C stops it even when it was started with SIGINT ignored, as
        # a shell's background job is (Python then installs no handler).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        while all(p.poll() is None for p in procs) and all(e.proc.poll() is None for e in envoys):
            time.sleep(0.5)
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for e in envoys:
            e.stop()
        for p in reversed(procs):
            stack.stop_process(p)
        print("stopped both Envoys, rag-guard-cluster, Redis and the demo upstream")


if __name__ == "__main__":
    sys.exit(main())
