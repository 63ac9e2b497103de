"""The retrying Kafka producer the replay publishes through (``replay.Publisher``): idempotent,
``acks=all``, and in the continuous modes (``--follow``, ``watch``) patient with a broker that
went away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from common.kafka import OutgoingMessage, ensure_topics, make_producer, send_all
from common.settings import KafkaSettings
from common.telemetry import configured_tracer
from ingestor.errors import KafkaUnavailableError
from ingestor.settings import SERVICE, IngestorSettings

log = logging.getLogger(SERVICE)
_PARTITIONER = DefaultPartitioner()


@dataclass
class Run:
    """Messages handed to the producer together: a run of one partition's messages, in publish
    order, built into record batches of its own; or (``partition`` None) one message sent alone."""

    topic: str
    partition: int | None
    messages: list[OutgoingMessage]


def partition_runs(
    messages: Sequence[OutgoingMessage], partitions: Mapping[str, Sequence[int]], *, alone: bool = False
) -> list[Run]:
    """Group ``messages`` by the partition the producer's default partitioner gives their key
    (murmur2, as Kafka's Java client), keeping their order within each partition. With ``alone``,
    a message without headers (a traced reject, whose producer span roots its trace) is a run
    of its own. ``partitions`` holds each topic's partition ids."""
    runs: dict[tuple[str, int], Run] = {}
    out: list[Run] = []
    for message in messages:
        if alone and not message.headers:
            out.append(Run(message.topic, None, [message]))
            continue
        key = message.key.encode() if message.key is not None else None
        every = partitions[message.topic]
        partition = _PARTITIONER(key, every, every)
        run = runs.get((message.topic, partition))
        if run is None:
            run = runs[message.topic, partition] = Run(message.topic, partition, [])
            out.append(run)
        run.messages.append(message)
    return out


class KafkaPublisher:
    """The producer (idempotent, acks=all). With ``retry`` (continuous modes) an unreachable
    broker is retried with capped exponential backoff until it comes back or the run stops.

    Messages go to the producer as record batches, one run per partition in publish order
    (:func:`partition_runs`, the partition the default partitioner gives their key). A message
    is never dropped and never handed to Kafka twice: once the producer holds its batch, the
    idempotent producer retries it until the broker acknowledges it (aiokafka never expires
    such a batch), so we keep waiting on its future instead of sending it again. Only a batch
    whose send failed before it left (no metadata, no leader) is built and sent again.

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
        producer = self._producer
        runs: list[Run] | None = None
        futures: list[asyncio.Future[Any] | None] = []
        backoff = 0.5
        while True:
            failure: BaseException | None = None
            try:
                async with self._handing:
                    if runs is None:
                        runs = await self._runs(producer, messages)
                        futures = [None] * len(runs)
                    index = 0
                    while index < len(runs):  # a run that fills a record batch is split as it goes
                        if futures[index] is None:
                            futures[index], rest = await self._send(producer, runs[index])
                            if rest is not None:
                                runs.insert(index + 1, rest)
                                futures.insert(index + 1, None)
                        index += 1
            except KafkaError as exc:
                failure = exc  # this run (and those after it) never reached the producer
            pending = [future for future in futures if future is not None and not future.done()]
            if pending:  # healthy brokers answer in milliseconds; a silent one is waited out in rounds
                await asyncio.wait(pending, timeout=self.kafka.request_timeout_ms / 1000 if self._retry else None)
            for index, future in enumerate(futures):
                error = future.exception() if future is not None and future.done() else None
                if error is not None:
                    permanent = isinstance(error, KafkaError) and not error.retriable
                    if permanent and not isinstance(error, KafkaTimeoutError):  # e.g. a message too large
                        raise KafkaUnavailableError(self._explain("publish", error)) from error
                    failure, futures[index] = error, None  # it never left the producer: send it again
            if runs is not None and all(future is not None and future.done() for future in futures):
                return
            backoff = await self._wait_or_fail("publish", failure or TimeoutError("no acknowledgement yet"), backoff)

    async def _runs(self, producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> list[Run]:
        topics = {message.topic for message in messages}
        partitions = {topic: sorted(await producer.partitions_for(topic)) for topic in topics}
        return partition_runs(messages, partitions, alone=self._traced)

    async def _send(self, producer: AIOKafkaProducer, run: Run) -> tuple[asyncio.Future[Any], Run | None]:
        """Hand one run to the producer: one delivery future, and what did not fit its record
        batch (sent next as a run of its own)."""
        if run.partition is None:  # a reject: its producer span roots its trace
            return (await send_all(producer, run.messages))[0], None
        # A tweet's headers already carry its trace (the replay's ``ingestor.publish`` span is the
        # publish, sampled or not), and with tracing off there is none: no second span per tweet.
        # The record batch is built here rather than message by message through ``send``: a
        # future and an accumulator call per batch instead of per tweet halves the producer's CPU
        # per tweet (bench/ingest_bench.py, ``bare_producer_batches``).
        batch = producer.create_batch()
        rest: Run | None = None
        for n, message in enumerate(run.messages):
            key = message.key.encode() if message.key is not None else None
            if batch.append(key=key, value=message.value, timestamp=None, headers=message.headers) is None:
                rest = Run(run.topic, run.partition, run.messages[n:])
                run.messages = run.messages[:n]  # the batch is full (the first message always fits)
                break
        future: asyncio.Future[Any] = await producer.send_batch(batch, run.topic, partition=run.partition)
        return future, rest

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), self.kafka.request_timeout_ms / 1000)

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
            await asyncio.wait_for(self._stopping.wait(), backoff)
        return min(backoff * 2, self._max_backoff_s)

    def _explain(self, what: str, exc: BaseException) -> str:
        if what == "connect":
            return (
                f"cannot reach Kafka at {self.kafka.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}. "
                "Start it with `make up` (or `bash deploy/local/infra.sh up kafka`)."
            )
        return f"publishing to Kafka at {self.kafka.bootstrap_servers} failed: {exc!r}"
