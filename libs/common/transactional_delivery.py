"""The transactional half of a :class:`common.delivery.BatchLoop`'s delivery: one Kafka
transaction per batch (output and offsets), and the producer's replacement when it is fenced
or broken; fenced again and again, another live process has our transactional id, and the
loop ends with a :class:`common.errors.ConfigurationError`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from common.errors import ConfigurationError
from common.kafka import OutgoingMessage, publish_all

log = logging.getLogger(__name__)


class TransactionalDelivery:
    """Transactions and producer replacement for :class:`common.delivery.BatchLoop` (which owns the state below)."""

    producer: AIOKafkaProducer | None
    new_producer: Callable[[], AIOKafkaProducer] | None
    fenced_limit: int
    fenced_window_s: float
    _replaced_at: list[float]
    _producer_started: bool
    _producer_unusable: bool

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
        timeout, or aiokafka's sender giving up while the broker restarts. Again and again
        (``fenced_limit`` times within ``fenced_window_s``): another live process uses our
        transactional id, and one of the two must go.
        """
        now = time.monotonic()
        self._replaced_at = [t for t in self._replaced_at if now - t < self.fenced_window_s] + [now]
        if self.new_producer is None or len(self._replaced_at) >= self.fenced_limit:
            raise ConfigurationError(
                "transactional producer fenced again and again: another live process uses this "
                "transactional id (give every replica its own REPLICA_ID)"
            ) from exc
        log.warning("transactional producer fenced or broken; replacing it", extra={"error": repr(exc)})
        old, self.producer, self._producer_started = self.producer, self.new_producer(), False
        self._producer_unusable = False
        if old is not None:
            with contextlib.suppress(Exception):
                await old.stop()

    async def _start_producer(self, producer: AIOKafkaProducer) -> None:
        """Start a replacement producer before its first use; if that fails, the next attempt
        gets another fresh one (a half-started client cannot be started again)."""
        try:
            await producer.start()
        except Exception:
            with contextlib.suppress(Exception):
                await producer.stop()
            if self.new_producer is not None:
                self.producer = self.new_producer()
            raise
        self._producer_started = True
