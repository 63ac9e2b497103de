"""The indexer process: ``python -m gateway.indexer``.

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

from common.errors import TransientError
from common.kafka import BatchLoop, ensure_topics, make_consumer, make_producer
from common.worker import run_worker
from gateway.handlers import SERVICE, IndexBatchHandler
from gateway.search import TweetSearch, make_client
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


async def _wait_for_index(search: TweetSearch, settings: GatewaySettings, stopping: asyncio.Event) -> bool:
    """Create the index, retrying with backoff while Elasticsearch is unavailable."""
    backoff = 0.5
    while not stopping.is_set():
        try:
            await search.ensure_indices(shards=settings.index_shards, replicas=settings.index_replicas)
            return True
        except TransientError as exc:
            log.warning("elasticsearch unavailable, retrying", extra={"error": str(exc), "retry_in_s": backoff})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff)
            backoff = min(backoff * 2, 30.0)
    return False


async def run_indexer(settings: GatewaySettings, stopping: asyncio.Event | None = None) -> None:
    """Run until ``stopping`` is set (or the task is cancelled); safe to restart at any point."""
    stopping = stopping or asyncio.Event()
    topics = settings.kafka.topics
    client = make_client(settings.es_url, settings.es_request_timeout_s)
    search = TweetSearch(client, settings.index, settings.jobs_index)
    try:
        if not await _wait_for_index(search, settings, stopping):
            return
        await ensure_topics(
            settings.kafka, [topics.raw, topics.labels, topics.dlq(topics.raw), topics.dlq(topics.labels)]
        )
        consumer = make_consumer(
            settings.kafka,
            settings.indexer_group_id,
            topics.raw,
            topics.labels,
            max_poll_records=settings.indexer_batch_size,
        )
        producer = make_producer(settings.kafka, client_id=settings.indexer_group_id)
        handler = IndexBatchHandler(search, settings.index, topics, clock=lambda: datetime.now(UTC))
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

        loop = BatchLoop(
            consumer,
            producer,
            handler,
            max_records=settings.indexer_batch_size,
            max_wait_ms=settings.indexer_max_wait_ms,
            service=SERVICE,
            on_committed=progress,
            stopping=stopping,
        )
        await producer.start()
        try:
            await consumer.start()
            try:
                log.info("indexer started", extra={"index": settings.index, "topics": [topics.raw, topics.labels]})
                await loop.run()
            finally:
                await consumer.stop()
                stats = handler.stats
                log.info("indexer stopped", extra={"indexed": stats.indexed, "dead_lettered": stats.dead_lettered})
        finally:
            await producer.stop()
    finally:
        await client.close()


def main() -> None:
    settings = GatewaySettings()
    run_worker(SERVICE, settings.telemetry, settings.metrics_port, lambda stopping: run_indexer(settings, stopping))


if __name__ == "__main__":
    main()
