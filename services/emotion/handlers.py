"""Batch in → label events (and dead letters) out. The only async step is inference off-loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from prometheus_client import Histogram

from common.errors import PermanentError
from common.events import TweetRecord
from common.kafka import OutgoingMessage, dead_letter
from common.telemetry import TWEET_ID, current_trace_id, extract_context, inject_headers
from emotion.logic import build_label_events, decode_tweet, valence_map_for
from emotion.model import EmotionClassifier

log = logging.getLogger(__name__)
tracer = trace.get_tracer("emotion")

SERVICE = "emotion"
INFERENCE_SECONDS = Histogram(
    "emotion_inference_seconds",
    "Wall time of one batched inference call",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass
class EmotionHandler:
    classifier: EmotionClassifier
    labels_topic: str

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        out: list[OutgoingMessage] = []
        accepted: list[tuple[ConsumerRecord, TweetRecord]] = []
        for record in batch:
            try:
                accepted.append((record, decode_tweet(record.value)))
            except PermanentError as exc:
                log.warning(
                    "dead-lettering undecodable message",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "reason": exc.reason,
                    },
                )
                out.append(dead_letter(record, SERVICE, exc))
        if not accepted:
            return out
        rows, batch_span = await self._classify(accepted)
        out.extend(self._label_messages(accepted, rows, batch_span))
        return out

    async def _classify(
        self, accepted: Sequence[tuple[ConsumerRecord, TweetRecord]]
    ) -> tuple[list[dict[str, float]], trace.SpanContext]:
        """One inference call for the batch. An exception propagates on purpose: the delivery
        loop bisects the batch down to the tweet that makes the model fail (dead-lettered
        alone), and retries with backoff when every tweet fails (a systemic failure such as
        out of memory), instead of dead-lettering a whole batch of healthy tweets."""
        links = [Link(trace.get_current_span(extract_context(r.headers)).get_span_context()) for r, _ in accepted]
        texts = [t.text for _, t in accepted]
        with tracer.start_as_current_span(
            "emotion inference",
            links=links,
            attributes={"batch.size": len(texts), "model": self.classifier.model_id},
        ) as batch_span:
            with INFERENCE_SECONDS.labels(self.classifier.model_id).time():
                rows = await asyncio.to_thread(self.classifier.classify, texts)
            return rows, batch_span.get_span_context()

    def _label_messages(
        self,
        labelled: Sequence[tuple[ConsumerRecord, TweetRecord]],
        scores: Sequence[dict[str, float]],
        batch_span: trace.SpanContext,
    ) -> list[OutgoingMessage]:
        messages = []
        for (record, tweet), row in zip(labelled, scores, strict=True):
            job = dict(record.headers or ()).get("job-id")
            with tracer.start_as_current_span(
                "emotion label",
                context=extract_context(record.headers),
                kind=SpanKind.CONSUMER,
                links=[Link(batch_span)],
                attributes={
                    TWEET_ID: tweet.id,
                    "model": self.classifier.model_id,
                    "messaging.source": record.topic,
                    "messaging.offset": record.offset,
                },
            ):
                [event] = build_label_events(
                    [tweet],
                    [row],
                    model=self.classifier.model_id,
                    revision=self.classifier.revision,
                    job_ids=[job.decode() if job else None],
                    trace_ids=[current_trace_id()],
                    valence_map=valence_map_for(self.classifier),
                )
                headers = inject_headers()
                log.debug("labelled tweet", extra={TWEET_ID: tweet.id, "label": event.label, "score": event.score})
            messages.append(OutgoingMessage(self.labels_topic, tweet.id, event.model_dump_json().encode(), headers))
        return messages
