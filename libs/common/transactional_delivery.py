"""The transactional half of a :class:`common.delivery.BatchLoop`'s delivery: one Kafka
transaction per batch (output and offsets), and the producer's replacement when it is fenced
or broken. Fenced again and again (another live process with our transactional id, or a
broker in trouble), the loop backs off the longest before the next producer, and goes on: a
replica never stops for good over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from common.errors import ConfigurationError
from common.fencing import Backoff
from common.kafka import OutgoingMessage, publish_all
from common.metrics import PRODUCERS_REPLACED
from common.settings import KafkaSettings

log = logging.getLogger(__name__)


class TransactionalDelivery:
    """Transactions and producer replacement for :class:`common.delivery.BatchLoop` (which owns the state below)."""

    producer: AIOKafkaProducer | None
    service: str
    new_producer: Callable[[], AIOKafkaProducer] | None
    fenced_limit: int
    fenced_window_s: float
    _replaced_at: list[float]
    _producer_started: bool
    _producer_unusable: bool
    _backoff: Backoff
    _retiring: set[asyncio.Task[None]]
    consumer: AIOKafkaConsumer
    kafka: KafkaSettings  # offsets_visible_s

    async def _resume_after_failed_transaction(self, first: dict[TopicPartition, int]) -> None:
        """Seek each partition to where a failed transactional delivery leaves it.

        The delivery may have failed after the broker committed it (the answer was lost, or the
        delivery was cut by its timeout; a replacement producer completes such a transaction
        before it starts): re-handling the batch from ``first`` would then publish its labels a
        second time. So resume from the group's committed offset where it is already past
        ``first``; where it cannot be read in time, from ``first`` (the batch again).
        """
        assigned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp not in assigned:
                continue
            try:
                async with asyncio.timeout(self.kafka.offsets_visible_s):
                    committed = await self.consumer.committed(tp)
            except Exception as exc:  # bounded: no answer means the batch is handled again
                log.warning("committed offset unreadable after a failed transaction", extra={"error": repr(exc)})
                committed = None
            self.consumer.seek(tp, max(offset, committed) if committed is not None else offset)

    async def _deliver_in_transaction(
        self,
        producer: AIOKafkaProducer,
        group_id: str,
        outgoing: list[OutgoingMessage],
        offsets: dict[TopicPartition, int],
    ) -> None:
        await producer.begin_transaction()
        try:
            if outgoing:
                await publish_all(producer, outgoing)
            await producer.send_offsets_to_transaction(offsets, group_id)
            await producer.commit_transaction()
        except asyncio.CancelledError:
            # Cut at the delivery timeout (or the loop stopped): the transaction's state is
            # unknown, and aborting could hang as long. The replacement producer fences it.
            self._producer_unusable = True
            raise
        except BaseException as exc:
            # An error the client cannot abort from (fenced, or an error code it does not know,
            # such as newer brokers' PRODUCER_FENCED) leaves it unable to begin another one.
            self._producer_unusable = isinstance(exc, ProducerFenced) or producer._txn_manager.is_fatal_error()
            if not self._producer_unusable:
                try:
                    await producer.abort_transaction()
                except Exception:
                    self._producer_unusable = True
            raise

    async def _replace_producer(self, exc: Exception) -> None:
        """A fenced or broken transactional producer is dead for good: take a fresh one and retry.

        Once in a while that is the broker aborting a transaction that outlived the transaction
        timeout, a delivery cut at its timeout, or aiokafka's sender giving up while the broker
        restarts. Again and again (``fenced_limit`` times within ``fenced_window_s``): another
        live process may use our transactional id, or the broker is in trouble; the loop then
        waits its longest backoff before retrying, and goes on. The old producer is stopped in
        the background, so a revoke waiting on this delivery is not held by it.
        """
        if self.new_producer is None:
            raise ConfigurationError("a fenced transactional producer, and no way to build another") from exc
        now = time.monotonic()
        self._replaced_at = [t for t in self._replaced_at if now - t < self.fenced_window_s] + [now]
        if len(self._replaced_at) >= self.fenced_limit:
            log.error(
                "transactional producer fenced or broken again and again: another live process may use this "
                "transactional id (give every replica its own REPLICA_ID), or the broker is in trouble; "
                "backing off the longest before the next try",
                extra={"error": repr(exc), "replaced": len(self._replaced_at), "window_s": self.fenced_window_s},
            )
            self._backoff.longest()
        else:
            log.warning("transactional producer fenced or broken; replacing it", extra={"error": repr(exc)})
        PRODUCERS_REPLACED.labels(self.service).inc()
        old, self.producer, self._producer_started = self.producer, self.new_producer(), False
        self._producer_unusable = False
        if old is not None:
            task = asyncio.create_task(_stop_quietly(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _start_producer(self, producer: AIOKafkaProducer) -> None:
        """Start a replacement producer before its first use; if that fails, the next attempt
        gets another fresh one (a half-started client cannot be started again)."""
        try:
            await producer.start()
        except BaseException:  # cancelled at the delivery timeout too: a half-started client is spent
            with contextlib.suppress(Exception):
                await producer.stop()
            if self.new_producer is not None:
                self.producer = self.new_producer()
            raise
        self._producer_started = True


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await producer.stop()
