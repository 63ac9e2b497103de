"""The front door with fakes behind it: API keys on mutating routes, per-key rate limits, the
per-client lock-out after wrong keys, the review cookie and export, 413s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from common.kafka import OutgoingMessage
from gateway.api import deps
from gateway.api.main import create_app
from gateway.api.security import FailedAttempts, client_address
from gateway.settings import GatewaySettings
from tests.unit.gateway.api.test_routes import FakeQueue, FakeRepository

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEYS = SecretStr("ci:ci-key-0123456789, alice:alice-key-0123456789")
CI, ALICE = {"X-API-Key": "ci-key-0123456789"}, {"X-API-Key": "alice-key-0123456789"}
GUESSER, NEIGHBOUR, COLLEAGUE = "203.0.113.7", "203.0.113.8", "198.51.100.20"


@dataclass
class FakeIngestQueue:
    sent: list[OutgoingMessage] = field(default_factory=list)

    async def publish_records(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend(messages)


def nested(tweet_id: Any, text: str = "I support the new bike lanes", **extra: Any) -> str:
    record = {
        "id": tweet_id,
        "user": {"username": "Ada", "handle": "@ada", "verified": False},
        "meta": {"created_at": "2025-02-19", "hashtags": ["#Bikes"]},
        "payload": {"tweet": {"content": text}},
        "metrics": {"retweets": 1, "likes": 2},
        **extra,
    }
    return json.dumps(record)


def app_with(settings: GatewaySettings, ingest_queue: FakeIngestQueue | None = None) -> FastAPI:
    app = create_app(settings)
    repository, queue = FakeRepository(), FakeQueue()
    app.dependency_overrides[deps.get_repository] = lambda: repository
    app.dependency_overrides[deps.get_relabel_queue] = lambda: queue
    app.dependency_overrides[deps.get_ingest_queue] = lambda: ingest_queue or FakeIngestQueue()
    return app


@pytest.fixture
def ingest_queue() -> FakeIngestQueue:
    return FakeIngestQueue()


@pytest.fixture
def keyed_app(ingest_queue: FakeIngestQueue) -> FastAPI:
    return app_with(GatewaySettings(api_keys=KEYS, rate_limit=3, rate_limit_period_s=60), ingest_queue)


@pytest.fixture
async def client(keyed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=keyed_app), base_url="http://test") as http:
        yield http


async def test_mutating_routes_need_a_valid_key_and_reads_do_not(client: httpx.AsyncClient) -> None:
    for path in ("/emotion", "/stance", "/ingest"):
        missing = await client.post(path, content=nested(1))
        wrong = await client.post(path, content=nested(1), headers={"X-API-Key": "not-a-key-at-all"})
        assert (missing.status_code, wrong.status_code) == (401, 401), path
        assert missing.headers["WWW-Authenticate"] == "X-API-Key" and "X-API-Key" in missing.json()["detail"]
    assert (await client.get("/tweets")).status_code == 200
    assert (await client.post("/emotion", headers={"X-API-Key": "ci-key-0123456789"})).status_code == 202


async def test_a_mutating_route_added_later_is_covered_without_opting_in(keyed_app: FastAPI) -> None:
    @keyed_app.delete("/added-later")
    async def added_later() -> dict[str, str]:
        return {"deleted": "yes"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=keyed_app), base_url="http://test") as http:
        assert (await http.delete("/added-later")).status_code == 401
        assert (await http.delete("/added-later", headers={"X-API-Key": "alice-key-0123456789"})).status_code == 200


async def test_each_key_has_its_own_rate_limit_and_429_says_when_to_retry(client: httpx.AsyncClient) -> None:
    ci, alice = {"X-API-Key": "ci-key-0123456789"}, {"X-API-Key": "alice-key-0123456789"}
    assert [(await client.post("/emotion", headers=ci)).status_code for _ in range(3)] == [202] * 3
    limited = await client.post("/emotion", headers=ci)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1 and "ci" in limited.json()["detail"]
    assert (await client.post("/stance", headers=alice)).status_code == 202
    assert (await client.get("/tweets", headers=ci)).status_code == 200, "reads are not rate limited"


async def test_without_keys_mutating_routes_are_open(ingest_queue: FakeIngestQueue) -> None:
    app = app_with(GatewaySettings(), ingest_queue)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        response = await http.post("/ingest", content=nested(5))
    assert response.status_code == 202 and response.json()["published"] == 1
    assert json.loads(ingest_queue.sent[0].value)["source"] == "api:anonymous@127.0.0.1"


async def test_bodies_over_the_limit_are_413_declared_or_streamed() -> None:
    app = app_with(GatewaySettings(max_request_bytes=1024))
    body = "\n".join(nested(i) for i in range(1, 20)).encode()
    assert len(body) > 1024

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: httpx sends it chunked
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        declared = await http.post("/ingest", content=body)
        streamed = await http.post("/ingest", content=chunks())
        small = await http.post("/ingest", content=nested(1))
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "GATEWAY_MAX_REQUEST_BYTES" in response.json()["detail"] and "1024" in response.json()["detail"]
    assert small.status_code == 202


async def test_ingest_answers_each_rejected_line_and_publishes_the_valid_ones(
    client: httpx.AsyncClient, ingest_queue: FakeIngestQueue
) -> None:
    lines = [
        nested("1893000000000000001"),
        "{not json",
        "",
        nested(1.5),
        nested("1893000000000000002", text=""),
        nested("1893000000000000001"),
        json.dumps({"id": 7, "payload": {"tweet": {"content": "hi"}}, "meta": {"created_at": "yesterday"}}),
        nested(18),
    ]
    response = await client.post("/ingest", content="\n".join(lines), headers={"X-API-Key": "ci-key-0123456789"})
    assert response.status_code == 202
    body = response.json()
    assert (body["received"], body["published"], body["rejected"]) == (7, 2, 5)
    got = [(r["line"], r["reason"], r["field"]) for r in body["rejections"]]
    assert got == [
        (2, "not_json", None),
        (4, "invalid_type:id", "id"),
        (5, "empty_field:text", "text"),
        (6, "duplicate_id", "id"),
        (7, "invalid_date:created_at", "created_at"),
    ]
    assert all(r["message"] for r in body["rejections"])
    raw = [m for m in ingest_queue.sent if m.topic == "tweets.raw"]
    assert [m.key for m in raw] == ["1893000000000000001", "18"]
    assert {json.loads(m.value)["source"] for m in raw} == {"api:ci"}
    assert all(any(k == "traceparent" for k, _ in m.headers) or not m.headers for m in raw)
    rejected = [json.loads(m.value) for m in ingest_queue.sent if m.topic == "tweets.rejected"]
    assert [(r["position"], r["reason"]) for r in rejected] == [
        ("line 2", "not_json"),
        *[(f"line {line}", reason) for line, reason, _ in got[1:]],
    ]


async def test_ingest_refuses_too_many_records_and_an_empty_body(ingest_queue: FakeIngestQueue) -> None:
    app = app_with(GatewaySettings(ingest_max_records=2), ingest_queue)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        too_many = await http.post("/ingest", content="\n".join(nested(i) for i in (1, 2, 3)))
        empty = await http.post("/ingest", content="\n \n")
    assert too_many.status_code == 413 and "GATEWAY_INGEST_MAX_RECORDS" in too_many.json()["detail"]
    assert empty.status_code == 422
    assert ingest_queue.sent == []


async def test_malformed_api_keys_fail_at_start_without_showing_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("ci-key-without-name", "ci:short", "a:same-key-123,b:same-key-123", " , "):
        monkeypatch.setenv("GATEWAY_API_KEYS", value)
        with pytest.raises(ValidationError, match="GATEWAY_API_KEYS") as failure:
            GatewaySettings()
        assert "same-key-123" not in str(failure.value) and "ci-key-without-name" not in str(failure.value)
    monkeypatch.setenv("GATEWAY_API_KEYS", "")
    assert GatewaySettings().api_key_names == {}, "empty, as compose passes an unset variable: no keys"
    monkeypatch.setenv("GATEWAY_API_KEYS", "ci:ci-key-0123456789")
    settings = GatewaySettings()
    assert settings.api_key_names == {"ci-key-0123456789": "ci"}
    assert "ci-key-0123456789" not in repr(settings) and "ci-key-0123456789" not in str(settings.model_dump())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeReviews:
    pages: list[list[dict[str, Any]]] = field(default_factory=list)

    def reviewed(self, page_size: int = 500) -> AsyncIterator[list[dict[str, Any]]]:
        async def pages() -> AsyncIterator[list[dict[str, Any]]]:
            for page in self.pages:
                yield page

        return pages()


def guard_app(clock: FakeClock, **overrides: Any) -> FastAPI:
    """Keys configured, a per-key rate limit far away, the lock-out on its defaults (unless overridden)."""
    app = app_with(GatewaySettings(api_keys=KEYS, rate_limit=10_000, **overrides))
    app.state.front_door.failures.clock = clock
    reviews = FakeReviews([[{"id": "42", "text": "hi", "review": {"status": "accepted", "emotion": "joy"}}]])
    app.dependency_overrides[deps.get_quality_store] = lambda: reviews
    return app


def from_address(app: FastAPI, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_100_wrong_keys_from_one_client_are_refused_with_429_from_the_11th_on() -> None:
    clock = FakeClock()
    app = guard_app(clock)
    async with (
        from_address(app, GUESSER) as guesser,
        from_address(app, NEIGHBOUR) as neighbour,
        from_address(app, COLLEAGUE) as colleague,
    ):
        answers = [await guesser.post("/emotion", headers={"X-API-Key": f"guess-{n:04d}-abcdef"}) for n in range(100)]
        statuses = [a.status_code for a in answers]
        assert statuses.index(429) == 10, "the first 429 answers the 11th wrong key (the default limit is 10)"
        assert statuses == [401] * 10 + [429] * 90
        assert {a.headers["Retry-After"] for a in answers[10:]} == {"300"}, "a fixed lock-out, not extended"
        assert "too many wrong X-API-Key" in answers[-1].json()["detail"]
        # Locked out before the key is looked at: a right guess now is not told apart from a wrong one.
        assert (await guesser.post("/emotion", headers=CI)).status_code == 429
        assert (await guesser.get("/review/export.csv", headers=CI)).status_code == 429
        assert (await guesser.get("/tweets")).status_code == 200, "open reads stay open"
        # Other addresses are unaffected: a wrong key is a plain 401, a valid key goes through.
        assert (await neighbour.post("/emotion", headers={"X-API-Key": "guess-9999-abcdef"})).status_code == 401
        assert (await colleague.post("/emotion", headers=ALICE)).status_code == 202


async def test_the_lock_out_ends_when_the_window_has_passed_and_the_count_starts_afresh() -> None:
    clock = FakeClock()
    app = guard_app(clock, auth_failure_limit=3, auth_failure_window_s=60)
    wrong = {"X-API-Key": "wrong-key-0000"}
    async with from_address(app, GUESSER) as client:
        assert [(await client.post("/stance", headers=wrong)).status_code for _ in range(3)] == [401] * 3
        clock.now += 59.5
        refused = await client.post("/stance", headers=CI)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        clock.now += 0.5  # 60 s after the third wrong key
        assert (await client.post("/stance", headers=CI)).status_code == 202
        assert [(await client.post("/stance", headers=wrong)).status_code for _ in range(3)] == [401, 401, 401]
        assert (await client.post("/stance", headers=CI)).status_code == 429


async def test_only_wrong_keys_within_one_window_count() -> None:
    clock = FakeClock()
    app = guard_app(clock, auth_failure_limit=3, auth_failure_window_s=60)
    async with from_address(app, GUESSER) as client:
        missing = [(await client.post("/emotion")).status_code for _ in range(20)]
        assert missing == [401] * 20, "a missing key is not a guess"
        for _ in range(4):  # two wrong keys a minute, forever: never three within one window
            for _ in range(2):
                assert (await client.post("/emotion", headers={"X-API-Key": "wrong-key-0000"})).status_code == 401
            clock.now += 60
        assert (await client.post("/emotion", headers=CI)).status_code == 202


async def test_failed_attempts_remember_a_bounded_number_of_clients_and_group_ipv6_by_64() -> None:
    clock = FakeClock()
    failures = FailedAttempts(limit=2, window_s=10, clock=clock, max_clients=3)
    for n in range(5):
        failures.record(f"10.0.0.{n}")
    assert len(failures._failures) == 3 and "10.0.0.0" not in failures._failures  # the stalest forgotten
    failures.record("10.0.0.4")
    assert failures.retry_after("10.0.0.4") == 10 and failures.retry_after("10.0.0.3") is None
    clock.now += 10
    assert failures.retry_after("10.0.0.4") is None
    assert client_address("2001:db8:1:2:aaaa::1") == client_address("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_address("::ffff:192.0.2.1") == "192.0.2.1" and client_address("testclient") == "testclient"


async def test_review_login_sets_a_secure_httponly_strict_cookie_unless_configured_off() -> None:
    for secure in (True, False):
        app = guard_app(FakeClock(), review_cookie_secure=secure)
        async with from_address(app, COLLEAGUE) as client:
            login = await client.post("/review/login", headers=ALICE)
        attributes = {part.strip().split("=")[0].lower() for part in login.headers["set-cookie"].split(";")}
        assert login.status_code == 204
        assert {"httponly", "samesite", "path", "max-age"} <= attributes
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        assert ("secure" in attributes) is secure
    assert GatewaySettings().review_cookie_secure, "Secure by default"


async def test_export_needs_the_key_when_keys_are_configured() -> None:
    app = guard_app(FakeClock())
    async with from_address(app, COLLEAGUE) as client:
        missing = await client.get("/review/export.csv")
        wrong = await client.get("/review/export.csv", headers={"X-API-Key": "wrong-key-0000"})
        by_header = await client.get("/review/export.csv", headers=ALICE)
        by_cookie = await client.get("/review/export.csv", cookies={"gateway_api_key": ALICE["X-API-Key"]})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["WWW-Authenticate"] == "X-API-Key"
    for export in (by_header, by_cookie):
        assert export.status_code == 200 and export.text.splitlines() == [
            "id,text,emotion,stance,sentiment",
            "42,hi,joy,,",
        ]
    open_app = app_with(GatewaySettings())  # no keys: a local stack, open as before
    open_app.dependency_overrides[deps.get_quality_store] = lambda: FakeReviews()
    async with from_address(open_app, COLLEAGUE) as client:
        assert (await client.get("/review/export.csv")).status_code == 200
