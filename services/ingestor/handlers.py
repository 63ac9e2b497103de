"""The replay loop: pull items from a source (off the event loop), validate them, and publish
tweets to ``tweets.raw`` and rejects to ``tweets.rejected`` in acknowledged batches.

``publish`` is any coroutine that returns once every message is acknowledged (Kafka's
``publish_all`` in production), so the loop holds no Kafka client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter
from opentelemetry import trace

from common.events import RejectedRecord, TweetRecord
from common.kafka import OutgoingMessage
from common.metrics import PRODUCED, REJECTED
from common.telemetry import TWEET_ID, inject_headers
from common.topics import Topics
from ingestor.logic import Outcome, ReplaySummary, SeenIds, SourceItem, duplicate, to_outcome
from ingestor.source import Idle, Source

log = logging.getLogger("ingestor")
tracer = trace.get_tracer("ingestor")
SERVICE = "ingestor"

Publish = Callable[[Sequence[OutgoingMessage]], Awaitable[None]]
ProgressCallback = Callable[[ReplaySummary, Source], None]
LOGGED_REJECTS = 50  # every reject is on tweets.rejected; the log shows the first ones


@dataclass
class Chunk:
    items: list[tuple[SourceItem, Outcome]] = field(default_factory=list)
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
    summary: ReplaySummary = field(init=False)

    def __post_init__(self) -> None:
        self.summary = ReplaySummary(
            source=self.source.name, topics={"raw": self.topics.raw, "rejected": self.topics.rejected}
        )
        self._seen = SeenIds()
        self._batch: list[OutgoingMessage] = []
        self._limiter = _pacer(self.rate) if self.rate else None

    async def run(self) -> ReplaySummary:
        started = time.monotonic()
        try:
            await self._loop()
            await self._flush()
        finally:
            self.summary.format = self.source.format
            self.summary.elapsed_s = round(time.monotonic() - started, 3)
            if self.summary.elapsed_s > 0:
                self.summary.rate_per_s = round(self.summary.read / self.summary.elapsed_s, 1)
        return self.summary

    async def _loop(self) -> None:
        while not self.stopping.is_set():
            wanted = self.batch_size if self.limit is None else min(self.batch_size, self.limit - self.summary.read)
            if wanted <= 0:
                return
            # Parsing and validation are CPU-bound: keep them off the loop the producer runs on.
            chunk = await asyncio.to_thread(take, self.source, wanted)
            for item, outcome in chunk.items:
                if self._limiter is not None:
                    if self._batch and not self._limiter.has_capacity():
                        await self._flush()  # send what we have instead of holding it while throttled
                    await self._limiter.acquire()
                self._batch.append(self._message(item, outcome))
                if len(self._batch) >= self.batch_size:
                    await self._flush()
            if chunk.idle:
                await self._flush()
            if self.on_progress is not None:
                self.on_progress(self.summary, self.source)
            if chunk.exhausted:
                return

    def _message(self, item: SourceItem, outcome: Outcome) -> OutgoingMessage:
        summary = self.summary
        summary.read += 1
        if isinstance(outcome, TweetRecord):
            summary.valid += 1
            if self._seen.add(outcome.id):
                with tracer.start_as_current_span("ingestor.publish", attributes={TWEET_ID: outcome.id}):
                    headers = inject_headers()
                return OutgoingMessage(self.topics.raw, outcome.id, outcome.model_dump_json().encode(), headers)
            summary.duplicates += 1
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


def _pacer(rate: float) -> AsyncLimiter:
    """``rate`` per second in bursts of at most a tenth of a second (a full second would let a
    small file out in one burst)."""
    burst = max(1.0, rate / 10)
    return AsyncLimiter(burst, burst / rate)
