"""The gateway API against the real Elasticsearch (and the real Kafka for jobs and readiness)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from common.events import MAIN_SUBJECT, STANCE_TARGET_HEADER, LabelEvent, TweetRecord
from common.kafka import ensure_topics
from common.tweet_store import TweetStore
from gateway.api.main import create_app
from gateway.documents import ensure_indices
from gateway.indexer import logic
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_indexer import (
    BASE_ID,
    clean_index,
    produce_labels,
    read_topic,
    running_indexer,
    settings,
)
from tests.support.polling import wait_until
from tests.unit.gateway.factories import NOW, emotion, stance, tweet

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests

DAY = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass
class Indexed:
    """The real Elasticsearch as the tests write and read it: the store and the tweets index."""

    store: TweetStore
    index: str

    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self.store.bulk(operations)

    async def refresh(self) -> None:
        await self.store.refresh(self.index)

    async def source(self, tweet_id: str) -> dict[str, Any] | None:
        return await self.store.get(self.index, tweet_id)


@contextlib.asynccontextmanager
async def repository(settings: GatewaySettings) -> AsyncIterator[Indexed]:
    store = TweetStore(settings.es_url)
    try:
        await ensure_indices(store, settings)
        yield Indexed(store, settings.index)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def gateway(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, as uvicorn would; requests go through ASGI in-process."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def api_and_search(settings: GatewaySettings) -> AsyncIterator[tuple[httpx.AsyncClient, Indexed]]:
    async with gateway(settings) as api, repository(settings) as search:
        yield api, search


async def seed(search: Indexed, tweets: Sequence[TweetRecord], labels: Sequence[LabelEvent] = ()) -> None:
    """Write through the indexer's own bulk path, then make it visible."""
    operations: list[dict[str, Any]] = []
    for record in tweets:
        doc = logic.tweet_doc(record, indexed_at=NOW, ingest_trace_id="f" * 32, index_trace_id=None)
        operations += logic.tweet_operations(search.index, doc)
    for label in labels:
        operations += logic.label_operations(search.index, label.tweet_id, label.task, logic.label_doc(label))
    for start in range(0, len(operations), 2000):
        items = await search.bulk(operations[start : start + 2000])
        assert all(logic.judge_bulk_item(i).outcome is logic.Outcome.STORED for i in items)
    await search.refresh()


