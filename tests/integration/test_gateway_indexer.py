"""The gateway indexer against the real Kafka broker and the real Elasticsearch."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from elasticsearch import ApiError, AsyncElasticsearch

from common.events import MAIN_SUBJECT, DeadLetter, LabelEvent, TweetRecord
from common.kafka import ensure_topics
from common.settings import KafkaSettings
from gateway.documents import TWEETS_MAPPING
from gateway.indexer.main import run_indexer
from gateway.settings import GatewaySettings
from tests.support.polling import wait_until
from tests.unit.gateway.factories import emotion, stance, tweet

# one event loop for the whole session, as the async fixtures (see pyproject)
pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]

BASE_ID = 2**62


def tweets(n: int, start: int = 0) -> list[TweetRecord]:
    first = datetime(2024, 3, 1, tzinfo=UTC)
    return [
        tweet(str(BASE_ID + i), created_at=first + timedelta(minutes=i), text=f"tweet {i}")
        for i in range(start, start + n)
    ]


@pytest.fixture
def settings(es_url: str, index_name: str, kafka_settings: KafkaSettings) -> GatewaySettings:
    return GatewaySettings(
        es_url=es_url, index=index_name, kafka=kafka_settings, indexer_batch_size=200, indexer_max_wait_ms=100
    )


@pytest.fixture
def clean_index(settings: GatewaySettings) -> Iterator[None]:
    """Deletes the test's indices afterwards. Synchronous on purpose: async fixtures that hold
    clients tie them to one event loop, and the tests must not depend on which loop runs them."""
    yield
    httpx.delete(f"{settings.es_url}/{settings.index},{settings.jobs_index}", params={"ignore_unavailable": "true"})


@contextlib.asynccontextmanager
async def elastic(settings: GatewaySettings) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(settings.es_url)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def running_indexer(settings: GatewaySettings) -> AsyncIterator[asyncio.Task[None]]:
    stopping = asyncio.Event()
    task = asyncio.create_task(run_indexer(settings, stopping))
    try:
        yield task
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


async def produce(
    settings: KafkaSettings, topic: str, messages: Sequence[tuple[str | None, bytes]], headers: Any = None
) -> None:
    await ensure_topics(settings, settings.topics.all())
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key.encode() if key else None, headers=headers or [])
            for key, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_tweets(settings: KafkaSettings, records: Sequence[TweetRecord]) -> None:
    await produce(settings, settings.topics.raw, [(t.id, t.model_dump_json().encode()) for t in records])


async def produce_labels(settings: KafkaSettings, events: Sequence[LabelEvent]) -> None:
    await produce(settings, settings.topics.labels, [(e.tweet_id, e.model_dump_json().encode()) for e in events])


async def read_topic(settings: KafkaSettings, topic: str) -> list[tuple[bytes | None, bytes, list[Any]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        out: list[tuple[bytes | None, bytes, list[Any]]] = []
        while polled := await consumer.getmany(timeout_ms=1500):
            out.extend((r.key, r.value, list(r.headers)) for rs in polled.values() for r in rs)
        return out
    finally:
        await consumer.stop()


async def all_docs(settings: GatewaySettings) -> dict[str, dict[str, Any]]:
    async with elastic(settings) as es:
        try:
            await es.indices.refresh(index=settings.index)
            response = await es.search(index=settings.index, size=10_000, query={"match_all": {}})
        except ApiError:  # not created yet, or its shard is still starting
            return {}
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


async def committed_everything(settings: GatewaySettings) -> bool:
    kafka = settings.kafka
    check = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=settings.indexer_group_id)
    await check.start()
    try:
        partitions = [TopicPartition(t, p) for t in (kafka.topics.raw, kafka.topics.labels) for p in range(3)]
        ends = await check.end_offsets(partitions)
        committed = {tp: await check.committed(tp) or 0 for tp in partitions}
        return committed == ends
    finally:
        await check.stop()


async def test_tweet_then_label_and_label_before_tweet_make_one_complete_doc_each(
    settings: GatewaySettings, clean_index: None
) -> None:
    early, late = tweets(20), tweets(20, start=20)
    async with running_indexer(settings):
        # labels first for the early ones: they must wait, as label-only docs, for their tweet
        await produce_labels(settings.kafka, [emotion(t.id) for t in early])
        await wait_until(lambda: all_docs(settings), lambda d: len(d) == 20, what="label-only docs")
        await produce_tweets(settings.kafka, early + late)
        await produce_labels(settings.kafka, [emotion(t.id) for t in late] + [stance(t.id) for t in early])

        def complete(docs: dict[str, dict[str, Any]]) -> bool:
            return len(docs) == 40 and all("created_at" in d and "emotion" in d for d in docs.values())

        docs = await wait_until(lambda: all_docs(settings), complete, what="40 complete docs")
        await wait_until(lambda: committed_everything(settings), bool, what="offsets committed")

    assert set(docs) == {t.id for t in early + late}
    first = docs[early[0].id]
    assert first["id"] == early[0].id == str(BASE_ID)  # 64-bit id kept exact, as a string
    assert first["text"] == "tweet 0" and first["author"]["handle"] == "alice"
    assert first["emotion"]["label"] == "joy" and first["emotion"]["valence"] == 0.6
    assert first["stance"]["label"] == "SUPPORT"
    assert "stance" not in docs[late[0].id]


async def test_stance_target_is_stored_also_in_an_index_created_before_targets(
    settings: GatewaySettings, clean_index: None
) -> None:
    # the index as an older gateway created it: no stance.target in its strict mapping
    old_mapping = copy.deepcopy(TWEETS_MAPPING)
    del old_mapping["properties"]["stance"]["properties"]["target"]
    async with elastic(settings) as es:
        await es.indices.create(
            index=settings.index, mappings=old_mapping, settings={"number_of_shards": 1, "number_of_replicas": 0}
        )
    records = tweets(3)
    await produce_tweets(settings.kafka, records)
    await produce_labels(
        settings.kafka,
        [
            stance(records[0].id, target="the budget", label="OPPOSE"),
            stance(records[1].id, target=MAIN_SUBJECT),
            stance(records[2].id),  # an older stance service: no target
        ],
    )
    async with running_indexer(settings):  # puts the new mapping on the existing index at start
        docs = await wait_until(
            lambda: all_docs(settings), lambda d: len(d) == 3 and all("stance" in x for x in d.values()), what="docs"
        )
        await wait_until(lambda: committed_everything(settings), bool, what="offsets committed")
    assert [docs[t.id]["stance"]["target"] for t in records] == ["the budget", MAIN_SUBJECT, None]
    assert docs[records[0].id]["stance"]["label"] == "OPPOSE"
    async with elastic(settings) as es:
        mapping = await es.indices.get_mapping(index=settings.index)
        assert mapping[settings.index]["mappings"]["properties"]["stance"]["properties"]["target"] == {
            "type": "keyword"
        }
        found = await es.search(index=settings.index, query={"term": {"stance.target": "the budget"}})
    assert [hit["_id"] for hit in found["hits"]["hits"]] == [records[0].id]


async def test_replays_are_idempotent(settings: GatewaySettings, clean_index: None) -> None:
    records = tweets(30)
    labels = [emotion(t.id) for t in records]
    for _ in range(2):  # every event published twice
        await produce_tweets(settings.kafka, records)
        await produce_labels(settings.kafka, labels)
    async with running_indexer(settings):
        await wait_until(lambda: committed_everything(settings), bool, what="offsets committed")
    first = await all_docs(settings)
    # a fresh consumer group replays the whole topics once more
    replay = settings.model_copy(update={"indexer_group": "gateway-indexer-replay"})
    async with running_indexer(replay):
        await wait_until(lambda: committed_everything(replay), bool, what="replay committed")
    second = await all_docs(settings)

    def without_indexed_at(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {k: {f: v for f, v in d.items() if f != "indexed_at"} for k, d in docs.items()}

    assert len(first) == 30
    assert without_indexed_at(first) == without_indexed_at(second)


async def test_poison_messages_are_dead_lettered_and_never_block(settings: GatewaySettings, clean_index: None) -> None:
    topics = settings.kafka.topics
    good = tweets(5)
    too_many_likes = tweet(str(BASE_ID + 99)).model_dump(mode="json")
    too_many_likes["metrics"]["likes"] = 10**20  # valid record, but no Elasticsearch long holds it
    await produce(settings.kafka, topics.raw, [("bad-json", b"{not json"), (None, b'{"id": "x"}')])
    await produce_tweets(settings.kafka, good)
    await produce(settings.kafka, topics.raw, [(str(BASE_ID + 99), json.dumps(too_many_likes).encode())])
    await produce(settings.kafka, topics.labels, [("1", b'{"task": "mood"}')])
    async with running_indexer(settings):
        await wait_until(lambda: committed_everything(settings), bool, what="offsets committed past poison")
    docs = await all_docs(settings)
    assert set(docs) == {t.id for t in good}

    raw_dlq = [
        DeadLetter.model_validate_json(v) for _, v, _ in await read_topic(settings.kafka, topics.dlq(topics.raw))
    ]
    reasons = sorted(d.reason for d in raw_dlq)
    assert [r.split(":")[0] for r in reasons] == ["elasticsearch_rejected", "invalid_tweet", "invalid_tweet"]
    rejected = next(d for d in raw_dlq if d.reason == "elasticsearch_rejected")
    assert rejected.key == str(BASE_ID + 99) and "metrics.likes" in rejected.detail
    (label_dlq,) = await read_topic(settings.kafka, topics.dlq(topics.labels))
    assert DeadLetter.model_validate_json(label_dlq[1]).reason.startswith("invalid_label:")


async def test_hard_stop_mid_stream_then_restart_indexes_every_tweet(
    settings: GatewaySettings, clean_index: None
) -> None:
    total = 4000
    records = tweets(total)
    small_batches = settings.model_copy(update={"indexer_batch_size": 50})
    await produce_tweets(settings.kafka, records)

    async def count() -> int:
        return len(await all_docs(settings))

    first = asyncio.create_task(run_indexer(small_batches))
    await wait_until(count, lambda n: n > 0, interval=0.05, what="first docs")
    first.cancel()  # a hard stop: whatever batch was in flight is neither finished nor committed
    done, _ = await asyncio.wait([first], timeout=60)
    assert first in done and first.cancelled(), "a cancelled indexer must stop, not consume on"
    assert await count() < total, "the indexer must be stopped mid-stream for this test to mean anything"

    started = time.monotonic()
    async with running_indexer(settings):
        await wait_until(lambda: committed_everything(settings), bool, timeout=180, what="all committed")
    elapsed = time.monotonic() - started
    docs = await all_docs(settings)
    assert sorted(docs) == sorted(t.id for t in records)
    print(f"\nrestarted indexer finished {total} docs in {elapsed:.1f}s")


class CuttableProxy:
    """A TCP proxy in front of the real Elasticsearch that the test can cut and restore."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 9200
        self.up = True
        self.connections: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def cut(self) -> None:
        self.up = False
        for writer in self.connections:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        self.connections |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self.connections -= {writer, upstream_writer}

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_elasticsearch_outage_retries_without_committing_and_loses_nothing(
    settings: GatewaySettings, clean_index: None
) -> None:
    proxy = CuttableProxy(settings.es_url)
    via_proxy = settings.model_copy(update={"es_url": await proxy.start(), "es_request_timeout_s": 5.0})
    try:
        async with running_indexer(via_proxy):
            await produce_tweets(settings.kafka, tweets(10))
            await wait_until(lambda: committed_everything(settings), bool, what="first tweets committed")
            proxy.cut()
            await produce_tweets(settings.kafka, tweets(10, start=10))
            await produce_labels(settings.kafka, [emotion(t.id) for t in tweets(20)])
            # while Elasticsearch is unreachable, nothing more is committed however long we wait
            await wait_until(lambda: all_docs(settings), lambda d: len(d) == 10, what="10 docs")
            for _ in range(6):
                assert not await committed_everything(settings)
                await asyncio.sleep(0.5)
            proxy.up = True
            await wait_until(lambda: committed_everything(settings), bool, timeout=90, what="commit after outage")
    finally:
        await proxy.close()
    docs = await all_docs(settings)
    assert sorted(docs) == sorted(t.id for t in tweets(20))
    assert all(d["emotion"]["label"] == "joy" for d in docs.values())
