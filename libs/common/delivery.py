"""The consume → handle → deliver → commit loop every Kafka worker runs.

Invariants (tests/unit/common/test_delivery*.py and tests/integration/test_delivery_*.py):

- Every fetched record is committed, or its partition is rewound to it (``seek``), or its
  partition was revoked (the next owner starts from the committed offset). Nothing fetched is
  ever skipped.
- Offsets are committed only after the batch's output is durable: acknowledged by Kafka (or
  Elasticsearch, for the indexer), or in the same Kafka transaction as the output.
- A revoked partition is never committed. On revoke, a batch being delivered finishes first
  (a delivery is cut at ``delivery_timeout_s``); a batch still being handled gets
  ``revoke_grace_s`` to finish, after which it is abandoned: nothing of it is published or
  committed. The consumer's ``rebalance_timeout_ms`` exceeds that whole hold
  (:func:`common.fencing.rebalance_timeout_ms`), so the broker never hands our partitions to
  another member while we may still commit them.
- Failures (:mod:`common.poison`): a failure of every record (a dependency down) rewinds the
  batch and pauses the whole assignment, new partitions included, for a capped exponential
  backoff, and dead-letters nothing. A record failing alone while others succeed is
  dead-lettered: at once if non-transient, after ``max_record_attempts`` if transient.
- Only :class:`common.errors.ConfigurationError` and non-retriable client errors outside a
  batch end the loop; a producer fenced again and again is replaced after the longest backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, ProducerFenced

from common.errors import ConfigurationError, is_transient
from common.fencing import Backoff, Fence, first_offsets, next_offsets
from common.kafka import OutgoingMessage, make_consumer, make_producer, publish_all, transactional_id
from common.metrics import ABANDONED, BATCH_SIZE, CONSUMED, CONSUMER_LAG, DEAD_LETTERED, PRODUCED, RETRIES
from common.poison import BatchHandler, FailurePolicy
from common.rebalance import RebalanceHandling, RebalanceListener
from common.settings import KafkaSettings
from common.topics import DLQ_SUFFIX
from common.transactional_delivery import TransactionalDelivery

log = logging.getLogger(__name__)


@dataclass
class BatchLoop(RebalanceHandling, TransactionalDelivery):
    """Consume in batches, hand each batch to ``handle``, deliver what it returns, then commit.

    With ``transactional=True`` the producer must have a transactional id: the output and the
    offsets are committed in one Kafka transaction (for ``group_id``), so ``read_committed``
    readers see each batch's output exactly once even across crashes and rebalances.
    Without it, output is published (idempotent, ``acks=all``) and then the offsets committed:
    at least once, made idempotent downstream by keys and document ids.
    Construct it before starting the consumer (it subscribes it with its rebalance listener,
    :mod:`common.rebalance`); transactions live in :mod:`common.transactional_delivery`.
    ``kafka`` bounds the revoke, the delivery and the attempts per record (as the consumer's).
    """

    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer | None
    handle: BatchHandler
    service: str = "unknown"  # the metrics label
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    max_wait_ms: int = 200  # a poll's longest wait; the consumer's max_poll_records caps a batch
    max_backoff_s: float = 30.0
    transactional: bool = False
    group_id: str | None = None  # needed for transactions
    on_committed: Callable[[list[ConsumerRecord]], None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    fence: Fence = field(default_factory=Fence)
    # Builds a fresh producer (same transactional id) when this one was fenced; None: never.
    new_producer: Callable[[], AIOKafkaProducer] | None = None
    # Replaced this often within fenced_window_s: back off the longest before the next try.
    fenced_limit: int = 3
    fenced_window_s: float = 120.0

    def __post_init__(self) -> None:
        if self.transactional and (self.producer is None or not self.group_id):
            raise ConfigurationError("a transactional BatchLoop needs a transactional producer and a group id")
        self._backoff = Backoff(cap=self.max_backoff_s)
        self._resume_at: float | None = None
        self._failures = FailurePolicy(self.handle, self.service, self.kafka.max_record_attempts)
        self._replaced_at: list[float] = []
        self._retiring: set[asyncio.Task[None]] = set()  # replaced producers being stopped
        self._producer_started = True  # the first producer is started by ``async with``
        self._producer_unusable = False
        self.revoking = False  # true while the rebalance listener holds the group's rebalance
        # Offsets committed in transactions: the group coordinator applies them only when the
        # transaction's marker reaches it, a moment after commit_transaction returns.
        self._txn_offsets: dict[TopicPartition, int] = {}
        topics = sorted(self.consumer.subscription())
        if topics:
            self.consumer.subscribe(topics, listener=RebalanceListener(self))

    async def __aenter__(self) -> BatchLoop:
        if self.producer is not None:
            await self.producer.start()
        await self.consumer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.consumer.stop()
        finally:
            if self.producer is not None:
                await self.producer.stop()
            if self._retiring:
                await asyncio.wait(self._retiring, timeout=self.kafka.delivery_timeout_s)

    async def run(self) -> None:
        while not self.stopping.is_set():
            if self._resume_at is not None:
                await self._idle()
                continue
            try:
                polled = await self.consumer.getmany(timeout_ms=self.max_wait_ms)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._pause_for(exc)
                continue
            batch = [record for records in polled.values() for record in records]
            if batch:
                await self._process(batch)

    # -- one batch -----------------------------------------------------------------------------

    async def _process(self, batch: list[ConsumerRecord]) -> None:
        BATCH_SIZE.labels(self.service).observe(len(batch))
        generation = self.fence.begin()
        try:
            try:
                outgoing = await self._failures.outputs(batch)  # TransientError: retry the batch
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._retry_later(batch, generation, exc)
                return
            if not self.fence.enter_delivery(generation):
                log.warning("batch abandoned: its partitions were revoked while it was handled")
                ABANDONED.labels(self.service).inc()
                return
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel (a stop) that
                # arrives in the step the delivery completes, and the loop would run on
                async with asyncio.timeout(self.kafka.delivery_timeout_s):
                    await self._deliver(batch, outgoing)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced under us: the next owner replays from the committed offset.
                log.warning("commit refused after a rebalance; records will be replayed", extra={"error": str(exc)})
                ABANDONED.labels(self.service).inc()
                self._rewind(batch, generation)
                return
            except ConfigurationError:
                raise
            except Exception as exc:
                # Whatever else failed while delivering: retrying the batch is always safe, with
                # a fresh producer if this one can no longer run transactions.
                if self.transactional and (isinstance(exc, ProducerFenced) or self._producer_unusable):
                    await self._replace_producer(exc)
                self._retry_later(batch, generation, exc)
                if self.transactional and generation == self.fence.generation:
                    await self._resume_after_failed_transaction(first_offsets(batch))
                return
        finally:
            self.fence.end()
        self._backoff.reset()
        for record in batch:
            CONSUMED.labels(self.service, record.topic).inc()
        if self.on_committed is not None:
            self.on_committed(batch)

    async def _deliver(self, batch: list[ConsumerRecord], outgoing: list[OutgoingMessage]) -> None:
        offsets = next_offsets(batch)
        if outgoing and self.producer is None:
            raise ConfigurationError("the handler produced messages but the loop has no producer")
        if self.transactional:
            assert self.producer is not None and self.group_id is not None
            if not self._producer_started:
                await self._start_producer(self.producer)
            await self._deliver_in_transaction(self.producer, self.group_id, outgoing, offsets)
            self._txn_offsets.update(offsets)
        else:
            if outgoing:
                assert self.producer is not None
                await publish_all(self.producer, outgoing)
            await self.consumer.commit(offsets)
        self._count(outgoing, offsets)

    # -- failures ------------------------------------------------------------------------------

    def _retry_later(self, batch: list[ConsumerRecord], generation: int, exc: BaseException) -> None:
        self._rewind(batch, generation)
        RETRIES.labels(self.service).inc()
        self._pause_for(exc)

    def _rewind(self, batch: list[ConsumerRecord], generation: int) -> None:
        """Seek back to the batch's first records, unless its partitions changed hands meanwhile."""
        if generation != self.fence.generation:
            return  # revoked: positions of a new assignment start from the committed offsets
        assigned = self.consumer.assignment()
        for tp, offset in first_offsets(batch).items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    def _pause_for(self, exc: BaseException) -> None:
        delay = self._backoff.next()
        log.warning(
            "transient failure, retrying batch",
            extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay},
        )
        self._resume_at = time.monotonic() + delay

    async def _idle(self) -> None:
        """Back off while still polling (paused), so the group does not evict this member.

        Anything a poll returns meanwhile (a partition assigned between the listener and the
        pause) is rewound, never dropped.
        """
        assert self._resume_at is not None
        self.consumer.pause(*self.consumer.assignment())
        wait_ms = max(0, min(int((self._resume_at - time.monotonic()) * 1000), self.max_wait_ms))
        try:
            polled = await self.consumer.getmany(timeout_ms=wait_ms)
        except Exception as exc:
            if not is_transient(exc):
                raise
            polled = {}
        generation = self.fence.generation
        for records in polled.values():
            self._rewind(records, generation)
        if time.monotonic() >= self._resume_at:
            self._resume_at = None
            self.consumer.resume(*self.consumer.assignment())

    def _count(self, outgoing: list[OutgoingMessage], offsets: dict[TopicPartition, int]) -> None:
        for message in outgoing:
            if message.topic.endswith(DLQ_SUFFIX):
                reason = dict(message.headers).get("reason", b"unknown").decode()
                DEAD_LETTERED.labels(self.service, message.topic, reason).inc()
            else:
                PRODUCED.labels(self.service, message.topic).inc()
        for tp, offset in offsets.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, highwater - offset))


