"""Kafka plumbing shared by the services: clients with safe defaults, topic creation,
publishing and dead letters. The consume → process → deliver → commit loop is
:mod:`common.delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from common.errors import PermanentError
from common.events import DeadLetter
from common.fencing import rebalance_timeout_ms
from common.settings import KafkaSettings
from common.telemetry import TWEET_ID, extract_context, inject_headers
from common.topics import Topics

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
    # The key's partitioner hash when computed ahead (the ingestor's reading side): the partition
    # is then this modulo the partition count, as the default partitioner would pick it.
    key_hash: int | None = None


def transactional_id(settings: KafkaSettings, group_id: str) -> str:
    """One transactional id per replica of a consumer group, stable across its restarts.

    A restarted replica (same ``REPLICA_ID``) fences its previous incarnation: the broker aborts
    the transaction the dead process left open at once, instead of after the transaction
    timeout, so ``read_committed`` readers are not held up. Without ``REPLICA_ID`` the id is
    unique per process (host and pid): still correct, but a killed process's open transaction
    then blocks its partitions downstream until the timeout.
    """
    replica = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"{group_id}-{replica}"


def make_producer(settings: KafkaSettings, client_id: str, transactional_id: str | None = None) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer; transactional when given a transactional id."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=settings.request_timeout_ms,
        transactional_id=transactional_id,
        transaction_timeout_ms=settings.transaction_timeout_ms,
    )


DEAD_LETTER_HEADERS = frozenset({"error-class", "service", "reason", "source-offset"})  # what dead_letter adds
LINGER_MIN_BYTES = 256 * 1024  # about one 500-tweet batch: a busy stream never waits for the linger


def make_consumer(
    settings: KafkaSettings, group_id: str, *topics: str, max_poll_records: int = 500, fetch_linger_ms: int = 0
) -> AIOKafkaConsumer:
    """A group consumer that never auto-commits and never sees aborted transactions' records.

    ``fetch_linger_ms`` > 0 asks the broker to hold each fetch until about a batch's worth of
    bytes has arrived or that many milliseconds have passed (Kafka's ``fetch.min.bytes`` and
    ``fetch.max.wait.ms``): a trickle then arrives as one batch instead of many tiny ones, for
    a consumer whose cost is per batch (a bulk write) rather than per record.
    ``rebalance_timeout_ms`` outlasts the longest revoke the delivery loop can hold (see
    :func:`common.fencing.rebalance_timeout_ms`); aiokafka's default is the 10 s session timeout.
    """
    linger = {"fetch_min_bytes": LINGER_MIN_BYTES, "fetch_max_wait_ms": fetch_linger_ms} if fetch_linger_ms > 0 else {}
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=max_poll_records,
        request_timeout_ms=settings.request_timeout_ms,
        rebalance_timeout_ms=rebalance_timeout_ms(
            settings.revoke_grace_s, settings.delivery_timeout_s, settings.offsets_visible_s
        ),
        **linger,
    )


async def ensure_topics(settings: KafkaSettings, topics: Sequence[str]) -> None:
    """Create topics explicitly (auto-creation would silently pick the broker's defaults), and
    grow existing ones to ``KAFKA_PARTITIONS`` (Kafka cannot shrink a topic; we never try)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            new = [NewTopic(t, settings.partitions, settings.replication_factor) for t in missing]
            # Another process may create one between list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            log.info("created topics", extra={"topics": missing, "partitions": settings.partitions})
        present = [t for t in topics if t in existing]
        if present:
            await _grow_partitions(admin, present, settings.partitions)
    finally:
        await admin.close()


async def _grow_partitions(admin: AIOKafkaAdminClient, topics: list[str], partitions: int) -> None:
    described = await admin.describe_topics(topics)
    grow = {
        d["topic"]: NewPartitions(partitions)
        for d in described
        if not d["error_code"] and 0 < len(d["partitions"]) < partitions
    }
    if not grow:
        return
    response = await admin.create_partitions(grow)
    # Another process may have grown it meanwhile (INVALID_PARTITIONS): the topic is as wanted.
    failed = [(t, code, msg) for t, code, msg in response.topic_errors if code not in (0, 37)]
    if failed:
        raise RuntimeError(f"could not add partitions: {failed}")
    log.info("added partitions", extra={"topics": sorted(grow), "partitions": partitions})


async def publish_all(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
    """Send every message and wait until the brokers acknowledged all of them.

    Every ack (or failure) is awaited before the first failure is raised, so no delivery
    future is left with an exception nobody retrieved.
    """
    results = await asyncio.gather(*await send_all(producer, messages), return_exceptions=True)
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if failed is not None:
        raise failed


async def send_all(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> list[asyncio.Future[Any]]:
    """Hand every message to the producer; one delivery future per message, in order.

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
            injected = inject_headers()
            # Tracing off here (nothing injected): the message's own context passes through, so a
            # tweet's trace is not cut where one process does not trace.
            traced = ([(k, v) for k, v in m.headers if k not in _TRACE_HEADERS] + injected) if injected else m.headers
            futures.append(
                await producer.send(
                    m.topic, value=m.value, key=m.key.encode() if m.key is not None else None, headers=traced
                )
            )
    return futures


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
    # The source record's own headers travel with it (its trace context among them), so a
    # re-drive can republish the record as it was; ours describe the failure.
    headers = [(k, v) for k, v in (record.headers or ()) if k not in DEAD_LETTER_HEADERS] + [
        ("error-class", type(error).__name__.encode()),
        ("service", service.encode()),
        ("reason", reason.encode()),
        ("source-offset", f"{record.topic}:{record.partition}:{record.offset}".encode()),
    ]
    return OutgoingMessage(Topics().dlq(record.topic), key, letter.model_dump_json().encode(), headers)
