"""The replay loop: pull items from a source (off the event loop), validate them, and publish
tweets to ``tweets.raw`` and rejects to ``tweets.rejected`` in acknowledged batches.

The loop publishes through a :class:`Publisher`: anything whose ``publish`` returns once every
message is acknowledged (``publisher.KafkaPublisher`` in production, an in-memory one in the
tests), so it holds no Kafka client. Up to ``max_in_flight`` batches wait for their
acknowledgements while the next one is built; a batch counts as published, and its checkpoint is
saved, only once it and every batch before it are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiolimiter import AsyncLimiter
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from common.events import RejectedRecord, TweetRecord
from common.kafka import OutgoingMessage
from common.metrics import PRODUCED, REJECTED
from common.records import Outcome, SourceItem
from common.telemetry import TWEET_ID, configured_tracer, inject_headers
from common.topics import Topics
from ingestor.checkpoint import Cursor, Mark
from ingestor.logic import ReplaySummary, SeenIds, duplicate
from ingestor.settings import SERVICE
from ingestor.source import Chunk, Source, take

log = logging.getLogger(SERVICE)

ProgressCallback = Callable[[ReplaySummary, Source], None]
SaveCheckpoint = Callable[[Mark], None]


class Publisher(Protocol):
    """Where the loop sends its batches: ``publish`` returns once every message is acknowledged,
    and raises if they cannot be (``publisher.KafkaPublisher`` in production)."""

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None: ...


class IndexedIds(Protocol):
    """Which of these tweet ids are already indexed (``--skip-existing``; Elasticsearch in production)."""

    async def __call__(self, ids: Sequence[str]) -> set[str]: ...


LOGGED_REJECTS = 50  # every reject is on tweets.rejected; the log shows the first ones


@dataclass
class _InFlight:
    """A batch handed to the publisher whose acknowledgements are still awaited."""

    sending: asyncio.Future[None]
    batch: list[OutgoingMessage]
    mark: Mark | None  # the resume point once this batch (and those before it) is acknowledged


@dataclass
class Replay:
    source: Source
    publisher: Publisher
    topics: Topics
    batch_size: int = 500
    # Batches whose acknowledgements may be awaited at once: with 2, the next batch is validated
    # and handed to the producer while the broker acknowledges this one, instead of idling.
    max_in_flight: int = 2
    limit: int | None = None
    rate: float | None = None  # tweets per second
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    on_progress: ProgressCallback | None = None
    # Called with the resume point once everything before it is acknowledged by Kafka.
    on_checkpoint: SaveCheckpoint | None = None
    # Sources without marks (whole files): resume by counting items; ``skipped`` were sent before.
    count_items: bool = False
    skipped: int = 0
    indexed: IndexedIds | None = None
    # One span per tweet when set; by default the configured provider's, none when tracing is
    # off (no provider installed: no span and no header work at all).
    tracer: Tracer | None = field(default_factory=lambda: configured_tracer(SERVICE))
    summary: ReplaySummary = field(init=False)

    def __post_init__(self) -> None:
        self.summary = ReplaySummary(
            source=self.source.name, topics={"raw": self.topics.raw, "rejected": self.topics.rejected}
        )
        self._seen = SeenIds()
        self._batch: list[OutgoingMessage] = []
        self._in_flight: deque[_InFlight] = deque()
        self._limiter = _pacer(self.rate) if self.rate else None
        self._mark: Mark | None = None  # where to resume once the current batch is acknowledged
        self._consumed = self.skipped
        self._taken = 0  # items read from the source so far (ahead of those handled: prefetch)
        self._wanted = 0
        self._counts = Counter[str]()  # per-tweet counts, folded into the summary once per chunk

    async def run(self) -> ReplaySummary:
        started = time.monotonic()
        try:
            await self._loop()
            await self._flush(settle=True)
        finally:
            await self._abandon()
            self._fold_counts()
            self.summary.format = self.source.format
            self.summary.elapsed_s = round(time.monotonic() - started, 3)
            if self.summary.elapsed_s > 0:
                self.summary.rate_per_s = round(self.summary.read / self.summary.elapsed_s, 1)
        return self.summary

    def _read_ahead(self) -> asyncio.Task[Chunk] | None:
        """Parse and validate the next chunk in the reader thread (CPU-bound: off the loop the
        producer runs on) while this one is published and acknowledged."""
        wanted = self.batch_size if self.limit is None else min(self.batch_size, self.limit - self._taken)
        if wanted <= 0:
            return None
        self._taken += wanted  # reserved; what a short chunk did not use is given back
        self._wanted = wanted
        return asyncio.create_task(asyncio.to_thread(take, self.source, wanted))

    def _fold_counts(self) -> None:
        for name, value in self._counts.items():
            setattr(self.summary, name, getattr(self.summary, name) + value)
        self._counts.clear()

    async def _loop(self) -> None:
        ahead = self._read_ahead()
        try:
            while ahead is not None and not self.stopping.is_set():
                chunk = await ahead
                self._taken += len(chunk.items) - self._wanted
                ahead = None if chunk.exhausted else self._read_ahead()
                await self._handle(chunk)
                if chunk.exhausted:
                    return
        finally:
            if ahead is not None:  # stopped: the chunk read ahead is dropped, never published
                with contextlib.suppress(Exception):
                    await ahead

    async def _handle(self, chunk: Chunk) -> None:
        if -1 in chunk.marks:  # the mark of the previous chunk's last item
            self._follows(chunk.marks[-1])
        indexed = await self._already_indexed(chunk)
        for index, (item, outcome) in enumerate(chunk.items):
            if self._limiter is not None:
                if self._batch and not self._limiter.has_capacity():
                    await self._flush()  # send what we have instead of holding it while throttled
                await self._limiter.acquire()
            message = self._message(item, outcome, indexed)
            if message is not None:
                self._batch.append(message)
            self._consumed += 1
            mark = chunk.marks.get(index)
            if mark is None and self.count_items:
                mark = Mark(Cursor(0, self._consumed))
            if mark is not None:
                self._follows(mark)
            if len(self._batch) >= self.batch_size:
                await self._flush()
        if chunk.idle:
            await self._flush(settle=True)  # nothing more to send for now: checkpoint what is acked
        self._fold_counts()
        if self.on_progress is not None:
            self.on_progress(self.summary, self.source)

    def _follows(self, mark: Mark) -> None:
        """``mark`` comes after the last item handled: save it now, or once its batch is acked."""
        if self._batch:
            self._mark = mark
        elif self._in_flight:
            self._in_flight[-1].mark = mark
        elif self.on_checkpoint is not None:
            self.on_checkpoint(mark)

    async def _already_indexed(self, chunk: Chunk) -> set[str]:
        if self.indexed is None:
            return set()
        ids = [outcome.id for _, outcome in chunk.items if isinstance(outcome, TweetRecord)]
        return await self.indexed(ids) if ids else set()

    def _message(self, item: SourceItem, outcome: Outcome, indexed: set[str]) -> OutgoingMessage | None:
        summary, counts = self.summary, self._counts
        counts["read"] += 1
        if isinstance(outcome, TweetRecord):
            counts["valid"] += 1
            if self._seen.add(outcome.id):
                if outcome.id in indexed:
                    counts["already_indexed"] += 1  # --skip-existing: labelled before, no inference again
                    return None
                headers = publish_span(self.tracer, outcome.id, self.topics.raw) if self.tracer is not None else []
                return OutgoingMessage(self.topics.raw, outcome.id, outcome.model_dump_json().encode(), headers)
            counts["duplicates"] += 1
            outcome = duplicate(item, self.source.name, outcome)
        if item.error is not None and item.position.startswith(("record", "response")):
            # Only a broken JSON document yields an unparseable "record/response N": the rest is lost.
            summary.errors.append(f"{item.position}: {item.error}")
        summary.count_reject(outcome.reason)
        REJECTED.labels(SERVICE, outcome.reason).inc()
        if summary.rejected <= LOGGED_REJECTS:
            log.warning(
                "rejected record",
                extra={"position": outcome.position, "reason": outcome.reason, "source": outcome.source},
            )
        return self._reject_message(outcome)

    def _reject_message(self, rejected: RejectedRecord) -> OutgoingMessage:
        # Keyed by source so one file's rejects stay in order on one partition.
        value = rejected.model_dump_json().encode()
        return OutgoingMessage(self.topics.rejected, rejected.source, value, inject_headers())

    async def _flush(self, *, settle: bool = False) -> None:
        """Hand the batch to the publisher; then wait until at most ``max_in_flight - 1`` batches
        are unacknowledged (none with ``settle``)."""
        if self._batch:
            batch, self._batch = self._batch, []
            mark, self._mark = self._mark, None
            self._in_flight.append(_InFlight(asyncio.ensure_future(self.publisher.publish(batch)), batch, mark))
        keep = 0 if settle else max(0, self.max_in_flight - 1)
        while len(self._in_flight) > keep:
            await self._acknowledged(self._in_flight[0])
            self._in_flight.popleft()

    async def _acknowledged(self, sent: _InFlight) -> None:
        """Oldest first: a batch is counted, and its checkpoint saved, only after every batch
        before it was acknowledged too."""
        await sent.sending  # raises the publish failure
        per_topic = Counter(message.topic for message in sent.batch)
        self.summary.published += per_topic[self.topics.raw]
        for topic, count in per_topic.items():
            PRODUCED.labels(SERVICE, topic).inc(count)
        if sent.mark is not None and self.on_checkpoint is not None:
            self.on_checkpoint(sent.mark)  # only now: a crash before this line re-sends, never skips

    async def _abandon(self) -> None:
        """After a failure: stop waiting for the batches still in flight. They are neither
        counted nor checkpointed (a resume sends them again: at least once, never skipped)."""
        in_flight, self._in_flight = list(self._in_flight), deque()
        for sent in in_flight:
            sent.sending.cancel()
        if in_flight:  # retrieve their outcomes (cancelled or failed) so none is left unobserved
            await asyncio.gather(*(sent.sending for sent in in_flight), return_exceptions=True)


def publish_span(tracer: Tracer, tweet_id: str, topic: str) -> list[tuple[str, bytes]]:
    """Start and end one tweet's root span; returns the headers that carry its context.

    One trace per tweet, sampled by ``OTEL_TRACES_SAMPLER_RATIO`` (an unsampled tweet still
    carries its traceparent, flags 00, so every service keeps the decision). The span is the
    publish itself (kind PRODUCER): the producer adds no second span per tweet, which halved
    the tracing cost (span creation and OTLP encoding are most of it, bench/ingest_bench.py).
    It is never made current: nothing runs inside it, so attaching a context is wasted work.
    """
    span = tracer.start_span(
        "ingestor.publish",
        kind=SpanKind.PRODUCER,
        attributes={TWEET_ID: tweet_id, "messaging.destination.name": topic},
    )
    headers = inject_headers(trace.set_span_in_context(span))
    span.end()
    return headers


def _pacer(rate: float) -> AsyncLimiter:
    """``rate`` per second in bursts of at most a tenth of a second (a full second would let a
    small file out in one burst)."""
    burst = max(1.0, rate / 10)
    return AsyncLimiter(burst, burst / rate)
