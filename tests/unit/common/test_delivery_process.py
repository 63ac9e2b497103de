"""One batch through the loop (BatchLoop._process) with a stand-in consumer: what is committed,
rewound, paused and dead-lettered. No broker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY

from common.delivery import BatchLoop
from common.errors import TransientError
from common.events import DeadLetter
from common.kafka import OutgoingMessage
from common.settings import KafkaSettings

TP = TopicPartition("src", 0)


def batch(n: int, start: int = 0) -> list[ConsumerRecord]:
    return [
        ConsumerRecord("src", 0, i, 0, 0, str(i).encode(), str(i).encode(), None, 0, 0, [])
        for i in range(start, start + n)
    ]


class Consumer:
    """Records commits and seeks; ``hang`` makes commits never return (a stuck coordinator)."""

    def __init__(self, hang: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.hang = hang

    def subscription(self) -> set[str]:
        return set()

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.commits.append(offsets)

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, key: Any = None, headers: Any = None) -> asyncio.Future[None]:
        self.sent.append((topic, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Handler:
    def __init__(self, poison: set[int], error: Exception) -> None:
        self.poison, self.error = poison, error

    async def __call__(self, records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        if any(r.offset in self.poison for r in records):
            raise self.error
        return [OutgoingMessage("out", None, r.value or b"") for r in records]


def not_visible() -> float:
    return REGISTRY.get_sample_value("pipeline_revokes_offsets_not_visible_total", {"service": "svc"}) or 0.0


def loop_with(consumer: Consumer, handler: Handler, **bounds: Any) -> tuple[BatchLoop, Producer]:
    """A loop whose ``KafkaSettings`` carry ``bounds`` (e.g. ``delivery_timeout_s``)."""
    producer = Producer()
    return BatchLoop(consumer, producer, handler, service="svc", kafka=KafkaSettings(**bounds)), producer


async def test_a_batch_every_record_of_which_fails_is_rewound_paused_and_neither_committed_nor_dead_lettered() -> None:
    consumer = Consumer()
    loop, producer = loop_with(consumer, Handler({0, 1, 2}, RuntimeError("es 403 write block")), max_record_attempts=2)
    for _ in range(10):
        loop._resume_at = None
        await loop._process(batch(3))
        assert loop._resume_at is not None  # the assignment pauses for a backoff
    assert consumer.commits == [] and producer.sent == []
    assert consumer.seeks == [(TP, 0)] * 10


async def test_a_poison_record_answering_retry_is_dead_lettered_after_the_bounded_attempts_and_the_rest_committed() -> (
    None
):
    consumer = Consumer()
    loop, producer = loop_with(consumer, Handler({4}, TransientError("item answered 429")), max_record_attempts=3)
    for _ in range(2):
        await loop._process(batch(10))
        assert consumer.commits == []
    await loop._process(batch(10))
    assert consumer.commits == [{TP: 10}]  # the partition moves past the poison record
    assert sorted(int(v) for t, v in producer.sent if t == "out") == [i for i in range(10) if i != 4]
    [letter] = [DeadLetter.model_validate_json(v) for t, v in producer.sent if t == "src.dlq"]
    assert (letter.offset, letter.reason) == (4, "retries_exhausted")


async def test_a_delivery_that_hangs_is_cut_at_its_timeout_and_the_batch_retried() -> None:
    consumer = Consumer(hang=True)
    loop, _ = loop_with(consumer, Handler(set(), RuntimeError()), delivery_timeout_s=0.05)
    await asyncio.wait_for(loop._process(batch(4)), 5)
    assert consumer.commits == [] and consumer.seeks == [(TP, 0)]
    assert loop._resume_at is not None
    assert loop.fence._not_delivering.is_set()  # a revoke now is not held by it


class StuckCoordinator(Consumer):
    """The group coordinator never answers an offset lookup."""

    async def committed(self, tp: TopicPartition) -> int | None:
        await asyncio.Event().wait()
        return None


async def test_a_revoke_whose_offset_lookups_hang_lets_go_after_the_bound_and_counts_it() -> None:
    loop, _ = loop_with(StuckCoordinator(), Handler(set(), RuntimeError()), offsets_visible_s=0.05)
    loop._txn_offsets[TP] = 10  # a transaction committed just before the revoke
    before = not_visible()
    await asyncio.wait_for(loop.on_revoked({TP}), 5)
    assert not loop.revoking and loop.fence.generation == 1
    assert not_visible() == before + 1


class Visible(Consumer):
    async def committed(self, tp: TopicPartition) -> int | None:
        return 10


async def test_a_revoke_returns_once_the_committed_offsets_are_readable_and_forgets_the_partitions_counts() -> None:
    loop, _ = loop_with(Visible(), Handler(set(), RuntimeError()))
    loop._txn_offsets[TP] = 10
    loop._failures.failed_alone[("src", 0, 3)] = 2
    before = not_visible()
    await asyncio.wait_for(loop.on_revoked({TP}), 5)
    assert loop._failures.failed_alone == {}
    assert not_visible() == before


class CommittedConsumer(Consumer):
    """The group's committed offset is ``committed`` (what a lost-answer commit left behind)."""

    def __init__(self, committed: int | None) -> None:
        super().__init__()
        self._committed = committed

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._committed


class TransactionalProducer(Producer):
    """Its commit reaches the broker but the answer is lost: ``commit_transaction`` raises."""

    class _Manager:
        def is_fatal_error(self) -> bool:
            return False

    _txn_manager = _Manager()

    async def begin_transaction(self) -> None: ...

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, int], group_id: str) -> None: ...

    async def commit_transaction(self) -> None:
        raise ConnectionError("the commit's answer was lost")

    async def abort_transaction(self) -> None: ...


async def _fail_a_committed_transaction(committed: int | None) -> CommittedConsumer:
    consumer = CommittedConsumer(committed)
    loop = BatchLoop(
        consumer, TransactionalProducer(), Handler(set(), RuntimeError()), service="svc", group_id="g",
        transactional=True,
    )
    loop._producer_started = True
    await loop._process(batch(4))
    assert loop._resume_at is not None  # retried after a backoff either way
    return consumer


async def test_a_transaction_committed_before_its_failure_is_not_handled_again() -> None:
    consumer = await _fail_a_committed_transaction(committed=4)
    assert consumer.seeks[-1] == (TP, 4)  # resumes after the batch: its labels are not published twice


async def test_a_transaction_that_did_not_commit_is_handled_again_from_its_first_record() -> None:
    for committed in (0, None):  # the batch's own first offset, or nothing committed yet
        consumer = await _fail_a_committed_transaction(committed=committed)
        assert consumer.seeks[-1] == (TP, 0)
