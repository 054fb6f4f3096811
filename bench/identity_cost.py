"""What a JWT caller costs rag-guard compared with an API key
(`make bench-identity`, also run by `make bench`).

One single-worker Envoy with Envoy's `jwt_authn` (a local RSA JWKS
generated here) before rag-guard, configured with a `jwt` section. The
same GET is sent one at a time with an API key and with a bearer token
(one subject). rag-guard's own decision time is read from its
`auth_success` events (`duration_us`: from the clock read to the decision,
so the payload read, the claims, the subject table's get and CAS are in
it for tokens; the key's digest, entry get and CAS for keys). The
client-side round trip of each request is also given: for tokens it
includes jwt_authn's RS256 verification, which is Envoy's, not rag-guard's.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

import stack  # noqa: E402
from client import request  # noqa: E402

REQUESTS = 2000
ROUNDS = 3
KEY = "rag_bench-identity-key-000000000000000000000000"
ISSUER, AUDIENCE = "https://idp.bench.test", "rag-api"


def main() -> None:
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(signing.public_key()))
    jwk.update({"kid": "b1", "alg": "RS256", "use": "sig"})
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "iat": now,
                        "exp": now + 3600, "roles": ["reader"]}, signing,
                       algorithm="RS256", headers={"kid": "b1"})
    import hashlib
    plugin = {
        "keys": [{"name": "bench-key", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
        "tiers": {"free": {"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000}},
        "jwt": {"roles_claim": "roles"},
        "events": {"max_per_second": 1000000},
        "usage": {"enabled": False},
        "leak_detection": {"enabled": False},
    }
    rows: dict[str, list[tuple[float, float, float]]] = {}
    without_jwt = {k: v for k, v in plugin.items() if k != "jwt"}
    key = [("X-API-Key", KEY)]
    bearer = [("Authorization", f"Bearer {token}")]
    cases = (
        ("api key, no jwt section", without_jwt, key, "bench-key"),
        ("api key, jwt section", plugin, key, "bench-key"),
        ("bearer token", plugin, bearer, "bench-user"),
    )
    # Rounds of all three, each a fresh Envoy: the machine's noise moves
    # one run by 10 us or more, so the median of the rounds is reported.
    for label, config, headers, name in [c for _ in range(ROUNDS) for c in cases]:
        cfg = stack.render_envoy_config(config, listen_port=stack.free_port(),
                                        admin_port=stack.free_port(), upstream=("127.0.0.1", 9))
        stack.add_jwt_authn(cfg, jwks=json.dumps({"keys": [jwk]}), issuer=ISSUER,
                            audience=AUDIENCE)
        # Answer locally: the upstream is not what is measured.
        route = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
        route.pop("route", None)
        route["direct_response"] = {"status": 200, "body": {"inline_string": "ok"}}
        with tempfile.TemporaryDirectory() as tmp:
            envoy = stack.start_envoy(cfg, Path(tmp), concurrency=1, log_level="info")
            try:
                for _ in range(100):  # warm-up
                    request(envoy.port, path="/echo/x", headers=headers)
                rtt = []
                for _ in range(REQUESTS):
                    t0 = time.perf_counter()
                    resp = request(envoy.port, path="/echo/x", headers=headers)
                    rtt.append((time.perf_counter() - t0) * 1e6)
                    assert resp.status == 200, (label, resp.status, resp.body[:200])
                time.sleep(1)
                durations = []
                for line in envoy.log().splitlines():
                    start = line.find('{"event":"auth_success"')
                    if start < 0:
                        continue
                    event = json.loads(line[start:])
                    if event.get("key_name") == name and "duration_us" in event:
                        durations.append(event["duration_us"])
            finally:
                envoy.stop()
        d = durations[-REQUESTS:]
        rows.setdefault(label, []).append((statistics.mean(d), statistics.median(d),
                                           statistics.median(rtt)))
    print(f"identity cost, 1 worker, {REQUESTS} sequential GETs each, median of {ROUNDS} rounds "
          "(bench/identity_cost.py)")
    print("| caller | rag-guard decision, mean us (auth_success duration_us) | each round | round trip, median us |")
    print("|---|---|---|---|")
    for label, runs in rows.items():
        means = [m for m, _, _ in runs]
        rtt = statistics.median(r for _, _, r in runs)
        print(f"| {label} | {statistics.median(means):.1f} | "
              f"{', '.join(f'{m:.1f}' for m in means)} | {rtt:.0f} |")


if __name__ == "__main__":
    main()
