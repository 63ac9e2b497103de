"""The indexer's batch handler: ``tweets.raw`` and ``tweets.labels`` records → one bulk write,
and no other Elasticsearch call (the quality flags are judged where they are read).

Returns the dead letters for what could not be decoded or was rejected by Elasticsearch;
raises :class:`TransientError` (nothing committed, the batch is retried) when the cluster
is unreachable, overloaded or failing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from common.errors import PermanentError, TransientError
from common.events import decode_label, decode_tweet
from common.kafka import OutgoingMessage, dead_letter
from common.telemetry import TWEET_ID, span_context_from_headers
from common.topics import Topics
from gateway.indexer import logic
from gateway.indexer.logic import Outcome
from gateway.quality import VaderLexicon, lexicon_doc

log = logging.getLogger(__name__)
tracer = trace.get_tracer("gateway.indexer")
SERVICE = "gateway-indexer"
MAX_SPAN_LINKS = 128
BULK_SECONDS = Histogram("gateway_bulk_seconds", "Elasticsearch bulk request latency (answered requests)")
BULK_ERRORS = Counter("gateway_bulk_errors", "Bulk requests or items that failed", ["kind"])
FRESHNESS = Histogram(
    "pipeline_freshness_seconds",
    "Age when indexed: tweet = ingested → indexed, emotion/stance = label produced → indexed",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


class BulkWriter(Protocol):
    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...


class Lexicon(Protocol):
    model: str

    def compounds(self, texts: Sequence[str]) -> list[float]: ...


@dataclass
class IndexStats:
    indexed: int = 0
    dead_lettered: int = 0


@dataclass
class IndexBatchHandler:
    writer: BulkWriter
    index: str
    topics: Topics
    clock: Callable[[], datetime]
    stats: IndexStats = field(default_factory=IndexStats)
    lexicon: Lexicon = field(default_factory=VaderLexicon)

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        dead: list[OutgoingMessage] = []
        operations: list[dict[str, Any]] = []
        sources: list[ConsumerRecord] = []  # the record behind each pair of operations
        tweet_docs: list[dict[str, Any]] = []  # written with their lexicon score, filled in below
        now = self.clock()
        upstream = [span_context_from_headers(r.headers) for r in batch]
        # The batch span links to the traces that produced its messages (the ingest trace of a tweet).
        links = [trace.Link(c) for c in upstream if c.is_valid][:MAX_SPAN_LINKS]
        with tracer.start_as_current_span("gateway.index_batch", links=links) as span:
            span.set_attribute("messaging.batch.message_count", len(batch))
            index_trace_id = format(span.get_span_context().trace_id, "032x") if span.is_recording() else None
            # One span per message in the trace it came from, linked to the batch, so each
            # tweet's own trace shows when (and in which bulk) it was indexed.
            per_message = [
                tracer.start_span(
                    "gateway.index",
                    context=trace.set_span_in_context(trace.NonRecordingSpan(c)),
                    kind=trace.SpanKind.CONSUMER,
                    links=[trace.Link(span.get_span_context())],
                    attributes={
                        TWEET_ID: r.key.decode(errors="replace") if r.key else "",
                        "messaging.source.name": r.topic,
                        "messaging.kafka.offset": r.offset,
                    },
                )
                for r, c in zip(batch, upstream, strict=True)
                if c.is_valid
            ]
            for record, context in zip(batch, upstream, strict=True):
                header_trace_id = format(context.trace_id, "032x") if context.is_valid else None
                try:
                    operations += self._operations(record, now, header_trace_id, index_trace_id, tweet_docs)
                    sources.append(record)
                except PermanentError as exc:
                    dead.append(self._dead_letter(record, exc.reason, exc.detail))
            if tweet_docs:  # CPU work (~75 µs a tweet): off the event loop
                compounds = await asyncio.to_thread(self.lexicon.compounds, [d["text"] for d in tweet_docs])
                for doc, compound in zip(tweet_docs, compounds, strict=True):
                    doc["lexicon"] = lexicon_doc(compound, self.lexicon.model)
            try:
                rejected = await self._write(operations, sources) if operations else []
            finally:
                for message_span in per_message:
                    message_span.end()
        self.stats.indexed += len(sources) - len(rejected)
        self.stats.dead_lettered += len(dead) + len(rejected)
        return dead + rejected

    def _operations(
        self,
        record: ConsumerRecord,
        now: datetime,
        header_trace_id: str | None,
        index_trace_id: str | None,
        tweet_docs: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        if record.topic == self.topics.raw:
            tweet = decode_tweet(record.value)
            FRESHNESS.labels("tweet").observe(max(0.0, (now - tweet.ingested_at).total_seconds()))
            doc = logic.tweet_doc(tweet, indexed_at=now, ingest_trace_id=header_trace_id, index_trace_id=index_trace_id)
            tweet_docs.append(doc)
            return logic.tweet_operations(self.index, doc)
        if record.topic == self.topics.labels:
            event = decode_label(record.value)
            FRESHNESS.labels(event.task).observe(max(0.0, (now - event.produced_at).total_seconds()))
            label = logic.label_doc(event, header_trace_id=header_trace_id)
            return logic.label_operations(self.index, event.tweet_id, event.task, label)
        raise PermanentError("unexpected_topic", record.topic)

    async def _write(self, operations: list[dict[str, Any]], sources: list[ConsumerRecord]) -> list[OutgoingMessage]:
        try:
            with BULK_SECONDS.time():
                items = await self.writer.bulk(operations)
        except TransientError:
            BULK_ERRORS.labels("request").inc()
            raise
        if len(items) != len(sources):
            raise TransientError(f"bulk answered {len(items)} items for {len(sources)} actions")
        dead: list[OutgoingMessage] = []
        retry: list[str] = []
        for record, item in zip(sources, items, strict=True):
            result = logic.judge_bulk_item(item)
            if result.outcome is Outcome.RETRY:
                retry.append(f"{result.status} {result.reason[:200]}")
            elif result.outcome is Outcome.REJECTED:
                dead.append(self._dead_letter(record, "elasticsearch_rejected", result.reason))
        if dead:
            BULK_ERRORS.labels("item_rejected").inc(len(dead))
        if retry:
            BULK_ERRORS.labels("item_retry").inc(len(retry))
            # Re-sending the whole batch is safe: every write is an idempotent upsert by id.
            raise TransientError(f"{len(retry)} bulk items must be retried, first: {retry[0]}")
        return dead

    def _dead_letter(self, record: ConsumerRecord, reason: str, detail: str) -> OutgoingMessage:
        log.warning(
            "dead-lettering message",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "event_id": record.key.decode(errors="replace") if record.key is not None else None,
                "reason": reason,
                "detail": detail[:500],
            },
        )
        return dead_letter(record, SERVICE, PermanentError(reason, detail))
