"""Shared data stays bounded: 100,000 requests from 20,000 distinct client
addresses (bound on 127.0.0.0/8) leave Envoy's allocated memory flat.

Shared-data entries live in Envoy's own heap (about 250 bytes each), which
/memory reports as `allocated`; wasm VM memory is not in that figure. A
filter variant that wrote one short entry per address grew it by 1.9 MB
here (about 97 bytes an entry); an entry per failing address only (a third
of them) would add about 650 KB. The assertion allows 256 KiB of noise
(this test has measured changes of -20 KB)."""

from __future__ import annotations


from conftest import KEYS, base_plugin_config, digest
from load import allocated, build_request, keepalive_burst, run_parallel

ADDRESSES = 20_000
PER_ADDRESS = 5
TINY_KEY = "rag_tiny-limits-key-000000000000000000000000000"


def address(i: int) -> str:
    return f"127.{1 + i // 65024}.{(i // 254) % 256}.{1 + i % 254}"


def drive(envoy, first: int, count: int) -> dict[int, int]:
    requests = [
        build_request("/echo/x", [("X-API-Key", KEYS["good"])]),        # admitted
        build_request("/echo/x", [("X-API-Key", TINY_KEY)]),            # mostly 429
        build_request("/echo/x", [("X-API-Key", "rag_not-a-real-key")]),  # 401, failed-auth table
    ]
    bursts = run_parallel(list(range(first, first + count)),
                          lambda i: keepalive_burst(envoy.port, address(i), requests[i % 3], PER_ADDRESS))
    statuses: dict[int, int] = {}
    for burst in bursts:
        for status in burst:
            statuses[status] = statuses.get(status, 0) + 1
    return statuses


def test_memory_is_flat_after_100k_requests_from_20k_addresses(stacks):
    # Leak detection records every address in the key's fixed window; in
    # report mode it keeps admitting, so all paths stay exercised.
    cfg = base_plugin_config(failed_auth={"per_minute": 10}, leak_detection={"action": "report"})
    cfg["keys"].append({"name": "tiny", "sha256": digest(TINY_KEY), "tier": "tiny"})
    cfg["tiers"]["tiny"] = {"per_minute": 1, "per_hour": 1, "burst": 1}
    envoy = stacks.envoy(cfg, name="memory", concurrency=2)

    warmup = drive(envoy, 0, 2_000)
    before = allocated(envoy)
    statuses = drive(envoy, 2_000, ADDRESSES)
    after = allocated(envoy)

    total = sum(statuses.values())
    assert total == ADDRESSES * PER_ADDRESS, statuses
    # Every path ran: admitted, rate-limited, failed auth (and its block).
    assert statuses.get(200, 0) > 10_000 and statuses.get(401, 0) > 10_000 and statuses.get(429, 0) > 10_000, statuses
    growth = after - before
    print(f"\nallocated before {before} after {after} growth {growth} bytes over {total} requests; "
          f"warm-up {sum(warmup.values())} requests")
    assert growth < 256 * 1024, f"Envoy memory grew by {growth} bytes"
