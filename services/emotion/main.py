"""Wiring only: settings, model, the label loop, signals."""

from __future__ import annotations

import asyncio

from common.labelling import serve_labels
from common.worker import load_settings, run_worker
from emotion.handlers import emotion_handler
from emotion.logic import valence_map_for
from emotion.model import load_classifier
from emotion.settings import EmotionSettings


async def run(settings: EmotionSettings, stopping: asyncio.Event | None = None) -> None:
    """Run the service until ``stopping`` is set (tests drive it in-process through this)."""
    classifier = await asyncio.to_thread(load_classifier, settings)
    await serve_labels(
        settings.kafka,
        emotion_handler(classifier, settings.kafka.topics.labels),
        group_id=settings.group_id,
        batch_size=settings.batch_size,
        max_wait_ms=settings.max_wait_ms,
        stopping=stopping,
        describe={"model": classifier.model_id, "revision": classifier.revision,
                  "valence_map": valence_map_for(classifier).name},
    )


def main() -> None:
    settings = load_settings("emotion", EmotionSettings)
    run_worker("emotion", settings.telemetry, settings.metrics_port, lambda stopping: run(settings, stopping))
