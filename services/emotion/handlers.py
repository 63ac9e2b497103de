"""Emotion's part of the Kafka batch handler (``common.labelling.LabelHandler``): one batched
classifier call off the event loop, and the label mapping."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import Histogram

from common.events import LabelEvent
from common.labelling import LabelHandler, LabelRequest
from emotion.logic import build_label_event, valence_map_for
from emotion.model import EmotionClassifier

SERVICE = "emotion"
INFERENCE_SECONDS = Histogram(
    "emotion_inference_seconds",
    "Wall time of one batched inference call",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass
class EmotionLabeller:
    classifier: EmotionClassifier
    service: str = SERVICE

    def span_attributes(self) -> Mapping[str, str]:
        return {"model": self.classifier.model_id}

    async def infer(self, requests: Sequence[LabelRequest]) -> list[dict[str, float]]:
        with INFERENCE_SECONDS.labels(self.classifier.model_id).time():
            return await asyncio.to_thread(self.classifier.classify, [r.tweet.text for r in requests])

    def label_event(self, request: LabelRequest, result: dict[str, float], trace_id: str | None) -> LabelEvent:
        return build_label_event(
            request.tweet,
            result,
            model=self.classifier.model_id,
            revision=self.classifier.revision,
            job_id=request.job_id,
            trace_id=trace_id,
            valence_map=valence_map_for(self.classifier),
        )


def emotion_handler(classifier: EmotionClassifier, labels_topic: str) -> LabelHandler[dict[str, float]]:
    return LabelHandler(EmotionLabeller(classifier), labels_topic)
