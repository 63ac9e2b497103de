"""Wiring only: settings, model, Kafka clients, the batch loop, signals."""

from __future__ import annotations

import asyncio
import logging

from common.delivery import group_loop
from common.kafka import ensure_topics
from common.worker import load_settings, run_worker
from emotion.handlers import EmotionHandler
from emotion.logic import valence_map_for
from emotion.model import load_classifier
from emotion.settings import EmotionSettings

log = logging.getLogger("emotion")


async def run(settings: EmotionSettings, stopping: asyncio.Event | None = None) -> None:
    """Run the service until ``stopping`` is set (tests drive it in-process through this)."""
    classifier = await asyncio.to_thread(load_classifier, settings)
    topics = settings.kafka.topics
    await ensure_topics(settings.kafka, topics.all())
    sources = [topics.raw, topics.requests("emotion")]
    loop = group_loop(
        settings.kafka,
        settings.kafka.group(settings.group_id),
        sources,
        EmotionHandler(classifier, topics.labels),
        service="emotion",
        batch_size=settings.batch_size,
        max_wait_ms=settings.max_wait_ms,
        transactional=settings.kafka.transactions,
        stopping=stopping,
    )
    try:
        async with loop:
            log.info(
                "emotion service started",
                extra={
                    "model": classifier.model_id,
                    "revision": classifier.revision,
                    "valence_map": valence_map_for(classifier).name,
                    "topics": sources,
                    "transactions": loop.transactional,
                },
            )
            await loop.run()
    finally:
        log.info("emotion service stopped")


def main() -> None:
    settings = load_settings("emotion", EmotionSettings)
    run_worker("emotion", settings.telemetry, settings.metrics_port, lambda stopping: run(settings, stopping))
