"""The failed-authentication table under a crowd of attackers, through a
live Envoy (2 workers): failures from 40,000 distinct addresses (bound on
127.0.0.0/8) leave clients from fresh addresses with valid keys all
admitted, while every attacking address is still refused, valid key or not,
and Envoy's memory stays flat.

With the earlier unkeyed 4,096-slot table (one shared budget per slot),
40,000 failing addresses exhausted every slot and every fresh client got
429. IPv6 is covered by the native tests (`auth/failed_auth.rs`: a whole
/48): this machine has only ::1 on loopback."""

from __future__ import annotations

import time

from conftest import KEYS, base_plugin_config
from load import allocated, build_request, one_shot, run_parallel

ATTACKERS = 40_000
FRESH = 2_000


def attacker(i: int) -> str:
    return f"127.{10 + i // 65_025}.{(i // 255) % 255}.{1 + i % 255}"


def fresh(i: int) -> str:
    return f"127.200.{i // 250}.{1 + i % 250}"


def drive(port: int, sources: list[str], request: bytes) -> dict[int, list[str]]:
    """One request per source address, on its own connection; the sources
    that got each status."""
    by_status: dict[int, list[str]] = {}
    for source, status in zip(sources, run_parallel(sources, lambda s: one_shot(port, s, request))):
        by_status.setdefault(status, []).append(source)
    return by_status


def test_a_crowded_failed_auth_table_locks_out_only_the_attackers(stacks):
    cfg = base_plugin_config(failed_auth={"per_minute": 1}, leak_detection={"enabled": False})
    envoy = stacks.envoy(cfg, name="crowding", concurrency=2)
    bad = build_request("/echo/x", [("X-API-Key", "rag_not-a-real-key")])
    good = build_request("/echo/x", [("X-API-Key", KEYS["good"])])
    attackers = [attacker(i) for i in range(ATTACKERS)]
    assert len(set(attackers)) == ATTACKERS
    # Warm-up (connection pools, buffers) from addresses of neither group,
    # so the memory figure below is about the table.
    drive(envoy.port, [f"127.250.{i // 250}.{1 + i % 250}" for i in range(2_000)], bad)
    drive(envoy.port, [f"127.251.{i // 250}.{1 + i % 250}" for i in range(500)], good)
    before = allocated(envoy)

    started = time.monotonic()
    failed = drive(envoy.port, attackers, bad)
    attack_secs = time.monotonic() - started
    assert set(failed) == {401}, {s: len(v) for s, v in failed.items()}

    admitted = drive(envoy.port, [fresh(i) for i in range(FRESH)], good)
    assert set(admitted) == {200}, {s: len(v) for s, v in admitted.items()}

    # Same order as the failures, so each address is checked about as long
    # after its failure as the others (well inside the minute it is blocked).
    refused = drive(envoy.port, attackers, good)
    elapsed = time.monotonic() - started
    after = allocated(envoy)
    print(f"\n{ATTACKERS} failing addresses in {attack_secs:.1f} s, {FRESH} fresh clients admitted, "
          f"all attackers refused; {elapsed:.1f} s in all; allocated {before} -> {after}")
    assert elapsed < 55, f"phases took {elapsed:.0f} s: the first failures may have refilled"
    assert set(refused) == {429}, {s: len(v) for s, v in refused.items()}
    assert after - before < 256 * 1024, f"Envoy memory grew by {after - before} bytes"
