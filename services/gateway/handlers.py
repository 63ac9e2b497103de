"""The indexer's batch handler: ``tweets.raw`` and ``tweets.labels`` records → one bulk write.

Returns the dead letters for what could not be decoded or was rejected by Elasticsearch;
raises :class:`TransientError` (nothing committed, the batch is retried) when the cluster
is unreachable, overloaded or failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from opentelemetry import trace
from prometheus_client import Histogram

from common.errors import PermanentError, TransientError
from common.events import DeadLetter
from common.kafka import OutgoingMessage
from common.metrics import DEAD_LETTERED
from common.topics import Topics
from gateway import logic
from gateway.logic import Outcome

log = logging.getLogger(__name__)
tracer = trace.get_tracer("gateway.indexer")
SERVICE = "gateway-indexer"
MAX_SPAN_LINKS = 128
BULK_SECONDS = Histogram("gateway_bulk_seconds", "Elasticsearch bulk request latency (answered requests)")


class BulkWriter(Protocol):
    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...


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

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        dead: list[OutgoingMessage] = []
        operations: list[dict[str, Any]] = []
        sources: list[ConsumerRecord] = []  # the record behind each pair of operations
        now = self.clock()
        upstream = [logic.span_context_from_headers(r.headers) for r in batch]
        # The batch span links to the traces that produced its messages (the ingest trace of a tweet).
        links = [trace.Link(c) for c in upstream if c.is_valid][:MAX_SPAN_LINKS]
        with tracer.start_as_current_span("gateway.index_batch", links=links) as span:
            span.set_attribute("messaging.batch.message_count", len(batch))
            index_trace_id = format(span.get_span_context().trace_id, "032x") if span.is_recording() else None
            for record, context in zip(batch, upstream, strict=True):
                header_trace_id = format(context.trace_id, "032x") if context.is_valid else None
                try:
                    operations += self._operations(record, now, header_trace_id, index_trace_id)
                    sources.append(record)
                except PermanentError as exc:
                    dead.append(self._dead_letter(record, exc.reason, exc.detail, type(exc).__name__))
            rejected = await self._write(operations, sources) if operations else []
        self.stats.indexed += len(sources) - len(rejected)
        self.stats.dead_lettered += len(dead) + len(rejected)
        return dead + rejected

    def _operations(
        self, record: ConsumerRecord, now: datetime, header_trace_id: str | None, index_trace_id: str | None
    ) -> list[dict[str, Any]]:
        if record.topic == self.topics.raw:
            tweet = logic.decode_tweet(record.value)
            doc = logic.tweet_doc(tweet, indexed_at=now, ingest_trace_id=header_trace_id, index_trace_id=index_trace_id)
            return logic.tweet_operations(self.index, doc)
        if record.topic == self.topics.labels:
            event = logic.decode_label(record.value)
            label = logic.label_doc(event, header_trace_id=header_trace_id)
            return logic.label_operations(self.index, event.tweet_id, event.task, label)
        raise PermanentError("unexpected_topic", record.topic)

    async def _write(self, operations: list[dict[str, Any]], sources: list[ConsumerRecord]) -> list[OutgoingMessage]:
        with BULK_SECONDS.time():
            items = await self.writer.bulk(operations)
        if len(items) != len(sources):
            raise TransientError(f"bulk answered {len(items)} items for {len(sources)} actions")
        dead: list[OutgoingMessage] = []
        retry: list[str] = []
        for record, item in zip(sources, items, strict=True):
            result = logic.judge_bulk_item(item)
            if result.outcome is Outcome.RETRY:
                retry.append(f"{result.status} {result.reason[:200]}")
            elif result.outcome is Outcome.REJECTED:
                dead.append(self._dead_letter(record, "elasticsearch_rejected", result.reason, "BulkItemError"))
        if retry:
            # Re-sending the whole batch is safe: every write is an idempotent upsert by id.
            raise TransientError(f"{len(retry)} bulk items must be retried, first: {retry[0]}")
        return dead

    def _dead_letter(self, record: ConsumerRecord, reason: str, detail: str, error_class: str) -> OutgoingMessage:
        key = record.key.decode(errors="replace") if record.key is not None else None
        value = record.value.decode(errors="replace") if record.value is not None else ""
        DEAD_LETTERED.labels(SERVICE, record.topic, reason).inc()
        log.warning(
            "dead-lettering message",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "event_id": key,
                "reason": reason,
                "detail": detail[:500],
            },
        )
        letter = DeadLetter(
            service=SERVICE,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
            value=value,
            reason=reason,
            error_class=error_class,
            detail=detail,
        )
        headers = [
            ("error-class", error_class.encode()),
            ("service", SERVICE.encode()),
            ("source-offset", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ]
        return OutgoingMessage(self.topics.dlq(record.topic), key, letter.model_dump_json().encode(), headers)
