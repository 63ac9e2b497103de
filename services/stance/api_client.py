"""A careful client for an OpenAI-compatible chat-completions API.

Every attempt: passes the circuit breaker, takes one of ``max_concurrent`` slots, then one
rate-limiter slot (in that order, so requests queued on the semaphore cannot burst out
together later), and has a connect and a total deadline. Connection errors, timeouts, 408,
429 and 5xx are retried with exponential backoff and full jitter, or after exactly the wait
the API asked for (``retry-after-ms`` / ``Retry-After``). Other 4xx are permanent at once;
malformed bodies are permanent once the bounded attempts are spent. When the retryable
failures outlast the attempts, or the breaker is open, :class:`ApiUnavailableError`
(a TransientError) tells the consumer to pause without committing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from common.errors import PermanentError, TransientError
from stance.breaker import CircuitBreaker
from stance.logic import parse_retry_after

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429})
AUTH_STATUS = frozenset({401, 403})


class ApiUnavailableError(TransientError):
    """The API kept failing for all the bounded attempts: pause, retry later, commit nothing."""


@dataclass(frozen=True)
class ApiLimits:
    requests_per_second: float
    max_concurrent: int
    max_attempts: int
    connect_timeout_s: float
    total_timeout_s: float
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 60.0
    rate_headroom: float = 0.05


class _RetryableFailure(Exception):
    def __init__(
        self,
        outcome: str,
        status: int | None = None,
        retry_after: float | None = None,
        permanent_reason: str | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(f"{outcome} (status {status})" if status else outcome)
        self.outcome = outcome
        self.status = status
        self.retry_after = retry_after
        # Set when exhausting the attempts means the request itself is bad, not the API down.
        self.permanent_reason = permanent_reason
        self.detail = detail


class ChatCompletionsClient:
    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | None,
        limits: ApiLimits,
        breaker: CircuitBreaker,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._limits = limits
        self._breaker = breaker
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(limits.total_timeout_s, connect=limits.connect_timeout_s),
            limits=httpx.Limits(max_connections=limits.max_concurrent),
            transport=transport,
        )
        self.set_requests_per_second(limits.requests_per_second)
        self._slots = asyncio.Semaphore(limits.max_concurrent)

    def set_requests_per_second(self, rate: float) -> None:
        """The rate limit; stance.quota lowers it to this replica's share of the group's quota.

        Capacity 1 refilled every 1/rate s: requests are spaced, never bursted, so any
        1-second window holds at most ``rate`` of them. The headroom keeps it so on the
        provider's clock too, where network jitter can bunch arrivals up. A request already
        waiting for the old limiter keeps the old spacing once.
        """
        self._limiter = AsyncLimiter(1, (1.0 + self._limits.rate_headroom) / rate)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions; returns the first choice (``message`` and maybe ``logprobs``)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._limits.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_RetryableFailure),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(payload, attempt.retry_state.attempt_number)
        except _RetryableFailure as exc:
            log.warning(
                "api attempts exhausted",
                extra={"outcome": exc.outcome, "status": exc.status, "attempts": self._limits.max_attempts},
            )
            if exc.permanent_reason:
                raise PermanentError(exc.permanent_reason, exc.detail) from exc
            raise ApiUnavailableError(f"API unavailable after {self._limits.max_attempts} attempts: {exc}") from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        retry_after = failure.retry_after if isinstance(failure, _RetryableFailure) else None
        if retry_after is not None:
            wait = min(retry_after, self._limits.max_retry_after_s)
        else:  # full jitter: uniform over [0, capped exponential]
            ceiling = self._limits.backoff_base_s * 2 ** (state.attempt_number - 1)
            wait = random.uniform(0.0, min(ceiling, self._limits.backoff_max_s))
        log.info(
            "api attempt failed, retrying",
            extra={
                "attempt": state.attempt_number,
                "outcome": getattr(failure, "outcome", None),
                "status": getattr(failure, "status", None),
                "wait_s": round(wait, 3),
                "retry_after_s": retry_after,
            },
        )
        return wait

    async def _attempt(self, payload: dict[str, Any], attempt: int) -> dict[str, Any]:
        self._breaker.raise_if_open()  # fail fast, before queueing for slots
        async with self._slots:
            await self._limiter.acquire()
            self._breaker.before_call()  # the state may have changed while we queued
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._limits.total_timeout_s):
                    response = await self._http.post("chat/completions", json=payload)
            except (TimeoutError, httpx.TimeoutException) as exc:
                self._breaker.record_failure()
                raise _RetryableFailure("timeout") from exc
            except httpx.TransportError as exc:
                self._breaker.record_failure()
                raise _RetryableFailure("connection_error", detail=type(exc).__name__) from exc
            except BaseException:
                self._breaker.record_neutral()
                raise
        elapsed_ms = round((time.monotonic() - started) * 1000)
        return self._interpret(response, attempt, elapsed_ms)

    def _interpret(self, response: httpx.Response, attempt: int, elapsed_ms: int) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            self._breaker.record_neutral()  # the API is up, only throttling us
            raise _RetryableFailure("rate_limited", status, parse_retry_after(response.headers))
        if status in RETRYABLE_STATUS or status >= 500:
            self._breaker.record_failure()
            raise _RetryableFailure("server_error", status, parse_retry_after(response.headers))
        if status in AUTH_STATUS:
            # Our credentials, not the tweet, are wrong: dead-lettering would empty the stream
            # into the DLQ, so pause (and let the breaker stop the calls) until it is fixed.
            self._breaker.record_failure()
            raise ApiUnavailableError(f"API refused our credentials (status {status})")
        self._breaker.record_success()
        if status >= 400:
            log.warning("api attempt rejected", extra={"attempt": attempt, "status": status, "elapsed_ms": elapsed_ms})
            raise PermanentError(f"api_http_{status}", response.text[:500])
        try:
            choice = _first_choice(response.json())
        except (ValueError, LookupError, TypeError) as exc:
            raise _RetryableFailure(
                "malformed_response", status, permanent_reason="malformed_response", detail=response.text[:500]
            ) from exc
        log.info("api attempt ok", extra={"attempt": attempt, "status": status, "elapsed_ms": elapsed_ms})
        return choice


def _first_choice(body: Any) -> dict[str, Any]:
    choice = body["choices"][0]
    if not isinstance(choice, dict) or not isinstance(choice["message"]["content"], str):
        raise TypeError("choices[0].message.content is not a string")
    return choice
