"""Wiring of the indexer process (``python -m gateway.indexer``): settings, the store, the
delivery loop, signals.

Consumes ``tweets.raw`` and ``tweets.labels`` as consumer group ``gateway-indexer`` and
upserts into the tweets index. Offsets are committed only after Elasticsearch acknowledged
the bulk write (and the dead letters were acknowledged by Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from common.delivery import Subscription, group_loop
from common.errors import TransientError
from common.kafka import ensure_topics
from common.tweet_store import TweetStore
from common.worker import load_settings, run_worker
from gateway.documents import ensure_indices
from gateway.indexer.handlers import SERVICE, IndexBatchHandler
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


async def _wait_for_index(store: TweetStore, settings: GatewaySettings, stopping: asyncio.Event) -> bool:
    """Create the index, retrying with backoff while Elasticsearch is unavailable."""
    backoff = 0.5
    while not stopping.is_set():
        try:
            await ensure_indices(store, settings)
            return True
        except TransientError as exc:
            log.warning("elasticsearch unavailable, retrying", extra={"error": str(exc), "retry_in_s": backoff})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await stopping.wait()
            backoff = min(backoff * 2, 30.0)
    return False


async def run_indexer(settings: GatewaySettings, stopping: asyncio.Event | None = None) -> None:
    """Run until ``stopping`` is set (or the task is cancelled); safe to restart at any point."""
    stopping = stopping or asyncio.Event()
    topics = settings.kafka.topics
    store = TweetStore(settings.es_url, request_timeout_s=settings.es_request_timeout_s)
    try:
        if not await _wait_for_index(store, settings, stopping):
            return
        await ensure_topics(
            settings.kafka, [topics.raw, topics.labels, topics.dlq(topics.raw), topics.dlq(topics.labels)]
        )
        handler = IndexBatchHandler(store, settings.index, topics, clock=lambda: datetime.now(UTC))
        started = time.monotonic()

        def progress(batch: list[ConsumerRecord]) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            indexed = handler.stats.indexed
            log.debug(
                "batch committed",
                extra={
                    "records": len(batch),
                    "indexed": indexed,
                    "docs_per_s": round(indexed / elapsed, 1),
                },
            )

        # Elasticsearch writes cannot join a Kafka transaction: at least once, absorbed by
        # upserts keyed by tweet id. It reads labels read_committed like every consumer.
        subscription = Subscription(
            SERVICE,
            settings.indexer_group_id,
            [topics.raw, topics.labels],
            settings.indexer_batch_size,
            settings.indexer_max_wait_ms,
            transactional=False,
            linger_ms=settings.indexer_linger_ms,
        )
        loop = group_loop(settings.kafka, subscription, handler, stopping=stopping, on_committed=progress)
        async with loop:
            try:
                log.info("indexer started", extra={"index": settings.index, "topics": subscription.sources})
                await loop.run()
            finally:
                stats = handler.stats
                log.info("indexer stopped", extra={"indexed": stats.indexed, "dead_lettered": stats.dead_lettered})
    finally:
        await store.close()


def main() -> None:
    settings = load_settings(SERVICE, GatewaySettings)
    run_worker(SERVICE, settings.telemetry, settings.metrics_port, lambda stopping: run_indexer(settings, stopping))
