"""Emotion's part of the Kafka batch handler (``common.labelling.LabelHandler``): one batched
classifier call off the event loop; each tweet's scores normalised, with their valence."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import Histogram

from common.labelling import LabelHandler, LabelRequest, LabelResult, Task
from emotion.logic import normalise_scores, valence_map_for
from emotion.model import EmotionClassifier

SERVICE: Task = "emotion"
INFERENCE_SECONDS = Histogram(
    "emotion_inference_seconds",
    "Wall time of one batched inference call",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass
class EmotionLabeller:
    classifier: EmotionClassifier
    service: Task = SERVICE

    def span_attributes(self) -> Mapping[str, str]:
        return {"model": self.classifier.model_id}

    async def infer(self, requests: Sequence[LabelRequest]) -> list[LabelResult]:
        with INFERENCE_SECONDS.labels(self.classifier.model_id).time():
            rows = await asyncio.to_thread(self.classifier.classify, [r.tweet.text for r in requests])
        valence_map = valence_map_for(self.classifier)
        model, revision = self.classifier.model_id, self.classifier.revision
        results = []
        for row in rows:
            scores = normalise_scores(row)
            # the row may carry the classifier's own sentiment beside the scores (SENTIMENT_KEYS)
            valence = valence_map.valence({**row, **scores})
            results.append(LabelResult(scores, model, model_revision=revision, valence=valence))
        return results


def emotion_handler(classifier: EmotionClassifier, labels_topic: str) -> LabelHandler:
    return LabelHandler(EmotionLabeller(classifier), labels_topic)
