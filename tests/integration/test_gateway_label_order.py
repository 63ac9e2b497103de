"""Newest label wins, against the real Kafka broker and the real Elasticsearch (issue 15, (e)):
a re-drive of an old label and a re-label that overtakes the original both leave the newest
label stored; concurrent writers of one document cannot put an older label back."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from common.errors import TransientError
from common.events import LabelEvent
from common.tweet_store import TweetStore
from gateway.documents import ensure_indices
from gateway.indexer.handlers import IndexBatchHandler
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
from tests.unit.gateway.indexer.test_handlers import TOPICS, labelled, raw

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests

ORIGINAL = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RELABEL = ORIGINAL + timedelta(hours=1)


def original(tweet_id: str) -> LabelEvent:
    return emotion(tweet_id, label="joy", produced_at=ORIGINAL)


def relabel(tweet_id: str) -> LabelEvent:
    return emotion(tweet_id, label="anger", score=0.9, scores={"anger": 0.9}, produced_at=RELABEL, job_id="job-1")


def newest_everywhere(docs: dict[str, dict[str, Any]], ids: list[str]) -> bool:
    return all(docs.get(i, {}).get("emotion", {}).get("label") == "anger" and docs[i].get("created_at") for i in ids)


async def test_a_re_driven_old_label_and_an_overtaken_original_leave_the_newest_label(
    settings: GatewaySettings, clean_index: None
) -> None:
    records = tweets(30)
    ids = [t.id for t in records]
    in_order, overtaken, same_batch = ids[:10], ids[10:20], ids[20:]
    await produce_tweets(settings.kafka, records)
    # same batch: the re-label first, the original committed after it
    await produce_labels(settings.kafka, [relabel(i) for i in same_batch] + [original(i) for i in same_batch])
    await produce_labels(settings.kafka, [original(i) for i in in_order])
    async with running_indexer(settings):
        await wait_until(lambda: committed_everything(settings), bool, what="first labels committed")
        # the re-label overtakes the original: indexed first, the original arrives in a later batch
        await produce_labels(settings.kafka, [relabel(i) for i in in_order + overtaken])
        await wait_until(lambda: committed_everything(settings), bool, what="re-labels committed")
        await produce_labels(settings.kafka, [original(i) for i in overtaken])
        # a DLQ re-drive republishes the old label of every tweet after its re-label
        await produce_labels(settings.kafka, [original(i) for i in ids])
        await wait_until(lambda: committed_everything(settings), bool, what="old labels committed")
    docs = await all_docs(settings)
    assert newest_everywhere(docs, ids), {i: docs[i].get("emotion", {}).get("label") for i in ids}
    assert {docs[i]["emotion"]["produced_at"] for i in ids} == {RELABEL.isoformat().replace("+00:00", "Z")}
    assert {docs[i]["emotion"]["job_id"] for i in ids} == {"job-1"}
    assert await read_topic(settings.kafka, settings.kafka.topics.dlq(settings.kafka.topics.labels)) == []


async def test_concurrent_writers_of_the_same_documents_end_with_each_newest_label(
    settings: GatewaySettings, clean_index: None
) -> None:
    """Eight handlers (as eight replicas, or a zombie and its successor) write labels of random
    ages and the tweets to the same 20 documents at once, through the real store."""
    ids = [t.id for t in tweets(20)]
    rng = random.Random(15)
    produced = {i: [ORIGINAL + timedelta(seconds=rng.randrange(10_000)) for _ in range(8)] for i in ids}
    conflicts_before = REGISTRY.get_sample_value("gateway_bulk_errors_total", {"kind": "item_conflict"}) or 0
    store = TweetStore(settings.es_url)
    try:
        await ensure_indices(store, settings)

        async def replica(n: int) -> None:
            handler = IndexBatchHandler(store, settings.index, TOPICS, clock=lambda: datetime.now(UTC))
            batch = [labelled(emotion(i, produced_at=produced[i][n]), k) for k, i in enumerate(ids)]
            batch += [raw(i, len(ids) + k) for k, i in enumerate(ids) if k % 8 == n]
            rng.shuffle(batch)
            for _ in range(5):  # a batch whose conflicts outlast its rounds is retried, as the loop would
                try:
                    assert await handler(batch) == []
                    return
                except TransientError as exc:  # only "still conflict" may end up here
                    assert "still conflict" in str(exc)
            raise AssertionError("conflicts never settled")

        await asyncio.gather(*(replica(n) for n in range(8)))
    finally:
        await store.close()
    docs = await all_docs(settings)
    stored = {i: datetime.fromisoformat(docs[i]["emotion"]["produced_at"]) for i in ids}
    assert stored == {i: max(produced[i]) for i in ids}
    assert all(docs[i]["text"] for i in ids)  # and no creator lost another's fields
    conflicts = (
        REGISTRY.get_sample_value("gateway_bulk_errors_total", {"kind": "item_conflict"}) or 0
    ) - conflicts_before
    print(f"\nlabel writes that lost a race and were re-planned: {conflicts:.0f}")
    assert conflicts > 0, "the writers never raced: this test proved nothing"
