"""A systemic Elasticsearch refusal against the real Kafka broker and Elasticsearch (issue 15,
(f)): an index write block (``index.blocks.write=true``, answered 403 ``cluster_block_exception``
per item) held over many batches while tweets and labels stream in dead-letters nothing; every
tweet is indexed once it is lifted, and the blocked time is counted in ``/metrics``."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from gateway.settings import GatewaySettings
from tests.integration.test_gateway_indexer import (
    all_docs,
    clean_index,
    committed_everything,
    produce_labels,
    produce_tweets,
    read_topic,
    running_indexer,
    settings,
    tweets,
)
from tests.support.polling import wait_until
from tests.unit.gateway.factories import emotion

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests

BLOCK_S = 12.0  # spans many 20-record batches of the stream; the fault suite holds 60 s
CHUNK, CHUNKS = 20, 30  # one chunk of tweets and their labels every 0.5 s: 15 s of stream


def blocked_seconds() -> float:
    return REGISTRY.get_sample_value("gateway_indexer_blocked_seconds_total") or 0.0


def blocked_now(reason: str) -> float:
    return REGISTRY.get_sample_value("gateway_indexer_blocked", {"reason": reason}) or 0.0


async def write_block(settings: GatewaySettings, on: bool) -> None:
    async with httpx.AsyncClient(base_url=settings.es_url, timeout=30) as es:
        response = await es.put(f"/{settings.index}/_settings", json={"index.blocks.write": True if on else None})
        response.raise_for_status()


async def test_a_write_block_dead_letters_nothing_and_every_tweet_is_indexed_once_lifted(
    settings: GatewaySettings, clean_index: None
) -> None:
    small = settings.model_copy(update={"indexer_batch_size": CHUNK, "es_request_timeout_s": 10.0})
    records = tweets(CHUNK * CHUNKS)
    before = blocked_seconds()

    async def stream() -> None:
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            await produce_tweets(settings.kafka, chunk)
            await produce_labels(settings.kafka, [emotion(t.id) for t in chunk])
            await asyncio.sleep(0.5)

    async def gauge() -> float:
        return blocked_now("write_block")

    async with running_indexer(small):
        publishing = asyncio.create_task(stream())
        at_block = await wait_until(lambda: all_docs(settings), lambda d: len(d) >= CHUNK, interval=0.1, what="docs")
        await write_block(settings, True)
        blocked_at = time.monotonic()
        try:
            await wait_until(gauge, bool, what="the blocked gauge")
            while time.monotonic() - blocked_at < BLOCK_S:
                assert len(await all_docs(settings)) <= len(at_block) + 2 * CHUNK  # the batch in flight, at most
                assert not await committed_everything(settings)
                await asyncio.sleep(1.0)
            assert blocked_now("write_block") == 1
        finally:
            await write_block(settings, False)
        lifted_at = time.monotonic()
        await publishing
        await wait_until(lambda: committed_everything(settings), bool, timeout=120, what="all committed after block")
        assert blocked_now("write_block") == 0
        recovered_s = time.monotonic() - lifted_at
    docs = await all_docs(settings)
    assert sorted(docs) == sorted(t.id for t in records)
    assert all(d.get("created_at") and d.get("emotion", {}).get("label") == "joy" for d in docs.values())
    topics = settings.kafka.topics
    assert await read_topic(settings.kafka, topics.dlq(topics.raw)) == []
    assert await read_topic(settings.kafka, topics.dlq(topics.labels)) == []
    counted = blocked_seconds() - before
    print(f"\nblock held {lifted_at - blocked_at:.1f}s, all committed {recovered_s:.1f}s after; counted {counted:.1f}s")
    assert counted > BLOCK_S / 2
