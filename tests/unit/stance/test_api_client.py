"""The API client against the local fault-injecting server (tests/fakes/fake_llm_api.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from common.errors import PermanentError
from stance.api_client import ApiLimits, ApiUnavailableError, ChatCompletionsClient
from stance.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from tests.fakes.fake_llm_api import FakeLlmApi, Fault, running_fake_api
from tests.support.polling import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

API_KEY = "sk-test-never-log-me"


def limits(**overrides: Any) -> ApiLimits:
    values: dict[str, Any] = {
        "requests_per_second": 50.0, "max_concurrent": 4, "max_attempts": 4,
        "connect_timeout_s": 1.0, "total_timeout_s": 0.5, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
    }
    return ApiLimits(**(values | overrides))


def payload(tweet: str = "neutral news") -> dict[str, Any]:
    return {"model": "fake", "messages": [{"role": "user", "content": f"Tweet: {tweet}"}]}


@pytest.fixture
def api() -> Iterator[FakeLlmApi]:
    with running_fake_api() as server:
        yield server


@pytest.fixture
async def client(api: FakeLlmApi) -> AsyncIterator[ChatCompletionsClient]:
    c = ChatCompletionsClient(api.base_url, SecretStr(API_KEY), limits(), CircuitBreaker(50, 60))
    yield c
    await c.aclose()


async def test_answers_pass_through(client: ChatCompletionsClient, api: FakeLlmApi) -> None:
    choice = await client.complete(payload("I love it"))
    assert choice["message"]["content"] == "SUPPORT"
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    "fault",
    [Fault.http(500), Fault.http(502), Fault.http(503), Fault.http(408), Fault.http(429), Fault.slow(2.0),
     Fault.drop()],
    ids=["500", "502", "503", "408", "429", "slow-past-timeout", "connection-dropped"],
)
async def test_retryable_faults_are_retried(client: ChatCompletionsClient, api: FakeLlmApi, fault: Fault) -> None:
    api.script(fault, fault)
    choice = await client.complete(payload("I hate it"))
    assert choice["message"]["content"] == "OPPOSE"
    assert [r.fault for r in api.requests] == [fault.kind, fault.kind, "ok"]


async def test_retry_after_is_honoured(client: ChatCompletionsClient, api: FakeLlmApi) -> None:
    api.script(Fault.http(429, Retry_After="1"), Fault.http(503, retry_after_ms="300"))
    await client.complete(payload())
    first, second, third = (r.arrived for r in api.requests)
    assert second - first >= 1.0
    assert third - second >= 0.3


async def test_client_errors_are_permanent_at_once(client: ChatCompletionsClient, api: FakeLlmApi) -> None:
    api.script(Fault.http(400))
    with pytest.raises(PermanentError) as caught:
        await client.complete(payload())
    assert caught.value.reason == "api_http_400"
    assert len(api.requests) == 1


async def test_malformed_responses_become_permanent_after_bounded_attempts(
    client: ChatCompletionsClient, api: FakeLlmApi
) -> None:
    api.script(*[Fault.malformed()] * 4)
    with pytest.raises(PermanentError) as caught:
        await client.complete(payload())
    assert caught.value.reason == "malformed_response"
    assert len(api.requests) == 4


async def test_an_api_down_for_all_attempts_is_transient(client: ChatCompletionsClient, api: FakeLlmApi) -> None:
    api.down = True
    with pytest.raises(ApiUnavailableError):
        await client.complete(payload())
    assert len(api.requests) == 4


async def test_revoked_credentials_pause_instead_of_dead_lettering(
    client: ChatCompletionsClient, api: FakeLlmApi
) -> None:
    api.script(Fault.http(401))
    with pytest.raises(ApiUnavailableError):
        await client.complete(payload())


async def test_circuit_opens_stops_calling_and_recovers_through_a_probe(api: FakeLlmApi) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=0.5)
    client = ChatCompletionsClient(api.base_url, SecretStr(API_KEY), limits(max_attempts=2), breaker)
    try:
        api.down = True
        with pytest.raises(ApiUnavailableError):
            await client.complete(payload())
        with pytest.raises(CircuitOpenError):
            await client.complete(payload())  # the third failure opened the circuit mid-retries
        assert breaker.state is BreakerState.OPEN
        calls_while_open = len(api.requests)
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                await client.complete(payload())
        assert len(api.requests) == calls_while_open  # no request reached the API while open
        api.down = False

        async def state() -> BreakerState:
            return breaker.state

        await wait_until(state, lambda s: s is not BreakerState.OPEN, timeout=5, interval=0.05, what="half-open")
        assert (await client.complete(payload("love")))["message"]["content"] == "SUPPORT"
        assert breaker.state is BreakerState.CLOSED
    finally:
        await client.aclose()


async def test_rate_and_concurrency_limits_hold_under_faults(api: FakeLlmApi) -> None:
    """Seen from the server: ≤ 10 requests in any 1 s window and ≤ 3 in flight, retries included."""
    api.latency_s = 0.05
    api.script(Fault.http(429, Retry_After="0"), Fault.http(500), Fault.slow(1.0), Fault.http(503), Fault.drop())
    client = ChatCompletionsClient(
        api.base_url, SecretStr(API_KEY), limits(requests_per_second=10.0, max_concurrent=3), CircuitBreaker(50, 60)
    )
    try:
        results = await asyncio.gather(*(client.complete(payload(f"tweet {i}")) for i in range(25)))
    finally:
        await client.aclose()
    assert len(results) == 25
    assert len(api.requests) >= 30  # 25 answers + the scripted failures
    assert api.max_in_any_window(1.0) <= 10
    assert api.max_in_flight <= 3
    assert api.max_in_flight >= 2  # the limit is a ceiling that was actually used, not serialisation


async def test_every_attempt_is_logged_and_the_key_never_is(
    client: ChatCompletionsClient, api: FakeLlmApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.script(Fault.http(503), Fault.http(429, Retry_After="0"))
    with caplog.at_level(logging.DEBUG):
        await client.complete(payload())
    attempts = [r for r in caplog.records if r.getMessage().startswith("api attempt")]
    assert [(r.attempt, r.status) for r in attempts] == [(1, 503), (2, 429), (3, 200)]
    assert all(hasattr(r, "wait_s") for r in attempts[:2])
    everything = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert API_KEY not in everything
