"""The indexer's batch handler: ``tweets.raw`` and ``tweets.labels`` records → one bulk write,
preceded, when the batch holds labels, by one ``mget`` of their documents' label versions
(newest label wins: ``gateway.indexer.logic.plan``). A label write that lost a race to another
writer is re-read and re-planned, at most ``CONFLICT_ROUNDS`` times (one mget and one bulk each).

Returns the dead letters for what could not be decoded or was rejected by Elasticsearch for
the document's own sake (a mapping error); raises :class:`StoreUnavailable`, a
:class:`TransientError` (nothing committed, the batch is retried, nothing dead-lettered), when
the cluster refuses writes for a systemic reason, per request or per item: unreachable, auth,
a write block, read-only, overload, failure. The time so spent is ``gateway.indexer.blocking``'s.
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
from common.tweet_store import StoreUnavailable, Versioned
from gateway.indexer import logic
from gateway.indexer.blocking import BlockedTime
from gateway.indexer.logic import LabelWrite, Outcome
from gateway.quality import VaderLexicon, lexicon_doc

log = logging.getLogger(__name__)
tracer = trace.get_tracer("gateway.indexer")
SERVICE = "gateway-indexer"
MAX_SPAN_LINKS = 128
BULK_SECONDS = Histogram("gateway_bulk_seconds", "Elasticsearch bulk request latency (answered requests)")
BULK_ERRORS = Counter("gateway_bulk_errors", "Bulk requests or items that failed", ["kind"])
STALE_LABELS = Counter("gateway_stale_labels", "Label events not written: not newer than the stored or batched label")
CONFLICT_ROUNDS = 3  # re-reads after label writes lost a race, before the whole batch is retried
FRESHNESS = Histogram(
    "pipeline_freshness_seconds",
    "Age when indexed: tweet = ingested → indexed, emotion/stance = label produced → indexed",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


class Store(Protocol):
    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...

    async def versions(self, index: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Versioned]: ...


class Lexicon(Protocol):
    model: str

    def compounds(self, texts: Sequence[str]) -> list[float]: ...


@dataclass
class IndexStats:
    indexed: int = 0
    dead_lettered: int = 0
    stale: int = 0  # label events dropped: not newer than the stored label, or than another in their batch


@dataclass
class _Decoded:
    tweet_ops: list[dict[str, Any]] = field(default_factory=list)
    tweets: list[ConsumerRecord] = field(default_factory=list)  # the record behind each pair of tweet_ops
    tweet_docs: list[dict[str, Any]] = field(default_factory=list)  # written with their lexicon score
    labels: list[LabelWrite] = field(default_factory=list)


@dataclass
class IndexBatchHandler:
    writer: Store
    index: str
    topics: Topics
    clock: Callable[[], datetime]
    stats: IndexStats = field(default_factory=IndexStats)
    lexicon: Lexicon = field(default_factory=VaderLexicon)
    blocked: BlockedTime = field(default_factory=BlockedTime)

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        dead: list[OutgoingMessage] = []
        decoded = _Decoded()
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
            for position, (record, context) in enumerate(zip(batch, upstream, strict=True)):
                # Only a sampled trace is in Jaeger: an unsampled one's id would link to nothing.
                sampled = context.is_valid and context.trace_flags.sampled
                header_trace_id = format(context.trace_id, "032x") if sampled else None
                try:
                    self._decode(record, position, now, header_trace_id, index_trace_id, decoded)
                except PermanentError as exc:
                    dead.append(self._dead_letter(record, exc.reason, exc.detail))
            if decoded.tweet_docs:  # CPU work (~75 µs a tweet): off the event loop
                texts = [d["text"] for d in decoded.tweet_docs]
                compounds = await asyncio.to_thread(self.lexicon.compounds, texts)
                for doc, compound in zip(decoded.tweet_docs, compounds, strict=True):
                    doc["lexicon"] = lexicon_doc(compound, self.lexicon.model)
            try:
                rejected, stale = await self._write(batch, decoded) if decoded.tweets or decoded.labels else ([], 0)
            except StoreUnavailable as exc:
                self.blocked.refused(exc.reason, str(exc))
                raise
            finally:
                for message_span in per_message:
                    message_span.end()
        if decoded.tweets or decoded.labels:
            self.blocked.stored()
        STALE_LABELS.inc(stale)
        self.stats.stale += stale
        self.stats.indexed += len(decoded.tweets) + len(decoded.labels) - stale - len(rejected)
        self.stats.dead_lettered += len(dead) + len(rejected)
        return dead + rejected

    def _decode(
        self,
        record: ConsumerRecord,
        position: int,
        now: datetime,
        header_trace_id: str | None,
        index_trace_id: str | None,
        decoded: _Decoded,
    ) -> None:
        if record.topic == self.topics.raw:
            tweet = decode_tweet(record.value)
            FRESHNESS.labels("tweet").observe(max(0.0, (now - tweet.ingested_at).total_seconds()))
            doc = logic.tweet_doc(tweet, indexed_at=now, ingest_trace_id=header_trace_id, index_trace_id=index_trace_id)
            decoded.tweet_docs.append(doc)
            decoded.tweet_ops += logic.tweet_operations(self.index, doc)
            decoded.tweets.append(record)
        elif record.topic == self.topics.labels:
            event = decode_label(record.value)
            FRESHNESS.labels(event.task).observe(max(0.0, (now - event.produced_at).total_seconds()))
            label = logic.label_doc(event, header_trace_id=header_trace_id)
            decoded.labels.append(LabelWrite(event.tweet_id, event.task, event.produced_at, label, position))
        else:
            raise PermanentError("unexpected_topic", record.topic)

    async def _write(self, batch: list[ConsumerRecord], decoded: _Decoded) -> tuple[list[OutgoingMessage], int]:
        """Write the batch; (the dead letters of rejected documents, the label events dropped as stale)."""
        pending, older = logic.newest_per_task(decoded.labels)
        stale = len(older)
        dead: list[OutgoingMessage] = []
        for attempt in range(CONFLICT_ROUNDS + 1):
            ids = sorted({w.tweet_id for w in pending})
            stored = await self.writer.versions(self.index, ids, logic.VERSION_FIELDS) if ids else {}
            docs, dropped = logic.plan(self.index, pending, stored)
            stale += len(dropped)
            # Label writes first: the versions they were planned on must still be current.
            operations = [op for doc in docs for op in doc.operations]
            owners = [[batch[w.source] for w in doc.writes] for doc in docs]
            if attempt == 0:
                operations += decoded.tweet_ops
                owners += [[record] for record in decoded.tweets]
            if not operations:
                return dead, stale
            items = await self._bulk(operations, len(owners))
            pending, retry, blocked = [], [], ""
            for position, (records, item) in enumerate(zip(owners, items, strict=True)):
                result = logic.judge_bulk_item(item)
                if result.outcome is Outcome.CONFLICT and position < len(docs):
                    pending += docs[position].writes  # lost a race: re-read, re-plan
                elif result.outcome in (Outcome.RETRY, Outcome.CONFLICT):
                    retry.append(f"{result.status} {result.reason[:200]}")
                    blocked = blocked or result.blocked
                elif result.outcome is Outcome.REJECTED:
                    BULK_ERRORS.labels("item_rejected").inc()
                    dead += [self._dead_letter(r, "elasticsearch_rejected", result.reason) for r in records]
            if retry:
                BULK_ERRORS.labels("item_retry").inc(len(retry))
                # Re-sending the whole batch is safe: tweet upserts are idempotent, label writes conditional.
                message = f"{len(retry)} bulk items must be retried, first: {retry[0]}"
                raise StoreUnavailable(blocked, message) if blocked else TransientError(message)
            if not pending:
                return dead, stale
            BULK_ERRORS.labels("item_conflict").inc(len(pending))
        raise TransientError(f"{len(pending)} label writes still conflict after {CONFLICT_ROUNDS} re-reads")

    async def _bulk(self, operations: list[dict[str, Any]], actions: int) -> list[dict[str, Any]]:
        try:
            with BULK_SECONDS.time():
                items = await self.writer.bulk(operations)
        except TransientError:
            BULK_ERRORS.labels("request").inc()
            raise
        if len(items) != actions:
            raise TransientError(f"bulk answered {len(items)} items for {actions} actions")
        return items

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
