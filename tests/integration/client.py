"""A minimal HTTP/1.1 client over http.client that sends headers exactly as
given: repeated names, any case, raw bytes (invalid UTF-8 included)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


def request(
    port: int,
    method: str = "GET",
    path: str = "/",
    headers: list[tuple[str, str | bytes]] | None = None,
    body: bytes | None = None,
    host: str | None = None,
    source: str | None = None,
    timeout: float = 10.0,
) -> Response:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Response(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()
