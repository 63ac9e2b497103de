"""The retrying Kafka producer the replay publishes through (``replay.Publisher``): idempotent,
``acks=all``, and in the continuous modes (``--follow``, ``watch``) patient with a broker that
went away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder

from common.kafka import OutgoingMessage, ensure_topics, make_producer, send_all
from common.settings import KafkaSettings
from common.telemetry import configured_tracer
from ingestor.errors import KafkaUnavailableError
from ingestor.settings import SERVICE, IngestorSettings

log = logging.getLogger(SERVICE)


def partition_for(producer: AIOKafkaProducer, message: OutgoingMessage) -> int | None:
    """The partition the default partitioner would pick, from the key hash the reading side
    computed (``ingestor.logic.key_hashes``: no murmur2 on the producer's core); None, for the
    producer to pick, without a hash or before its metadata knows the topic. Read per message,
    as the partitioner does, so a topic that changed size mid-batch is never sent to a partition
    it no longer has."""
    if message.key_hash is None:
        return None
    known = producer.client.cluster.partitions_for_topic(message.topic)
    return message.key_hash % len(known) if known else None  # Kafka numbers them 0..n-1


class KafkaPublisher:
    """The producer (idempotent, acks=all). With ``retry`` (continuous modes) an unreachable
    broker is retried with capped exponential backoff until it comes back or the run stops.

    A message is never dropped and never handed to Kafka twice: once the producer holds it,
    the idempotent producer retries it until the broker acknowledges it (aiokafka never expires
    such a batch), so we keep waiting on its future instead of sending it again. Only a message
    whose send failed before it left (no metadata, no leader) is sent again.

    Several ``publish`` calls may wait for acknowledgements at once (the replay keeps the next
    batch going while one is acknowledged); handing messages to the producer is serialised, so
    batches enter it in the order they were published.
    """

    def __init__(self, settings: IngestorSettings, *, retry: bool, stopping: asyncio.Event) -> None:
        self.kafka: KafkaSettings = settings.kafka
        self._client_id = settings.client_id
        self._max_backoff_s = settings.max_backoff_s
        self._retry = retry
        self._stopping = stopping
        self._producer: AIOKafkaProducer | None = None
        self._traced = configured_tracer(SERVICE) is not None
        self._handing = asyncio.Lock()
        self.retries = 0

    async def start(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._connect()
                return
            except (KafkaError, OSError) as exc:
                backoff = await self._wait_or_fail("connect", exc, backoff)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        assert self._producer is not None, "start() first"
        # One delivery future per message; the messages of one record batch share its future.
        futures: list[asyncio.Future[Any] | None] = [None] * len(messages)
        backoff = 0.5
        while True:
            failure: BaseException | None = None
            try:
                async with self._handing:
                    await self._hand_over(self._producer, messages, futures)
            except KafkaError as exc:
                failure = exc  # what had not reached the producer yet is sent again below
            pending = {future for future in futures if future is not None and not future.done()}
            if pending:  # healthy brokers answer in milliseconds; a silent one is waited out in rounds
                await asyncio.wait(pending, timeout=self.kafka.request_timeout_ms / 1000 if self._retry else None)
            for index, future in enumerate(futures):
                error = future.exception() if future is not None and future.done() else None
                if error is not None:
                    permanent = isinstance(error, KafkaError) and not error.retriable
                    if permanent and not isinstance(error, KafkaTimeoutError):  # e.g. a message too large
                        raise KafkaUnavailableError(self._explain("publish", error)) from error
                    failure, futures[index] = error, None  # it never left the producer: send it again
            if all(future is not None and future.done() for future in futures):
                return
            backoff = await self._wait_or_fail("publish", failure or TimeoutError("no acknowledgement yet"), backoff)

    async def _hand_over(
        self, producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage], futures: list[asyncio.Future[Any] | None]
    ) -> None:
        """Hand every message without a future to the producer, in order per partition.

        A tweet whose partition is known goes into a record batch per partition (aiokafka's
        ``create_batch``/``send_batch``: one call per batch instead of one ``send`` per tweet;
        a bare producer spends 4 µs a tweet that way against 18); anything else (a reject, a topic whose
        metadata is not known yet) is sent alone. A message's future is set only once the
        producer holds it, so when a hand-over fails, every message without one (in the batch
        that failed, in batches not submitted yet, after it) is sent again on the next round,
        and none twice.
        """
        # Batches never submitted (a hand-over raised) are simply dropped: their messages have no future.
        open_batches: dict[tuple[str, int], _OpenBatch] = {}
        for index, message in enumerate(messages):
            if futures[index] is not None:
                continue
            partition = partition_for(producer, message)
            if partition is None or (self._traced and not message.headers):
                # Sent alone: nothing of its topic may still wait in a batch, or it would overtake it.
                for place in [place for place in open_batches if place[0] == message.topic]:
                    await self._submit(producer, open_batches.pop(place), futures)
                futures[index] = await self._send(producer, message)
                continue
            place = (message.topic, partition)
            batch = open_batches.get(place)
            if batch is not None and not batch.add(index, message):
                await self._submit(producer, open_batches.pop(place), futures)  # full: on to the next one
                batch = None
            if batch is None:
                batch = open_batches[place] = _OpenBatch(producer.create_batch(), message.topic, partition)
                batch.add(index, message)  # a batch's first message always fits (Kafka judges its size)
        for batch in open_batches.values():
            await self._submit(producer, batch, futures)

    async def _submit(
        self, producer: AIOKafkaProducer, batch: _OpenBatch, futures: list[asyncio.Future[Any] | None]
    ) -> None:
        batch.builder.close()  # nothing else may join it (aiokafka's ``send`` could, to an open one)
        future: asyncio.Future[Any] = await producer.send_batch(batch.builder, batch.topic, partition=batch.partition)
        for index in batch.indexes:
            futures[index] = future

    async def _send(self, producer: AIOKafkaProducer, message: OutgoingMessage) -> asyncio.Future[Any]:
        if self._traced and not message.headers:
            return (await send_all(producer, [message]))[0]  # a reject: its producer span roots its trace
        # A tweet's headers already carry its trace (the replay's ``ingestor.publish`` span is the
        # publish, sampled or not), and with tracing off there is none: no second span per tweet.
        # Sent alone, its partition is not known here: the producer's partitioner picks it.
        key = message.key.encode() if message.key is not None else None
        future: asyncio.Future[Any] = await producer.send(
            message.topic, value=message.value, key=key, headers=message.headers or None
        )
        return future

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                async with asyncio.timeout(self.kafka.request_timeout_ms / 1000):
                    await producer.stop()

    async def _connect(self) -> None:
        await ensure_topics(self.kafka, self.kafka.topics.all())
        producer = make_producer(self.kafka, client_id=self._client_id)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def _wait_or_fail(self, what: str, failure: BaseException, backoff: float) -> float:
        """Back off before the next attempt, or raise when not retrying (or asked to stop)."""
        if not self._retry or self._stopping.is_set():
            raise KafkaUnavailableError(self._explain(what, failure)) from None
        self.retries += 1
        log.warning(
            "Kafka unavailable, retrying", extra={"during": what, "error": repr(failure), "retry_in_s": backoff}
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(backoff):
                await self._stopping.wait()
        return min(backoff * 2, self._max_backoff_s)

    def _explain(self, what: str, exc: BaseException) -> str:
        if what == "connect":
            return (
                f"cannot reach Kafka at {self.kafka.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}. "
                "Start it with `make up` (or `bash deploy/local/infra.sh up kafka`)."
            )
        return f"publishing to Kafka at {self.kafka.bootstrap_servers} failed: {exc!r}"


class _OpenBatch:
    """A record batch being filled for one partition, and the messages (by index) in it."""

    def __init__(self, builder: BatchBuilder, topic: str, partition: int) -> None:
        self.builder = builder
        self.topic = topic
        self.partition = partition
        self.indexes: list[int] = []

    def add(self, index: int, message: OutgoingMessage) -> bool:
        """False when the batch is full."""
        key = message.key.encode() if message.key is not None else None
        if self.builder.append(timestamp=None, key=key, value=message.value, headers=message.headers) is None:
            return False
        self.indexes.append(index)
        return True
