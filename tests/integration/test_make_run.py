"""`make run` (scripts/run.py) serves, its printed curl line works, and
Ctrl-C stops everything it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import stack


def children_of(pid: int) -> list[str]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                out.append(entry)
    return out


def test_run_prints_a_working_curl_and_stops_on_ctrl_c():
    env = dict(os.environ,
               RUN_LISTEN_PORT=str(stack.free_port()),
               RUN_ADMIN_PORT=str(stack.free_port()),
               RUN_METRICS_PORT=str(stack.free_port()),
               RUN_UPSTREAM_PORT=str(stack.free_port()))
    proc = subprocess.Popen([sys.executable, str(stack.ROOT / "scripts" / "run.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "run.py exited early:\n" + "".join(lines)
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        text = "".join(lines)
        start = text.index("curl -i -H 'x-api-key:")
        curl = text[start:text.index("\n", text.index("/query", start))]
        curl = curl.replace("\\\n", " ")
        out = subprocess.run(["bash", "-c", curl.replace("curl -i", "curl -s -w '\\n%{http_code}'", 1)],
                             capture_output=True, text=True, timeout=30).stdout
        assert out.rstrip().endswith("200"), out
        assert "refund policy" in out
        # The printed admin and metrics lines work too.
        admin_line = next(line.strip() for line in lines if "x-admin-secret" in line)
        keys = subprocess.run(["bash", "-c", admin_line], capture_output=True, text=True, timeout=30).stdout
        assert [k["name"] for k in json.loads(keys)["keys"]] == ["demo"], keys
        metrics_line = next(line.strip() for line in lines if "/stats/prometheus" in line and "curl" in line)
        prom = subprocess.run(["bash", "-c", metrics_line], capture_output=True, text=True, timeout=30).stdout
        assert "rag_guard_requests{" in prom
        pids = children_of(proc.pid)
        assert len(pids) == 2, pids  # demo upstream and Envoy
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert "stopped Envoy and the demo upstream" in rest
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still running"


def test_run_cluster_shares_one_budget_over_two_envoys_and_stops_on_ctrl_c():
    listen = stack.free_port()
    while stack._listening(listen + 1):
        listen = stack.free_port()
    admin = stack.free_port()
    env = dict(os.environ,
               RUN_LISTEN_PORT=str(listen),
               RUN_ADMIN_PORT=str(admin),
               RUN_UPSTREAM_PORT=str(stack.free_port()),
               RUN_CLUSTER_PORT=str(stack.free_port()),
               RUN_REDIS_PORT=str(stack.free_port()))
    proc = subprocess.Popen([sys.executable, str(stack.ROOT / "scripts" / "run_cluster.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    pids = []
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "run_cluster.py exited early:\n" + "".join(lines)
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        loop = next(line.strip() for line in lines if line.strip().startswith("for i in"))
        if time.time() % 60 > 50:  # stay inside one minute window
            time.sleep(61 - time.time() % 60)
        codes = subprocess.run(["bash", "-c", loop], capture_output=True, text=True, timeout=60).stdout.split()
        assert codes.count("200") == 20 and codes.count("429") == 10, codes
        pids = children_of(proc.pid)
        assert len(pids) == 5, pids  # Redis, the service, the upstream, two Envoys
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert "stopped both Envoys, rag-guard-cluster, Redis and the demo upstream" in rest
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still running"
