"""Kafka plumbing shared by the services: clients with safe defaults, topic creation, and the
consume → process → publish → commit loop that gives at-least-once delivery.

Offsets are committed only after every message a batch produced has been acknowledged by
the brokers (acks=all, idempotent producer). A crash between publish and commit replays the
batch; downstream writes are idempotent (Elasticsearch ``_id`` = tweet id), so nothing is lost
and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, TopicAlreadyExistsError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from common.errors import PermanentError, TransientError
from common.events import DeadLetter
from common.metrics import BATCH_SIZE, CONSUMED, CONSUMER_LAG, DEAD_LETTERED, PRODUCED, RETRIES
from common.settings import KafkaSettings
from common.telemetry import TWEET_ID, extract_context, inject_headers
from common.topics import DLQ_SUFFIX, Topics

log = logging.getLogger(__name__)
tracer = trace.get_tracer("common.kafka")

Headers = list[tuple[str, bytes]]
_TRACE_HEADERS = {"traceparent", "tracestate", "baggage"}


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str | None
    value: bytes
    headers: Headers = field(default_factory=list)


def make_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=settings.request_timeout_ms,
    )


def make_consumer(
    settings: KafkaSettings, group_id: str, *topics: str, max_poll_records: int = 500
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        request_timeout_ms=settings.request_timeout_ms,
    )


async def ensure_topics(settings: KafkaSettings, topics: Sequence[str]) -> None:
    """Create topics explicitly (auto-creation would silently pick the broker's defaults)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        new = [NewTopic(t, settings.partitions, settings.replication_factor) for t in missing]
        # Another process may create one between list and create.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
        log.info("created topics", extra={"topics": missing, "partitions": settings.partitions})
    finally:
        await admin.close()


async def publish_all(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
    """Send every message and wait until the brokers acknowledged all of them.

    Each send is a producer span, child of the context the message's headers carry, and the
    headers are rewritten to carry that span on to the consumer.
    """
    futures = []
    for m in messages:
        with tracer.start_as_current_span(
            f"{m.topic} publish",
            context=extract_context(m.headers),
            kind=SpanKind.PRODUCER,
            attributes={TWEET_ID: m.key or "", "messaging.destination.name": m.topic},
        ):
            traced = [(k, v) for k, v in m.headers if k not in _TRACE_HEADERS] + inject_headers()
            futures.append(
                await producer.send(
                    m.topic, value=m.value, key=m.key.encode() if m.key is not None else None, headers=traced
                )
            )
    await asyncio.gather(*futures)


def dead_letter(record: ConsumerRecord, service: str, error: Exception) -> OutgoingMessage:
    """The ``<topic>.dlq`` message for a record that cannot be processed, with its reason."""
    reason = error.reason if isinstance(error, PermanentError) else type(error).__name__
    key = record.key.decode(errors="replace") if record.key is not None else None
    letter = DeadLetter(
        service=service,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key,
        value=(record.value or b"").decode(errors="replace"),
        reason=reason,
        error_class=type(error).__name__,
        detail=str(error)[:2000],
    )
    headers = [
        ("error-class", type(error).__name__.encode()),
        ("service", service.encode()),
        ("reason", reason.encode()),
        ("source-offset", f"{record.topic}:{record.partition}:{record.offset}".encode()),
    ]
    return OutgoingMessage(Topics().dlq(record.topic), key, letter.model_dump_json().encode(), headers)


BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[list[OutgoingMessage]]]


@dataclass
class BatchLoop:
    """Consume in batches, hand each batch to ``handle``, publish what it returns, then commit.

    ``handle`` raises :class:`TransientError` when a dependency is down: the batch is retried
    with capped exponential backoff while the assignment stays paused (the consumer keeps
    polling, so it is not evicted from its group), and nothing is committed meanwhile.
    Permanent failures are the handler's to turn into dead-letter messages.
    """

    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer | None
    handle: BatchHandler
    service: str = "unknown"  # the metrics label
    max_records: int = 64
    max_wait_ms: int = 200
    max_backoff_s: float = 30.0
    on_committed: Callable[[list[ConsumerRecord]], None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stopping.is_set():
            polled = await self.consumer.getmany(timeout_ms=self.max_wait_ms, max_records=self.max_records)
            batch = [record for records in polled.values() for record in records]
            if batch:
                await self._process(batch)

    async def _process(self, batch: list[ConsumerRecord]) -> None:
        BATCH_SIZE.labels(self.service).observe(len(batch))
        backoff = 0.5
        while True:
            try:
                outgoing = await self.handle(batch)
                if outgoing:
                    if self.producer is None:
                        raise RuntimeError("handler produced messages but the loop has no producer")
                    await publish_all(self.producer, outgoing)
                    self._count_outgoing(outgoing)
                break
            except TransientError as exc:
                if self.stopping.is_set():
                    return  # uncommitted: the batch is redelivered after restart
                RETRIES.labels(self.service).inc()
                log.warning("transient failure, retrying batch", extra={"error": str(exc), "retry_in_s": backoff})
                await self._idle(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        await self._commit(batch)
        for record in batch:
            CONSUMED.labels(self.service, record.topic).inc()
        if self.on_committed is not None:
            self.on_committed(batch)

    def _count_outgoing(self, outgoing: list[OutgoingMessage]) -> None:
        for message in outgoing:
            if message.topic.endswith(DLQ_SUFFIX):
                reason = dict(message.headers).get("reason", b"unknown").decode()
                DEAD_LETTERED.labels(self.service, message.topic, reason).inc()
            else:
                PRODUCED.labels(self.service, message.topic).inc()

    async def _idle(self, seconds: float) -> None:
        """Wait while still polling (paused), so the group does not evict this member."""
        assigned = self.consumer.assignment()
        self.consumer.pause(*assigned)
        try:
            await self.consumer.getmany(timeout_ms=int(seconds * 1000))
        finally:
            self.consumer.resume(*self.consumer.assignment())

    async def _commit(self, batch: list[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            await self.consumer.commit(offsets)
            for tp, offset in offsets.items():
                highwater = self.consumer.highwater(tp)
                if highwater is not None:
                    CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, highwater - offset))
        except CommitFailedError:
            # The group rebalanced while we worked: the new owner replays these records and
            # the idempotent downstream writes absorb the duplicates.
            log.warning("commit failed after rebalance; records will be replayed", extra={"offsets": len(offsets)})
