"""Wiring only: settings, model, Kafka clients, the batch loop, signals."""

from __future__ import annotations

import asyncio
import logging

from common.kafka import BatchLoop, ensure_topics, make_consumer, make_producer
from common.worker import run_worker
from emotion.handlers import EmotionHandler
from emotion.model import load_classifier
from emotion.settings import EmotionSettings

log = logging.getLogger("emotion")


async def run(settings: EmotionSettings, stopping: asyncio.Event | None = None) -> None:
    """Run the service until ``stopping`` is set (tests drive it in-process through this)."""
    classifier = await asyncio.to_thread(load_classifier, settings)
    topics = settings.kafka.topics
    await ensure_topics(settings.kafka, topics.all())
    consumer = make_consumer(
        settings.kafka,
        settings.kafka.group(settings.group_id),
        topics.raw,
        topics.requests("emotion"),
        max_poll_records=settings.batch_size,
    )
    producer = make_producer(settings.kafka, client_id=settings.group_id)
    await producer.start()
    await consumer.start()
    loop = BatchLoop(
        consumer=consumer,
        producer=producer,
        handle=EmotionHandler(classifier, topics.labels),
        max_records=settings.batch_size,
        max_wait_ms=settings.max_wait_ms,
        service="emotion",
        stopping=stopping or asyncio.Event(),
    )
    log.info("emotion service started", extra={"model": classifier.model_id, "topics": [topics.raw]})
    try:
        await loop.run()
    finally:
        await consumer.stop()
        await producer.stop()
        log.info("emotion service stopped")


def main() -> None:
    settings = EmotionSettings()
    run_worker("emotion", settings.telemetry, settings.metrics_port, lambda stopping: run(settings, stopping))