@dataclass(frozen=True)
class Subscription:
    """What a worker's loop consumes: ``sources`` as group ``group`` (``service`` in the metrics),
    ``batch_size`` records a poll waiting ``max_wait_ms`` at most, the broker lingering ``linger_ms``
    (:func:`common.kafka.make_consumer`); ``transactional``: one Kafka transaction a batch."""

    service: str
    group: str
    sources: Sequence[str]
    batch_size: int
    max_wait_ms: int
    transactional: bool
    linger_ms: int = 0


def group_loop(
    kafka: KafkaSettings,
    subscription: Subscription,
    handle: BatchHandler,
    *,
    stopping: asyncio.Event | None = None,
    on_committed: Callable[[list[ConsumerRecord]], None] | None = None,
    max_backoff_s: float = 30.0,
) -> BatchLoop:
    """The loop of ``subscription``, with its consumer and producer (transactional: one id per
    replica); ``async with`` starts them. The consumer and the loop share ``kafka``'s bounds."""
    group, transactional = subscription.group, subscription.transactional
    batch, linger = subscription.batch_size, subscription.linger_ms
    consumer = make_consumer(kafka, group, *subscription.sources, max_poll_records=batch, fetch_linger_ms=linger)

    def new_producer() -> AIOKafkaProducer:
        return make_producer(
            kafka, client_id=group, transactional_id=transactional_id(kafka, group) if transactional else None
        )

    return BatchLoop(
        consumer,
        new_producer(),
        handle,
        service=subscription.service,
        kafka=kafka,
        max_wait_ms=subscription.max_wait_ms,
        max_backoff_s=max_backoff_s,
        transactional=transactional,
        group_id=group,
        on_committed=on_committed,
        stopping=stopping or asyncio.Event(),
        new_producer=new_producer if transactional else None,
    )
