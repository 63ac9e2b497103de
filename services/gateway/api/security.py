"""The front door: API keys and per-client rate limits on mutating routes, and a body-size limit.

* ``front_door`` is an app-level dependency (``create_app`` passes it to ``FastAPI``), so every
  ``POST``/``PUT``/``PATCH``/``DELETE`` route, including ones added later, is covered without
  anyone remembering to add it; reads stay open.
* With ``GATEWAY_API_KEYS`` set, a mutating request needs ``X-API-Key`` with one of the keys
  (401 otherwise). Without it the routes are open, and the start-up log says so.
* Each key has its own leaky bucket of ``GATEWAY_RATE_LIMIT`` requests per
  ``GATEWAY_RATE_LIMIT_PERIOD_S``; past it the answer is 429 with ``Retry-After``. (Without keys
  there is no client identity worth limiting: that mode is for a local stack.)
* ``BodyLimit`` answers 413 for a body over ``GATEWAY_MAX_REQUEST_BYTES``, from the declared
  ``Content-Length`` before reading, or while streaming a body that declares none.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from typing import Annotated

from aiolimiter import AsyncLimiter
from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_KEY_HEADER = "X-API-Key"
# The /review page's HTML forms cannot send a header: POST /review/login (called with the header)
# stores the key in this HttpOnly, SameSite=Strict cookie scoped to /review, which counts as the header.
API_KEY_COOKIE = "gateway_api_key"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required on POST/PUT/PATCH/DELETE routes when the gateway runs with GATEWAY_API_KEYS.",
)


class RateLimits:
    """One leaky bucket per client (per key: a bounded set); ``check`` never waits: it admits, or
    says how long to wait."""

    def __init__(self, rate: float, period_s: float) -> None:
        self.rate = rate
        self.period_s = period_s
        self._buckets: dict[str, AsyncLimiter] = {}

    async def check(self, client: str) -> float | None:
        """``None`` if ``client`` may go ahead now, else the seconds until it may retry."""
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = AsyncLimiter(self.rate, self.period_s)
        if not bucket.has_capacity():
            return self.period_s / self.rate  # one request's worth drains in this time
        await bucket.acquire()  # immediate: there is capacity
        return None


class FrontDoor:
    """What the ``front_door`` dependency checks, built once from the settings."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.keys = settings.api_key_names
        self.limits = RateLimits(settings.rate_limit, settings.rate_limit_period_s)
        if not self.keys:
            log.warning("GATEWAY_API_KEYS is not set: mutating routes (POST /ingest, /emotion, /stance) are open")

    def admit(self, presented: str | None, address: str) -> tuple[str, bool]:
        """(client name, whether it is rate limited), or an :class:`HTTPException` (401)."""
        if not self.keys:
            return f"anonymous@{address}", False
        return self.client_for(presented), True

    def client_for(self, presented: str | None) -> str:
        """The key's name, or an :class:`HTTPException` (401)."""
        if presented:
            for key, name in self.keys.items():
                if hmac.compare_digest(presented.encode(), key.encode()):
                    return name
        detail = f"this route needs a valid {API_KEY_HEADER} header" if presented else f"missing {API_KEY_HEADER}"
        raise HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": API_KEY_HEADER})


async def front_door(request: Request, api_key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """App-level dependency: reads pass; writes need a key (when configured) and a free slot."""
    if request.method not in MUTATING_METHODS:
        return
    door: FrontDoor = request.app.state.front_door
    address = request.client.host if request.client else "unknown"
    client, limited = door.admit(api_key or request.cookies.get(API_KEY_COOKIE), address)
    retry_after = await door.limits.check(client) if limited else None
    if retry_after is not None:
        log.warning("rate limited", extra={"client": client, "path": request.url.path})
        raise HTTPException(
            status_code=429,
            detail=f"rate limit of {door.limits.rate:g} requests per {door.limits.period_s:g} s exceeded for {client}",
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        )
    request.state.client = client


def client_name(request: Request) -> str:
    """The name ``front_door`` gave the caller of a mutating route."""
    return str(getattr(request.state, "client", "anonymous"))


def too_large(limit: int, size: int | None = None) -> HTTPException:
    seen = f"is {size} bytes" if size is not None else "exceeds it"
    return HTTPException(
        status_code=413,
        detail=f"request body {seen}; the limit is {limit} bytes (GATEWAY_MAX_REQUEST_BYTES): "
        "split it into smaller requests",
    )


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _reject(send, too_large(self.max_bytes, int(declared)))
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # The routes' own handlers turn this into the 413 response.
                    raise too_large(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _reject(send, exc)


async def _reject(send: Send, exc: HTTPException) -> None:
    body = json.dumps({"detail": exc.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
