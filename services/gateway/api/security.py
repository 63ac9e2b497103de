"""The front door: API keys and per-client rate limits on mutating routes, and a body-size limit.

* ``front_door`` is an app-level dependency (``create_app`` passes it to ``FastAPI``), so every
  ``POST``/``PUT``/``PATCH``/``DELETE`` route, including ones added later, is covered without
  anyone remembering to add it; reads stay open.
* With ``GATEWAY_API_KEYS`` set, a mutating request needs ``X-API-Key`` with one of the keys
  (401 otherwise). Without it the routes are open, and the start-up log says so.
* Each key has its own leaky bucket of ``GATEWAY_RATE_LIMIT`` requests per
  ``GATEWAY_RATE_LIMIT_PERIOD_S``; past it the answer is 429 with ``Retry-After``. (Without keys
  there is no client identity worth limiting: that mode is for a local stack.)
* Guessing is limited per client address: ``GATEWAY_AUTH_FAILURE_LIMIT`` wrong keys within
  ``GATEWAY_AUTH_FAILURE_WINDOW_S`` lock that address out for the window: every protected request
  from it is answered 429 with ``Retry-After`` before its key is even looked at (so a right guess
  during the lock-out is not told apart). Other addresses, and their valid keys, are unaffected.
  The address is the connection's peer; ``X-Forwarded-For`` counts only from the proxies in
  ``GATEWAY_FORWARDED_ALLOW_IPS`` (none by default: see ``gateway.api.__main__``).
* ``key_required`` applies the same checks to a read that must not be open
  (``GET /review/export.csv``).
* ``BodyLimit`` answers 413 for a body over ``GATEWAY_MAX_REQUEST_BYTES``, from the declared
  ``Content-Length`` before reading, or while streaming a body that declares none.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
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


def client_address(host: str) -> str:
    """The unit the failed-key limit counts: the IPv4 address, or the IPv6 /64 (one host's
    usual allocation, so rotating through it is not a fresh budget each time)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # "unknown", or a test client's name
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailedAttempts:
    """Wrong keys per client address: ``limit`` of them within ``window_s`` lock the address out
    for ``window_s`` from the last one. Attempts refused during the lock-out do not extend it
    (``Retry-After`` stays true). ``clock`` is injectable for tests; at most ``max_clients``
    addresses are remembered (the stalest are forgotten first)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or ``None`` if it is not locked out."""
        until = self._locked_until.get(address)
        if until is None:
            return None
        left = until - self.clock()
        if left > 0:
            return left
        del self._locked_until[address]
        return None

    def record(self, address: str) -> None:
        """One more wrong key from ``address``; the ``limit``-th within the window locks it out."""
        now = self.clock()
        failures = self._failures.pop(address, None) or deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        failures.append(now)
        if len(failures) >= self.limit:
            self._locked_until[address] = now + self.window_s
            log.warning("too many wrong API keys: client locked out", extra={"client_address": address})
        else:
            self._failures[address] = failures  # re-inserted last: both dicts stay ordered stalest first
        for remembered in (self._failures, self._locked_until):
            while len(remembered) > self.max_clients:
                del remembered[next(iter(remembered))]


class FrontDoor:
    """What the ``front_door`` dependency checks, built once from the settings."""

    def __init__(self, settings: GatewaySettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = settings.api_key_names
        self.limits = RateLimits(settings.rate_limit, settings.rate_limit_period_s)
        self.failures = FailedAttempts(settings.auth_failure_limit, settings.auth_failure_window_s, clock)
        if not self.keys:
            log.warning("GATEWAY_API_KEYS is not set: mutating routes (POST /ingest, /emotion, /stance) are open")

    def admit(self, presented: str | None, address: str) -> tuple[str, bool]:
        """(client name, whether it is rate limited), or an :class:`HTTPException` (401, or 429
        while ``address`` is locked out for wrong keys)."""
        if not self.keys:
            return f"anonymous@{address}", False
        counted = client_address(address)
        wait = self.failures.retry_after(counted)
        if wait is not None:  # before the key is looked at: a right guess now is not told apart
            log.debug("refused while locked out for wrong API keys", extra={"client_address": counted})
            raise HTTPException(
                status_code=429,
                detail=f"too many wrong {API_KEY_HEADER} values from this client "
                f"({self.failures.limit} within {self.failures.window_s:g} s); retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        try:
            return self.client_for(presented), True
        except HTTPException:
            if presented:  # a wrong key is a guess; a missing one is not
                self.failures.record(counted)
            raise

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
    await _check(request, api_key)


async def key_required(request: Request, api_key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Route-level dependency for a read that must not be open: the same checks as a write."""
    await _check(request, api_key)


async def _check(request: Request, api_key: str | None) -> None:
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
