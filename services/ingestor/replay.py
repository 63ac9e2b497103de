"""The replay loop: pull verdicts from a reader (validated, repeats rejected, serialised, off the
event loop: ``reader``), and publish tweets to ``tweets.raw`` and rejects to ``tweets.rejected``
in acknowledged batches, in read order.

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
from opentelemetry.trace import SpanKind, Tracer

from common.kafka import OutgoingMessage
from common.metrics import PRODUCED, REJECTED
from common.telemetry import TWEET_ID, HeadSampler, configured_tracer, inject_headers, root_headers
from common.topics import Topics
from ingestor.checkpoint import Cursor, Mark
from ingestor.logic import Reject, ReplaySummary, Verdict, Verdicts
from ingestor.reader import Reader
from ingestor.settings import SERVICE
from ingestor.source import Source

log = logging.getLogger(SERVICE)

ProgressCallback = Callable[[ReplaySummary, Reader], None]
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
    source: Source | Reader  # a Source is read in a worker thread (``reader.Reader``)
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
    # One span per sampled tweet when set; by default the configured provider's, none when tracing
    # is off (no provider installed: no span and no header work at all).
    tracer: Tracer | None = field(default_factory=lambda: configured_tracer(SERVICE))
    # The share of tweets traced (OTEL_TRACES_SAMPLER_RATIO), decided here before any span: an
    # unsampled tweet gets only its traceparent (see ``common.telemetry.HeadSampler``).
    sample_ratio: float = 1.0
    summary: ReplaySummary = field(init=False)

    def __post_init__(self) -> None:
        self.reader = Reader(self.source) if isinstance(self.source, Source) else self.source
        self._raw, self._rejected = self.topics.raw, self.topics.rejected
        self.summary = ReplaySummary(source=self.reader.name, topics={"raw": self._raw, "rejected": self._rejected})
        self._heads = HeadSampler(self.sample_ratio)
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
            self.summary.format = self.reader.format
            self.summary.elapsed_s = round(time.monotonic() - started, 3)
            if self.summary.elapsed_s > 0:
                self.summary.rate_per_s = round(self.summary.read / self.summary.elapsed_s, 1)
        return self.summary

    def _read_ahead(self) -> asyncio.Task[Verdicts] | None:
        """Read and judge the next chunk in the reader (CPU-bound: off the loop the producer runs
        on) while this one is published and acknowledged."""
        wanted = self.batch_size if self.limit is None else min(self.batch_size, self.limit - self._taken)
        if wanted <= 0:
            return None
        self._taken += wanted  # reserved; what a short chunk did not use is given back
        self._wanted = wanted
        return asyncio.create_task(self.reader.next(wanted))

    def _fold_counts(self) -> None:
        for name, value in self._counts.items():
            setattr(self.summary, name, getattr(self.summary, name) + value)
        self._counts.clear()

    async def _loop(self) -> None:
        ahead = self._read_ahead()
        try:
            while ahead is not None and not self.stopping.is_set():
                chunk = await ahead
                self._taken += len(chunk.entries) - self._wanted
                ahead = None if chunk.exhausted else self._read_ahead()
                await self._handle(chunk)
                if chunk.exhausted:
                    return
        finally:
            if ahead is not None:  # stopped: the chunk read ahead is dropped, never published
                with contextlib.suppress(Exception):
                    await ahead

    async def _handle(self, chunk: Verdicts) -> None:
        marks = chunk.marks
        if -1 in marks:  # the mark of the previous chunk's last item
            self._follows(marks[-1])
        indexed = await self._already_indexed(chunk)
        marked = bool(marks) or self.count_items
        for index, verdict in enumerate(chunk.entries):
            if self._limiter is not None:
                if self._batch and not self._limiter.has_capacity():
                    await self._flush()  # send what we have instead of holding it while throttled
                await self._limiter.acquire()
            message = self._message(verdict, indexed)
            if message is not None:
                self._batch.append(message)
            self._consumed += 1
            if marked:
                mark = marks.get(index)
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
            self.on_progress(self.summary, self.reader)

    def _follows(self, mark: Mark) -> None:
        """``mark`` comes after the last item handled: save it now, or once its batch is acked."""
        if self._batch:
            self._mark = mark
        elif self._in_flight:
            self._in_flight[-1].mark = mark
        elif self.on_checkpoint is not None:
            self.on_checkpoint(mark)

    async def _already_indexed(self, chunk: Verdicts) -> set[str]:
        if self.indexed is None:
            return set()
        ids = [verdict[0] for verdict in chunk.entries if not isinstance(verdict, Reject)]
        return await self.indexed(ids) if ids else set()

    def _message(self, verdict: Verdict, indexed: set[str]) -> OutgoingMessage | None:
        counts = self._counts
        counts["read"] += 1
        if not isinstance(verdict, Reject):
            counts["valid"] += 1
            tweet_id, payload, key_hash = verdict
            if tweet_id in indexed:
                counts["already_indexed"] += 1  # --skip-existing: labelled before, no inference again
                return None
            return OutgoingMessage(self._raw, tweet_id, payload, self._tweet_headers(tweet_id), key_hash)
        if verdict.duplicate:
            counts["valid"] += 1
            counts["duplicates"] += 1
        summary = self.summary
        if verdict.stream_error is not None:
            summary.errors.append(verdict.stream_error)
        summary.count_reject(verdict.reason)
        REJECTED.labels(SERVICE, verdict.reason).inc()
        if summary.rejected <= LOGGED_REJECTS:
            where = {"position": verdict.position, "reason": verdict.reason, "source": summary.source}
            log.warning("rejected record", extra=where)
        # Keyed by source so one file's rejects stay in order on one partition.
        return OutgoingMessage(self._rejected, summary.source, verdict.value, self._reject_headers())

    def _tweet_headers(self, tweet_id: str) -> list[tuple[str, bytes]]:
        """None with tracing off; an unsampled tweet only its traceparent; a sampled one its root span."""
        if self.tracer is None:
            return []
        return self._heads.unsampled() or publish_span(self.tracer, tweet_id, self._raw)

    def _reject_headers(self) -> list[tuple[str, bytes]]:
        """A reject's trace: sampled, none yet (the publisher's producer span roots it), else its
        traceparent (flags 00); with tracing off, the current context's (none in the ingestor)."""
        if self.tracer is None:
            return inject_headers()
        return self._heads.unsampled() or []

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
        self.summary.published += per_topic[self._raw]
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

    One trace per tweet the replay's ``HeadSampler`` sampled (``OTEL_TRACES_SAMPLER_RATIO``; an
    unsampled tweet gets only its traceparent, flags 00, and no span at all). The span is the
    publish itself (kind PRODUCER): the producer adds no second span per tweet, which halved
    the tracing cost (span creation and OTLP encoding are most of it, bench/ingest_bench.py).
    It is never made current: nothing runs inside it, so attaching a context is wasted work,
    and its headers are formatted directly (``root_headers``) rather than by the propagators.
    """
    span = tracer.start_span(
        "ingestor.publish",
        kind=SpanKind.PRODUCER,
        attributes={TWEET_ID: tweet_id, "messaging.destination.name": topic},
    )
    span.end()
    return root_headers(span.get_span_context())


def _pacer(rate: float) -> AsyncLimiter:
    """``rate`` per second in bursts of at most a tenth of a second (a full second would let a
    small file out in one burst)."""
    burst = max(1.0, rate / 10)
    return AsyncLimiter(burst, burst / rate)
