"""Concurrent and high-volume request helpers over raw sockets (HTTP/1.1
keep-alive), for the rate-limit and memory tests."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request


def build_request(path: str, headers: list[tuple[str, str]], method: str = "GET",
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{n}: {v}" for n, v in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    """Reads one response with a Content-Length body. Returns (status,
    headers, body, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def fire_simultaneously(port: int, requests: list[bytes], timeout: float = 20.0):
    """Opens one connection per request, then sends them all at once (a
    barrier releases the threads together). Returns [(status, headers)] in
    request order and the seconds between the first send and the last
    response."""
    n = len(requests)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
        barrier = threading.Barrier(n + 1)
        results: list = [None] * n

        def worker(i: int) -> None:
            try:
                barrier.wait(timeout)
                socks[i].sendall(requests[i])
                status, headers, _, _ = read_response(socks[i])
                results[i] = (status, headers)
            except Exception as e:  # noqa: BLE001 - reported by the caller
                results[i] = e

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait(timeout)
        start = time.monotonic()
        for t in threads:
            t.join(timeout)
        elapsed = time.monotonic() - start
        failed = [(i, r) for i, r in enumerate(results) if not isinstance(r, tuple)]
        if failed:
            raise AssertionError(f"{len(failed)} of {n} requests got no response, e.g. #{failed[0][0]}: "
                                 f"{failed[0][1]!r}")
        return results, elapsed
    finally:
        for s in socks:
            s.close()


def keepalive_burst(port: int, source: str, request: bytes, count: int, timeout: float = 10.0) -> list[int]:
    """Sends `count` requests one after another on one connection from
    `source`; returns their statuses."""
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        buf = b""
        for _ in range(count):
            s.sendall(request)
            status, headers, _, buf = read_response(s, buf)
            statuses.append(status)
            if headers.get("connection") == "close":
                break
    return statuses


def one_shot(port: int, source: str, request: bytes, timeout: float = 10.0) -> int:
    """Sends one request on a new connection from `source`; returns its
    status."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(request)
        status, _, _, _ = read_response(s)
    return status


def run_parallel(items: list, work, threads: int = 4, timeout: float = 600.0) -> list:
    """Calls `work(item)` for every item from `threads` threads; returns the
    results in item order, or raises the first error."""
    results: list = [None] * len(items)
    errors: list[Exception] = []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, len(items), threads):
                results[i] = work(items[i])
        except Exception as e:  # noqa: BLE001 - raised below
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout)
    if errors:
        raise errors[0]
    return results


def allocated(envoy) -> int:
    """Envoy's allocated heap bytes (`/memory`), where shared data lives."""
    with urllib.request.urlopen(f"{envoy.admin_url}/memory", timeout=10) as r:
        return int(json.loads(r.read())["allocated"])