async def all_pages(api: httpx.AsyncClient, limit: int, **params: Any) -> tuple[list[dict[str, Any]], set[int]]:
    items: list[dict[str, Any]] = []
    totals: set[int] = set()
    cursor: str | None = None
    while True:
        response = await api.get("/tweets", params={"limit": limit, **params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items, totals


def spread(n: int) -> list[TweetRecord]:
    """n tweets, many sharing a created_at so that paging must break ties by id."""
    return [tweet(str(BASE_ID + i), created_at=DAY + timedelta(seconds=i // 7)) for i in range(n)]


async def test_pagination_returns_every_tweet_exactly_once(settings: GatewaySettings, clean_index: None) -> None:
    async with api_and_search(settings) as (api, search):
        records = spread(1203)
        label_only = [emotion(str(BASE_ID + 10_000 + i)) for i in range(25)]  # labels whose tweet never came
        await seed(search, records, label_only)
        items, totals = await all_pages(api, limit=97)
        assert totals == {1203}
        assert sorted(item["id"] for item in items) == sorted(t.id for t in records)
        assert [item["created_at"] for item in items] == sorted(item["created_at"] for item in items)
        assert (await api.get(f"/tweets/{label_only[0].tweet_id}")).status_code == 404
        one = (await api.get(f"/tweets/{records[0].id}")).json()
        assert one["id"] == str(BASE_ID) and one["trace_url"] == "http://127.0.0.1:16686/trace/" + "f" * 32


async def test_pagination_is_exact_while_labels_are_updated(settings: GatewaySettings, clean_index: None) -> None:
    async with api_and_search(settings) as (api, search):
        records = spread(600)
        await seed(search, records)
        stop = asyncio.Event()

        async def relabel() -> int:
            rng, rounds = random.Random(7), 0
            while not stop.is_set():
                picked = rng.sample(records, 50)
                await seed(search, [], [emotion(t.id, label=rng.choice(["joy", "anger", "fear"])) for t in picked])
                rounds += 1
            return rounds

        updater = asyncio.create_task(relabel())
        try:
            items, totals = await all_pages(api, limit=25)
        finally:
            stop.set()
        assert await updater > 1, "labels must change while paging for this test to mean anything"
        assert totals == {600}
        assert len(items) == 600 and {i["id"] for i in items} == {t.id for t in records}


async def test_date_filters_at_the_day_boundaries(settings: GatewaySettings, clean_index: None) -> None:
    async with api_and_search(settings) as (api, search):
        moments = {
            "before": DAY - timedelta(milliseconds=1),
            "midnight": DAY,
            "last_ms": DAY + timedelta(days=1) - timedelta(milliseconds=1),
            "next_day": DAY + timedelta(days=1),
        }
        ids = {name: str(BASE_ID + n) for n, name in enumerate(moments)}
        await seed(search, [tweet(ids[name], created_at=moment) for name, moment in moments.items()])

        async def names(**params: str) -> set[str]:
            items, _ = await all_pages(api, limit=10, **params)
            return {name for name, tweet_id in ids.items() if tweet_id in {i["id"] for i in items}}

        assert await names(start_date="2024-03-01", end_date="2024-03-01") == {"midnight", "last_ms"}
        assert await names(start_date="2024-03-01T00:00:00") == {"midnight", "last_ms", "next_day"}
        assert await names(end_date="2024-03-01T23:59:59.999Z") == {"before", "midnight", "last_ms"}
        assert await names(end_date="2024-03-01T23:59:59.998Z") == {"before", "midnight"}
        assert await names(end_date="2024-02-29") == {"before"}
        assert await names(start_date="2024-03-02") == {"next_day"}
        assert await names(start_date="2024-03-01T01:00:00+01:00", end_date="2024-03-01T00:00:00Z") == {"midnight"}


async def test_label_and_valence_filters(settings: GatewaySettings, clean_index: None) -> None:
    async with api_and_search(settings) as (api, search):
        records = spread(4)
        ids = [t.id for t in records]
        await seed(
            search,
            records,
            [
                emotion(ids[0], label="joy", valence=0.9),
                emotion(ids[1], label="anger", scores={"anger": 0.9}, valence=-0.8),
                emotion(ids[2], label="neutral", scores={"neutral": 1.0}, valence=None),
                stance(ids[0]),
                stance(ids[1], label="OPPOSE"),
            ],
        )

        async def found(**params: Any) -> list[str]:
            items, _ = await all_pages(api, limit=10, **params)
            return [i["id"] for i in items]

        assert await found(emotion="anger") == [ids[1]]
        assert await found(stance="support") == [ids[0]]
        assert await found(min_score=0) == [ids[0]]
        assert await found(min_score=-1, max_score=-0.5) == [ids[1]]
        assert await found(emotion="joy", stance="OPPOSE") == []
        item = (await api.get(f"/tweets/{ids[1]}")).json()
        assert item["emotion"] == {
            "label": "anger",
            "score": 0.8,
            "scores": {"anger": 0.9},
            "model": "emo-model",
            "valence": -0.8,
        }
        assert item["stance"]["label"] == "OPPOSE"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "x"},
        {"start_date": "2024-02-30"},
        {"end_date": "soon"},
        {"start_date": "2024-03-02", "end_date": "2024-03-01"},
        {"emotion": "happy"},
        {"stance": "for"},
        {"min_score": -1.5},
        {"max_score": "inf"},
        {"min_score": 0.3, "max_score": 0.2},
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"cursor": "%%%"},
    ],
)
async def test_invalid_parameters_are_422_with_a_message(
    settings: GatewaySettings, clean_index: None, params: dict[str, Any]
) -> None:
    async with api_and_search(settings) as (api, _):
        response = await api.get("/tweets", params=params)
        assert response.status_code == 422
        (problem, *_) = response.json()["detail"]
        assert problem["loc"][0] == "query" and problem["loc"][1] in params and problem["msg"]


async def test_extreme_but_valid_inputs_reach_elasticsearch_without_error(
    settings: GatewaySettings, clean_index: None
) -> None:
    async with api_and_search(settings) as (api, _):
        far = {"cursor": "WzI1MzQwMjMwMDc5OTk5OSwiOTIyMzM3MjAzNjg1NDc3NTgwNyJd"}  # [9999-12-31T23:59:59.999, max id]
        for params in (
            {"start_date": "0001-01-01", "end_date": "9999-12-31"},
            {"start_date": "9999-12-31T23:59:59.999999Z"},
            {"end_date": "0001-01-01T00:00:00Z", "min_score": -1, "max_score": 1},
            far,
            {"cursor": "Wy02MjEzNTU5NjgwMDAwMCwiMSJd"},  # [year 1, "1"]
        ):
            response = await api.get("/tweets", params=params)
            assert response.status_code == 200, (params, response.text)


async def test_relabel_job_queues_tweets_and_counts_labels(settings: GatewaySettings, clean_index: None) -> None:
    async with api_and_search(settings) as (api, search):
        kafka = settings.kafka
        await ensure_topics(kafka, kafka.topics.all())
        records = spread(12)
        already = records[:4]
        await seed(search, records, [emotion(t.id) for t in already])
        response = await api.post("/emotion", params={"start_date": "2024-03-01", "end_date": "2024-03-01"})
        assert response.status_code == 202
        job = response.json()
        assert job["task"] == "emotion" and job["queued"] == 8

        queued = await read_topic(kafka, kafka.topics.requests("emotion"))
        assert sorted(key.decode() for key, _, _ in queued if key) == sorted(t.id for t in records[4:])
        by_id = {t.id: t for t in records}
        for key, value, headers in queued:
            assert ("job-id", job["job_id"].encode()) in headers
            assert TweetRecord.model_validate_json(value) == by_id[key.decode() if key else ""]

        status = (await api.get(f"/jobs/{job['job_id']}")).json()
        assert status == {**job, "labelled": 0, "done": False}
        # what the emotion service does with each request: a label carrying the job id
        answers = [emotion(key.decode() if key else "", label="fear", job_id=job["job_id"]) for key, _, _ in queued]
        async with running_indexer(settings):
            await produce_labels(kafka, answers)
            done = await wait_until(
                lambda: api.get(f"/jobs/{job['job_id']}"), lambda r: r.json()["done"], what="job done"
            )
        assert done.json()["labelled"] == 8
        assert (await api.post("/emotion")).json()["queued"] == 0
        assert (await api.post("/emotion", params={"force": True, "limit": 5})).json()["queued"] == 5
        assert (await api.get("/jobs/" + "0" * 32)).status_code == 404


async def test_stance_target_filter_and_a_targeted_relabel_job(settings: GatewaySettings, clean_index: None) -> None:
    async with api_and_search(settings) as (api, search):
        kafka = settings.kafka
        await ensure_topics(kafka, kafka.topics.all())
        records = spread(6)
        ids = [t.id for t in records]
        await seed(search, records)
        async with running_indexer(settings):
            # what the stance service publishes: toward its main subject, and from an older one without target
            toward_main = [stance(ids[0], target=MAIN_SUBJECT), stance(ids[1], target=MAIN_SUBJECT, label="OPPOSE")]
            await produce_labels(kafka, [*toward_main, stance(ids[2])])
            await wait_until(
                lambda: all_pages(api, limit=10),
                lambda found: sum(i["stance"] is not None for i in found[0]) == 3,
                what="3 stance labels indexed",
            )
            assert [i["id"] for i in (await all_pages(api, limit=10, stance_target=f"  {MAIN_SUBJECT} "))[0]] == ids[:2]
            items, _ = await all_pages(api, limit=10, stance_target=MAIN_SUBJECT, stance="oppose")
            assert [i["id"] for i in items] == [ids[1]]
            assert (await all_pages(api, limit=10, stance_target="Main Subject"))[0] == []  # exact, no folding
            assert (await api.get(f"/tweets/{ids[0]}")).json()["stance"]["target"] == MAIN_SUBJECT
            assert (await api.get(f"/tweets/{ids[2]}")).json()["stance"]["target"] is None

            target = "la réforme des retraites"
            response = await api.post("/stance", params={"target": f" {target} ", "start_date": "2024-03-01"})
            assert response.status_code == 202, response.text
            job = response.json()
            assert (job["task"], job["queued"], job["target"]) == ("stance", 6, target)  # none is toward it yet
            queued = await read_topic(kafka, kafka.topics.requests("stance"))
            assert sorted(key.decode() for key, _, _ in queued if key) == sorted(ids)
            for _, _, headers in queued:
                assert ("job-id", job["job_id"].encode()) in headers
                assert (STANCE_TARGET_HEADER, target.encode("utf-8")) in headers
            status = (await api.get(f"/jobs/{job['job_id']}")).json()
            assert status == {**job, "labelled": 0, "done": False}

            # the stance service's answers: toward the named target, replacing the stored labels
            answers = [
                stance(key.decode() if key else "", label="OPPOSE", target=target, job_id=job["job_id"])
                for key, _, _ in queued
            ]
            await produce_labels(kafka, answers)
            done = await wait_until(
                lambda: api.get(f"/jobs/{job['job_id']}"), lambda r: r.json()["done"], what="targeted job done"
            )
        assert done.json()["labelled"] == 6 and done.json()["target"] == target
        items, totals = await all_pages(api, limit=4, stance_target=target)
        assert totals == {6} and sorted(i["id"] for i in items) == sorted(ids)
        assert all(i["stance"]["target"] == target and i["stance"]["label"] == "OPPOSE" for i in items)
        assert (await all_pages(api, limit=10, stance_target=MAIN_SUBJECT))[0] == []  # replaced
        # only tweets not yet labelled toward that target are queued again, unless forced
        assert (await api.post("/stance", params={"target": target})).json()["queued"] == 0
        assert (await api.post("/stance", params={"target": "another one"})).json()["queued"] == 6
        response = await api.post("/stance", params={"target": "x" * 201})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "target"]
        response = await api.get("/tweets", params={"stance_target": "x" * 201})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "stance_target"]


async def test_readiness_with_real_servers(settings: GatewaySettings, clean_index: None) -> None:
    async with api_and_search(settings) as (api, _):
        assert (await api.get("/healthz")).json() == {"status": "ok", "checks": {}}
        response = await api.get("/readyz")
        assert response.status_code == 200, response.text


async def test_readiness_503_and_no_500_when_elasticsearch_is_nowhere(settings: GatewaySettings) -> None:
    nowhere = settings.model_copy(update={"es_url": "http://127.0.0.1:9", "es_request_timeout_s": 2.0})
    app = create_app(nowhere)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
    ):
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"elasticsearch": "unreachable", "kafka": "ok"}
        assert (await client.get("/tweets")).status_code == 503
        assert (await client.get("/tweets/1")).status_code == 503
        assert (await client.post("/stance")).status_code == 503
