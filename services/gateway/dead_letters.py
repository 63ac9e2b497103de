"""Dead letters in Kafka: read every ``<topic>.dlq`` (and ``tweets.rejected``), count them, and
re-drive them to the topic they came from. The dead-letter tool (``gateway.dlq``) lists, shows and
re-drives them; the API counts them for its ``pipeline_dead_letters`` gauges.

A re-drive republishes the dead letter's original value, keyed as before, with a
``redriven-from: <dlq topic>:<partition>:<offset>`` header. It is idempotent through a ledger:
the compacted topic ``dlq.redriven`` holds one entry per re-driven dead letter, keyed by that
same reference, written once the republished messages are acknowledged. A later re-drive
(whatever its filters) skips every reference in the ledger, so no dead letter is republished
twice by re-running; a crash between the acknowledgement and the ledger write can republish
that one batch again, which the pipeline absorbs (every write downstream is keyed by tweet id).
Rejected records are listed but never re-driven: they failed validation, and the fix is in the
source, so they are replayed from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client import Gauge

from common.kafka import DEAD_LETTER_HEADERS, OutgoingMessage, make_producer, publish_all
from common.settings import KafkaSettings
from common.topics import DLQ_SUFFIX

log = logging.getLogger(__name__)
LEDGER = "dlq.redriven"
REDRIVEN_FROM = "redriven-from"
REDRIVEN_REASON = "redriven-reason"
IDLE_S = 2.0  # a scan ends at the end offsets taken when it started, or after this long without records
DEAD_LETTERS = Gauge("pipeline_dead_letters", "Messages held in a dead-letter topic (and tweets.rejected)", ["topic"])


@dataclass(frozen=True)
class Letter:
    topic: str
    partition: int
    offset: int
    key: str | None
    service: str
    reason: str
    source_topic: str | None  # None: not re-drivable (a rejected source record)
    value: str  # the original message (or raw source record)
    detail: str = ""
    failed_at: str | None = None
    headers: tuple[tuple[str, bytes], ...] = ()  # the dead letter's Kafka headers: the original's, then ours

    @property
    def ref(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def parse_letter(
    topic: str, partition: int, offset: int, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
) -> Letter:
    """A DeadLetter (``*.dlq``) or a RejectedRecord (``tweets.rejected``) as a :class:`Letter`."""
    letter = _letter(topic, partition, offset, value)
    return replace(letter, headers=tuple(headers)) if headers else letter


def _letter(topic: str, partition: int, offset: int, value: bytes | None) -> Letter:
    try:
        body: dict[str, Any] = json.loads(value or b"")
    except ValueError:
        body = {}
    if not isinstance(body, dict) or not body:
        raw = (value or b"").decode(errors="replace")
        return Letter(topic, partition, offset, None, "unknown", "unreadable", None, raw)
    if "source_topic" in body:
        return Letter(
            topic,
            partition,
            offset,
            key=body.get("key"),
            service=str(body.get("service", "unknown")),
            reason=str(body.get("reason", "unknown")),
            source_topic=str(body["source_topic"]),
            value=str(body.get("value", "")),
            detail=str(body.get("detail", ""))[:500],
            failed_at=body.get("failed_at"),
        )
    source = str(body.get("source", ""))
    return Letter(
        topic,
        partition,
        offset,
        key=source,
        service="gateway-api" if source.startswith("api:") else "ingestor",
        reason=str(body.get("reason", "unknown")),
        source_topic=None,
        value=str(body.get("raw", "")),
        detail=f"{source} {body.get('position', '')}".strip(),
        failed_at=body.get("rejected_at"),
    )


@dataclass
class RedriveResult:
    selected: int = 0  # re-drivable letters matching the filters
    already: int = 0  # of those, re-driven by an earlier run (in the ledger)
    redriven: int = 0
    by_target: dict[str, int] = field(default_factory=dict)


class DeadLetterStore:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.ledger_topic = f"{settings.topic_prefix}{LEDGER}"
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def topics(self, *, rejected: bool = True) -> list[str]:
        """Every dead-letter topic under this prefix (and ``tweets.rejected``), sorted."""
        existing = await (await self._started_admin()).list_topics()
        ours = f"{self.settings.topic_prefix}tweets."  # not other prefixes' (tests', benchmarks') topics
        wanted = {t for t in existing if t.startswith(ours) and t.endswith(DLQ_SUFFIX)}
        if rejected and self.settings.topics.rejected in existing:
            wanted.add(self.settings.topics.rejected)
        return sorted(wanted)

    async def sizes(self, topics: Iterable[str]) -> dict[str, int]:
        """Messages held per topic (end minus start offsets: no scan)."""
        consumer = await self._started_consumer()
        sizes = {}
        for topic in topics:
            partitions = await self._partitions(topic)
            start = await consumer.beginning_offsets(partitions) if partitions else {}
            end = await consumer.end_offsets(partitions) if partitions else {}
            sizes[topic] = sum(end[tp] - start[tp] for tp in partitions)
        return sizes

    async def scan(self, topic: str) -> AsyncIterator[Letter]:
        async for partition, offset, _key, value, headers in self._read(topic):
            yield parse_letter(topic, partition, offset, value, headers)

    async def redriven(self) -> set[str]:
        """References of every dead letter re-driven so far (the ledger)."""
        return {key.decode() async for _p, _o, key, _v, _h in self._read(self.ledger_topic) if key}

    async def redrive(self, letters: Sequence[Letter], *, dry_run: bool, batch_size: int = 500) -> RedriveResult:
        result = RedriveResult()
        done = await self.redriven()
        todo = []
        for letter in letters:
            if letter.source_topic is None:
                continue
            result.selected += 1
            if letter.ref in done:
                result.already += 1
            else:
                todo.append(letter)
                result.by_target[letter.source_topic] = result.by_target.get(letter.source_topic, 0) + 1
        if dry_run or not todo:
            return result
        await self._ensure_ledger()
        producer = make_producer(self.settings, "dlq-redrive")
        await producer.start()
        try:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                await publish_all(producer, [republished(letter) for letter in batch])
                await publish_all(producer, [self._ledger_entry(letter) for letter in batch])
                result.redriven += len(batch)
        finally:
            await producer.stop()
        return result

    async def refresh_gauges(self) -> dict[str, int]:
        sizes = await self.sizes(await self.topics())
        for topic, size in sizes.items():
            DEAD_LETTERS.labels(topic.removeprefix(self.settings.topic_prefix)).set(size)
        return sizes

    def _ledger_entry(self, letter: Letter) -> OutgoingMessage:
        entry = {"source_topic": letter.source_topic, "redriven_at": datetime.now(UTC).isoformat()}
        return OutgoingMessage(self.ledger_topic, letter.ref, json.dumps(entry).encode())

    async def _ensure_ledger(self) -> None:
        admin = await self._started_admin()
        if self.ledger_topic not in await admin.list_topics():
            topic = NewTopic(
                self.ledger_topic, 1, self.settings.replication_factor, topic_configs={"cleanup.policy": "compact"}
            )
            with contextlib.suppress(TopicAlreadyExistsError):  # another re-drive created it meanwhile
                await admin.create_topics([topic])

    async def _started_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
            await admin.start()
            self._admin = admin
        return self._admin

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions, from the brokers (none if it does not exist)."""
        described = await (await self._started_admin()).describe_topics([topic])
        return [
            TopicPartition(topic, part["partition"])
            for found in described
            if found["topic"] == topic and found["error_code"] == 0
            for part in found["partitions"]
        ]

    async def _started_consumer(self) -> AIOKafkaConsumer:
        """One consumer without a group, assigned partition by partition as each scan needs."""
        if self._consumer is not None:
            return self._consumer
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",  # never an aborted transaction's dead letter
            request_timeout_ms=self.settings.request_timeout_ms,
        )
        await consumer.start()
        await asyncio.sleep(0)  # let its start-up tasks run: stopping it at once would raise
        self._consumer = consumer
        return consumer

    async def _read(
        self, topic: str
    ) -> AsyncIterator[tuple[int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]]:
        """Every record of ``topic`` up to the end offsets taken at the start (bounded)."""
        consumer = await self._started_consumer()
        partitions = await self._partitions(topic)
        if not partitions:
            return
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        idle_since = time.monotonic()
        while await _behind(consumer, end):
            polled = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not polled:
                if time.monotonic() - idle_since > IDLE_S:
                    return  # only transaction markers left before the end offsets
                continue
            idle_since = time.monotonic()
            for records in polled.values():
                for record in records:
                    if record.offset < end[TopicPartition(record.topic, record.partition)]:
                        yield record.partition, record.offset, record.key, record.value, record.headers or ()


async def _behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return True
    return False


def republished(letter: Letter) -> OutgoingMessage:
    """The original record again, with its own headers (its trace context: the tweet's trace
    goes on) and where it was re-driven from; not the failure's headers, nor an earlier
    re-drive's."""
    assert letter.source_topic is not None
    ours = DEAD_LETTER_HEADERS | {REDRIVEN_FROM, REDRIVEN_REASON}
    original = [(k, v) for k, v in letter.headers if k not in ours]
    headers = [*original, (REDRIVEN_FROM, letter.ref.encode()), (REDRIVEN_REASON, letter.reason.encode())]
    return OutgoingMessage(letter.source_topic, letter.key, letter.value.encode(), headers)


async def refresh_forever(store: DeadLetterStore, every_s: float) -> None:
    """The API's background task behind the ``pipeline_dead_letters`` gauges (cancel it to stop)."""
    while True:
        try:
            await store.refresh_gauges()
        except Exception as exc:  # Kafka down: keep the last values and say so; try again later
            log.warning("could not count dead letters", extra={"error": repr(exc)})
        await asyncio.sleep(every_s)
