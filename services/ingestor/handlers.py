"""The replay loop: pull items from a source (off the event loop), validate them, and publish
tweets to ``tweets.raw`` and rejects to ``tweets.rejected`` in acknowledged batches.

``publish`` is any coroutine that returns once every message is acknowledged (Kafka's
``publish_all`` in production), so the loop holds no Kafka client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiolimiter import AsyncLimiter
from opentelemetry import trace

from common.events import RejectedRecord, TweetRecord
from common.kafka import OutgoingMessage
from common.metrics import PRODUCED, REJECTED
from common.telemetry import TWEET_ID, inject_headers
from common.topics import Topics
from ingestor.checkpoint import Cursor, Mark
from ingestor.logic import Outcome, ReplaySummary, SeenIds, SourceItem, duplicate, to_outcome
from ingestor.source import Idle, Source

log = logging.getLogger("ingestor")
tracer = trace.get_tracer("ingestor")
SERVICE = "ingestor"

Publish = Callable[[Sequence[OutgoingMessage]], Awaitable[None]]
ProgressCallback = Callable[[ReplaySummary, Source], None]
SaveCheckpoint = Callable[[Mark], None]


class IndexedIds(Protocol):
    """Which of these tweet ids are already indexed (``--skip-existing``; Elasticsearch in production)."""

    async def __call__(self, ids: Sequence[str]) -> set[str]: ...

LOGGED_REJECTS = 50  # every reject is on tweets.rejected; the log shows the first ones


@dataclass
class Chunk:
    items: list[tuple[SourceItem, Outcome]] = field(default_factory=list)
    marks: dict[int, Mark] = field(default_factory=dict)  # item index → the mark after it (-1: before all)
    idle: bool = False
    exhausted: bool = False


def take(source: Source, limit: int) -> Chunk:
    """Read and validate up to ``limit`` items; returns early when a continuous source idles."""
    chunk = Chunk()
    while len(chunk.items) < limit:
        item = next(source.items, None)
        if item is None:
            chunk.exhausted = True
            break
        if isinstance(item, Idle):
            chunk.idle = True
            break
        if isinstance(item, Mark):
            chunk.marks[len(chunk.items) - 1] = item
            continue
        chunk.items.append((item, to_outcome(item, source.adapter, source.name)))
    return chunk


@dataclass
class Replay:
    source: Source
    publish: Publish
    topics: Topics
    batch_size: int = 500
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
    summary: ReplaySummary = field(init=False)

    def __post_init__(self) -> None:
        self.summary = ReplaySummary(
            source=self.source.name, topics={"raw": self.topics.raw, "rejected": self.topics.rejected}
        )
        self._seen = SeenIds()
        self._batch: list[OutgoingMessage] = []
        self._limiter = _pacer(self.rate) if self.rate else None
        self._mark: Mark | None = None  # where to resume once the current batch is acknowledged
        self._consumed = self.skipped
        self._taken = 0  # items read from the source so far (ahead of those handled: prefetch)
        self._wanted = 0
        self._counts = Counter[str]()  # per-tweet counts, folded into the summary once per chunk
        # With no tracer provider configured, skip the per-tweet span and headers altogether.
        self._traced = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)

    async def run(self) -> ReplaySummary:
        started = time.monotonic()
        try:
            await self._loop()
            await self._flush()
        finally:
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
            await self._flush()
        self._fold_counts()
        if self.on_progress is not None:
            self.on_progress(self.summary, self.source)

    def _follows(self, mark: Mark) -> None:
        """``mark`` comes after the last item handled: save it now, or once its batch is acked."""
        if self._batch:
            self._mark = mark
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
                headers = []
                if self._traced:  # one trace per tweet, sampled by OTEL_TRACES_SAMPLER_RATIO
                    with tracer.start_as_current_span("ingestor.publish", attributes={TWEET_ID: outcome.id}):
                        headers = inject_headers()
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

    async def _flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        await self.publish(batch)
        self.summary.published += sum(1 for message in batch if message.topic == self.topics.raw)
        for message in batch:
            PRODUCED.labels(SERVICE, message.topic).inc()
        mark, self._mark = self._mark, None
        if mark is not None and self.on_checkpoint is not None:
            self.on_checkpoint(mark)  # only now: a crash before this line re-sends, never skips


def _pacer(rate: float) -> AsyncLimiter:
    """``rate`` per second in bursts of at most a tenth of a second (a full second would let a
    small file out in one burst)."""
    burst = max(1.0, rate / 10)
    return AsyncLimiter(burst, burst / rate)
