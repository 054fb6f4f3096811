"""rag-guard's checks done inside the Python web app instead of in Envoy: the
"app middleware" scenarios of `make bench` (bench/suite.py).

This is what a RAG service would otherwise run: a FastAPI application served
by uvicorn (one worker), doing in Python what rag-guard does in Envoy:

- API key: SHA-256 of the `x-api-key` header value, looked up in a dict of
  configured digests (disabled and expired keys refused): 401 otherwise;
- rate limit: three token buckets per key (burst, minute, hour), admitted only
  if all three hold a token, a refused request spends nothing: 429 with
  `Retry-After` otherwise; remaining-token headers on admitted responses;
- request bodies: pydantic models (unknown fields refused, lengths and ranges
  checked) and a screening of the question, and of the document's file name,
  with a dozen regular expressions over NFKC-normalized, lower-cased,
  whitespace-collapsed text, in the spirit of src/inspection/rules.rs (fewer
  rules and no escape decoding: a lighter screen than rag-guard's);
- the seven security headers on every response;
- a JSON security event on stderr for each 401 and 429, as rag-guard
  writes one into Envoy's log.

It reads the same plugin configuration JSON as rag-guard (`keys` with their
`sha256` and `tier`, `tiers`), from the file named by RAG_BENCH_PLUGIN_CONFIG.

Written to give Python its best case: the key, limit and header checks are a
pure ASGI middleware (not `@app.middleware("http")`, whose BaseHTTPMiddleware
adds a task and a stream per request), uvicorn runs on uvloop and httptools
with access logs off, and the buckets live in the process (a service with
several workers would need a shared store such as Redis, one network round
trip more per request).

Two applications with the same routes and the same fixed reply body as the
Envoy `direct_response` route of the benchmark:

- `create_bare_app`: no checks at all; request bodies are read, not parsed.
  The baseline of the app rows: a Python server's own cost per request.
- `create_guarded_app`: the checks above.

Run: `uvicorn --factory --app-dir bench app_middleware:create_guarded_app`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import sys
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

# The body of every successful reply, in Envoy's direct_response too.
REPLY_BODY = b'{"answer": "ok", "sources": []}'

SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-xss-protection", b"1; mode=block"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"content-security-policy", b"default-src 'self'"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"permissions-policy", b"geolocation=(), microphone=(), camera=()"),
]

DEFAULT_TIERS = {
    "free": {"per_minute": 60, "per_hour": 1000, "burst": 10},
    "pro": {"per_minute": 300, "per_hour": 10000, "burst": 30},
    "enterprise": {"per_minute": 1000, "per_hour": 50000, "burst": 100},
}


# --------------------------------------------------------------------------
# Screening
# --------------------------------------------------------------------------

# One or two patterns per category, written for this benchmark; they target
# the syntax of attacks, like rag-guard's rules, over normalized text.
SCREEN_RULES: dict[str, list[re.Pattern[str]]] = {
    "prompt_injection": [
        re.compile(r"\b(ignore|disregard|forget|override|bypass)\b[^.?!\n]{0,60}"
                   r"\b(instructions?|prompts?|rules|guidelines|directives?)\b"),
        re.compile(r"\b(reveal|show|print|repeat|leak)\b[^.?!\n]{0,50}"
                   r"\b(system prompt|system message|hidden prompt|initial prompt)"),
        re.compile(r"(\[/?inst\]|<\|?/?(im_start|im_end|system|assistant)\|?>|<</?sys>>)"),
        re.compile(r"\b(do anything now|developer mode|jailbreak|god mode)\b"),
    ],
    "sql_injection": [
        re.compile(r"\bunion\b(\s+all)?\s+select\b"),
        re.compile(r"['\"`]\s*\)*\s*(or|and)\s+['\"]?\w+['\"]?\s*=\s*['\"]?\w+"),
        re.compile(r"(;|['\"])\s*(drop|delete|insert|update|alter|truncate)\s+(table|from|into)?\b"),
        re.compile(r"\b(sleep|benchmark|pg_sleep)\s*\(|\binformation_schema\b|@@version"),
    ],
    "xss": [
        re.compile(r"<\s*(script|iframe|svg|object|embed)\b|javascript\s*:"),
        re.compile(r"\bon(error|load|click|mouseover|focus)\s*="),
        re.compile(r"\b(document\.cookie|innerhtml|alert\s*\()"),
    ],
    "code_injection": [
        re.compile(r"\$\{[^}]*\}|\{\{[^}]*[^\w\s}][^}]*\}\}|\{%\s*(import|include|exec)\b"),
        re.compile(r"\b(eval|exec|os\.system|subprocess\.\w+)\s*\(|__\w+__"),
        re.compile(r"(;|&&|\|\|)\s*(cat|ls|rm|curl|wget)\b|\$\([^)]*\)|/etc/passwd"),
    ],
    "path_traversal": [
        re.compile(r"(^|[/\\])\.\.([/\\]|$)|%2e%2e|\.\.%2f"),
    ],
}
ALL_CATEGORIES = [*SCREEN_RULES, "special_characters"]
SPECIAL_RATIO = 0.3
_INVISIBLE = {"Cc", "Cf", "Cn", "Co", "Mn", "Mc", "Me"}
_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[!-/:-@\[-`{-~]")


def normalize(text: str) -> str:
    """NFKC, invisible characters and marks dropped, lower case, whitespace
    collapsed."""
    folded = unicodedata.normalize("NFKC", text)
    if not folded.isascii():
        folded = "".join(c for c in unicodedata.normalize("NFD", folded)
                         if c.isspace() or unicodedata.category(c) not in _INVISIBLE)
    return _SPACES.sub(" ", folded.lower()).strip()


def screen(text: str, categories: list[str]) -> str | None:
    """The first category whose rules match `text`, or None."""
    norm = normalize(text)
    for category in categories:
        if category == "special_characters":
            if len(norm) >= 8 and len(_PUNCT.findall(norm)) > SPECIAL_RATIO * len(norm):
                return category
            continue
        if any(rule.search(norm) for rule in SCREEN_RULES[category]):
            return category
    return None


def collapsed_len(text: str) -> int:
    return len(_SPACES.sub(" ", text).strip())


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    question: str
    max_sources: int | None = Field(default=None, ge=1, le=10)
    temperature: float | None = Field(default=None, ge=0, le=2)

    @field_validator("question")
    @classmethod
    def check_question(cls, value: str) -> str:
        if not 1 <= collapsed_len(value) <= 2000:
            raise ValueError("question must be 1-2000 characters")
        found = screen(value, ALL_CATEGORIES)
        if found:
            raise ValueError(f"question rejected: {found}")
        return value


class DocumentBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    filename: str = Field(min_length=1, max_length=255)
    content: str

    @field_validator("filename")
    @classmethod
    def check_filename(cls, value: str) -> str:
        folded = unicodedata.normalize("NFKC", value)
        if any(c in "/\\:\0" for c in folded) or ".." in folded:
            raise ValueError("filename must not contain path components")
        if not folded.lower().endswith((".txt", ".pdf", ".docx", ".md")):
            raise ValueError("unsupported file extension")
        found = screen(value, ["xss", "path_traversal"])
        if found:
            raise ValueError(f"filename rejected: {found}")
        return value

    @field_validator("content")
    @classmethod
    def check_content(cls, value: str) -> str:
        # Size-checked, not screened (as rag-guard's default /documents route).
        if len(value.encode()) > 10 * 1024 * 1024:
            raise ValueError("content too large")
        return value


# --------------------------------------------------------------------------
# Keys and limits
# --------------------------------------------------------------------------

@dataclass
class Bucket:
    capacity: float
    per_second: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now

    def wait_for(self, cost: float) -> float:
        return max(0.0, (cost - self.tokens) / self.per_second)


class ThreeWindowLimiter:
    """Per key: burst (refilled at the minute rate), minute and hour buckets."""

    def __init__(self) -> None:
        self.buckets: dict[str, tuple[Bucket, Bucket, Bucket]] = {}

    def spend(self, digest: str, tier: dict, cost: float, now: float) -> tuple[bool, int, int, float]:
        """(admitted, remaining minute, remaining hour, seconds to wait)."""
        buckets = self.buckets.get(digest)
        if buckets is None:
            per_minute, per_hour = tier["per_minute"], tier["per_hour"]
            buckets = (Bucket(tier["burst"], per_minute / 60, tier["burst"], now),
                       Bucket(per_minute, per_minute / 60, per_minute, now),
                       Bucket(per_hour, per_hour / 3600, per_hour, now))
            self.buckets[digest] = buckets
        for b in buckets:
            b.refill(now)
        if any(b.tokens < cost for b in buckets):
            return False, int(buckets[1].tokens), int(buckets[2].tokens), max(b.wait_for(cost) for b in buckets)
        for b in buckets:
            b.tokens -= cost
        return True, int(buckets[1].tokens), int(buckets[2].tokens), 0.0


@dataclass
class KeyRecord:
    name: str
    tier: dict
    enabled: bool
    expires_at: float | None


def load_keys(plugin: dict) -> dict[str, KeyRecord]:
    tiers = {**DEFAULT_TIERS, **plugin.get("tiers", {})}
    default_tier = plugin.get("default_tier", "free")
    keys = {}
    for k in plugin["keys"]:
        expires = k.get("expires_at")
        keys[k["sha256"]] = KeyRecord(
            name=k["name"],
            tier=tiers[k.get("tier", default_tier)],
            enabled=k.get("enabled", True),
            expires_at=(datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
                        if expires else None),
        )
    return keys


def event_logger() -> logging.Logger:
    """Security events, one JSON object per line on stderr."""
    logger = logging.getLogger("rag_bench.events")
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler(sys.stderr))
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    return logger


class GuardMiddleware:
    """Pure ASGI middleware: key check, limiter, security and rate-limit
    headers on every reply."""

    def __init__(self, app, keys: dict[str, KeyRecord], public_paths: set[str]) -> None:
        self.app = app
        self.keys = keys
        self.public_paths = public_paths
        self.limiter = ThreeWindowLimiter()
        self.events = event_logger()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(SECURITY_HEADERS)
        if scope["path"] not in self.public_paths:
            presented = [v for n, v in scope["headers"] if n == b"x-api-key"]
            if len(presented) != 1:
                detail = "Multiple API Keys" if presented else "Missing API Key"
                await self.reply(scope, send, 401, detail, extra)
                return
            digest = hashlib.sha256(presented[0]).hexdigest()
            record = self.keys.get(digest)
            if record is None or not record.enabled:
                await self.reply(scope, send, 401, "Invalid API Key", extra)
                return
            if record.expires_at is not None and time.time() >= record.expires_at:
                await self.reply(scope, send, 401, "API key expired", extra)
                return
            tier = record.tier
            admitted, minute_left, hour_left, wait = self.limiter.spend(digest, tier, 1, time.monotonic())
            extra += [
                (b"x-ratelimit-limit-minute", str(tier["per_minute"]).encode()),
                (b"x-ratelimit-remaining-minute", str(minute_left).encode()),
                (b"x-ratelimit-limit-hour", str(tier["per_hour"]).encode()),
                (b"x-ratelimit-remaining-hour", str(hour_left).encode()),
            ]
            if not admitted:
                extra.append((b"retry-after", str(max(1, math.ceil(wait))).encode()))
                await self.reply(scope, send, 429, "Rate limit exceeded", extra)
                return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def reply(self, scope, send, status: int, detail: str, headers: list) -> None:
        client = scope.get("client") or ("", 0)
        self.events.warning(json.dumps({"event": "auth_failure" if status == 401 else "rate_limited",
                                        "reason": detail, "status": status, "ip": client[0],
                                        "method": scope["method"], "path": scope["path"][:200]}))
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------
# Applications
# --------------------------------------------------------------------------

def _reply() -> Response:
    return Response(content=REPLY_BODY, media_type="application/json")


def create_bare_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/documents")
    async def list_documents() -> Response:
        return _reply()

    @app.post("/query")
    async def query(request: Request) -> Response:
        await request.body()
        return _reply()

    @app.post("/documents")
    async def add_document(request: Request) -> Response:
        await request.body()
        return _reply()

    return app


def create_guarded_app() -> FastAPI:
    plugin = json.loads(Path(os.environ["RAG_BENCH_PLUGIN_CONFIG"]).read_text())
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/documents")
    async def list_documents() -> Response:
        return _reply()

    @app.post("/query")
    async def query(body: QueryBody) -> Response:
        return _reply()

    @app.post("/documents")
    async def add_document(body: DocumentBody) -> Response:
        return _reply()

    app.add_middleware(GuardMiddleware, keys=load_keys(plugin),
                       public_paths=set(plugin.get("public_paths", ["/health"])))
    return app
