"""The Kafka batch handler of every labelling service: tweets in, label events (and dead
letters) out.

Emotion and stance differ only in their model call, which they hand in as a :class:`Labeller`
returning one :class:`LabelResult` per tweet. Everything else is here, once: decoding and
dead-lettering what cannot be decoded, the job id and stance target a re-label request carries
in its headers, the batch span linked to every tweet's own trace, one label span per tweet in
that tweet's trace (so Jaeger follows a tweet from the ingestor through the labellers to the
indexer), and the label event itself: the highest score names the label.

An exception from ``infer`` propagates on purpose: the delivery loop bisects the batch down to
the tweet that makes the model fail (dead-lettered alone), and pauses and retries when every
tweet fails (a systemic failure: the API down, out of memory) instead of dead-lettering a
batch of healthy tweets. A per-tweet :class:`PermanentError` result dead-letters that tweet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from common.delivery import Subscription, group_loop
from common.errors import PermanentError
from common.events import (
    JOB_ID_HEADER,
    STANCE_TARGET_HEADER,
    TASK_LABELS,
    LabelEvent,
    TweetRecord,
    decode_tweet,
    header_text,
    top_label_event,
)
from common.kafka import OutgoingMessage, dead_letter, ensure_topics
from common.settings import KafkaSettings
from common.telemetry import TWEET_ID, current_trace_id, extract_context, inject_headers, upstream_links

log = logging.getLogger(__name__)

Task = Literal["emotion", "stance"]


@dataclass(frozen=True)
class LabelRequest:
    """One decoded tweet to label, and what its message asked for."""

    record: ConsumerRecord
    tweet: TweetRecord
    job_id: str | None  # set on the gateway's re-label requests
    target: str | None  # a re-label request's stance target, as sent; None: the service's default


@dataclass(frozen=True)
class LabelResult:
    """What a labeller found for one tweet: a score for each of the task's labels (the highest
    names the label) and the label event's fields that say how, named as in ``LabelEvent``; the
    handler adds the tweet, job and trace ids."""

    scores: Mapping[str, float]
    model: str
    model_revision: str | None = None
    provider: str | None = None
    prompt_version: str | None = None
    method: str | None = None
    target: str | None = None  # stance: what the stance is toward
    valence: float | None = None  # emotion


class Labeller(Protocol):
    """What a labelling service supplies: its model call."""

    @property
    def service(self) -> Task:
        """The task its label events carry; names the dead letters' source service and the tracer."""
        ...

    def span_attributes(self) -> Mapping[str, str]:
        """Model (and provider) attributes for the batch and label spans."""
        ...

    async def infer(self, requests: Sequence[LabelRequest]) -> Sequence[LabelResult | PermanentError]:
        """One result per request, in order, computed off the event loop."""
        ...


def label_request(record: ConsumerRecord) -> LabelRequest:
    """The request a message makes; raises :class:`PermanentError` when it is not a tweet."""
    return LabelRequest(
        record=record,
        tweet=decode_tweet(record.value),
        job_id=header_text(record.headers, JOB_ID_HEADER),
        target=header_text(record.headers, STANCE_TARGET_HEADER),
    )


@dataclass
class LabelHandler:
    labeller: Labeller
    labels_topic: str
    tracer: trace.Tracer | None = None  # default: the global provider's, named after the service

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        out: list[OutgoingMessage] = []
        requests: list[LabelRequest] = []
        for record in batch:
            try:
                requests.append(label_request(record))
            except PermanentError as exc:
                out.append(self._dead_letter(record, exc))
        if not requests:
            return out
        tracer = self.tracer or trace.get_tracer(self.labeller.service)
        attributes = dict(self.labeller.span_attributes())
        with tracer.start_as_current_span(
            f"{self.labeller.service} inference",
            links=upstream_links(r.record.headers for r in requests),
            attributes={"batch.size": len(requests), **attributes},
        ) as batch_span:
            results = await self.labeller.infer(requests)
        if len(results) != len(requests):
            raise RuntimeError(f"{self.labeller.service} returned {len(results)} results for {len(requests)} tweets")
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, PermanentError):
                out.append(self._dead_letter(request.record, result))
                continue
            record = request.record
            with tracer.start_as_current_span(
                f"{self.labeller.service} label",
                context=extract_context(record.headers),
                kind=SpanKind.CONSUMER,
                links=[Link(batch_span.get_span_context())],
                attributes={
                    TWEET_ID: request.tweet.id,
                    "messaging.source": record.topic,
                    "messaging.offset": record.offset,
                    **attributes,
                },
            ):
                event = self._label_event(request, result, current_trace_id())
                headers = inject_headers()
                # inside the span: the log line carries this tweet's trace id
                log.debug("labelled tweet",
                          extra={TWEET_ID: event.tweet_id, "label": event.label, "score": event.score})
            out.append(OutgoingMessage(self.labels_topic, event.tweet_id, event.model_dump_json().encode(), headers))
        return out

    def _label_event(self, request: LabelRequest, result: LabelResult, trace_id: str | None) -> LabelEvent:
        """The task's labels in order, scores rounded to 6 decimals within [0, 1]; the highest
        (the first of equals) is the label."""
        task = self.labeller.service
        scores = {label: min(1.0, max(0.0, round(result.scores[label], 6))) for label in TASK_LABELS[task]}
        described = {name: value for name, value in vars(result).items() if name != "scores"}
        return top_label_event(request.tweet.id, task, scores, job_id=request.job_id, trace_id=trace_id, **described)

    def _dead_letter(self, record: ConsumerRecord, error: PermanentError) -> OutgoingMessage:
        log.warning(
            "dead-lettering message",
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset,
                   "reason": error.reason},
        )
        return dead_letter(record, self.labeller.service, error)


async def serve_labels(
    kafka: KafkaSettings,
    handler: LabelHandler,
    *,
    group_id: str,
    batch_size: int,
    max_wait_ms: int,
    stopping: asyncio.Event | None,
    describe: Mapping[str, Any],
    alongside: contextlib.AbstractAsyncContextManager[Any] | None = None,
) -> None:
    """Consume ``tweets.raw`` and the service's re-label requests in the service's consumer
    group and publish label events with ``handler`` until ``stopping`` is set; ``alongside``
    (e.g. the stance API quota) runs for as long as the loop does."""
    service = handler.labeller.service
    topics = kafka.topics
    sources = [topics.raw, topics.requests(service)]
    await ensure_topics(kafka, topics.all())
    subscription = Subscription(
        service, kafka.group(group_id), sources, batch_size, max_wait_ms, transactional=kafka.transactions
    )
    loop = group_loop(kafka, subscription, handler, stopping=stopping)
    try:
        async with loop:
            log.info(f"{service} service started",
                     extra={**describe, "topics": sources, "transactions": loop.transactional})
            async with alongside or contextlib.nullcontext():
                await loop.run()
    finally:
        log.info(f"{service} service stopped")
