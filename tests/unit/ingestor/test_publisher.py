"""``publisher``: the partition a tweet goes to when the reading side hashed its key
(``partition_for``), and how ``KafkaPublisher.publish`` hands messages to the producer."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from common.kafka import OutgoingMessage
from ingestor.errors import KafkaUnavailableError
from ingestor.logic import key_hashes
from ingestor.publisher import KafkaPublisher, partition_for
from ingestor.settings import IngestorSettings


def key_hash(key: bytes) -> int:
    return key_hashes([key])[0]


def producer(partitions: dict[str, set[int]]) -> Any:
    """Just the producer's metadata lookup the function reads (``client.cluster``)."""
    return SimpleNamespace(client=SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=partitions.get)))


@pytest.mark.parametrize("count", [1, 3, 7])
@pytest.mark.parametrize("key", ["1", "1921567810453299200", "9223372036854775807"])
def test_the_default_partitioners_pick_from_the_hash(key: str, count: int) -> None:
    message = OutgoingMessage("raw", key, b"{}", key_hash=key_hash(key.encode()))
    every = list(range(count))
    assert partition_for(producer({"raw": set(every)}), message) == DefaultPartitioner()(key.encode(), every, every)


def test_without_a_hash_or_metadata_the_producer_picks() -> None:
    hashed = OutgoingMessage("raw", "7", b"{}", key_hash=key_hash(b"7"))
    assert partition_for(producer({"raw": {0, 1, 2}}), OutgoingMessage("raw", "7", b"{}")) is None  # a reject
    assert partition_for(producer({}), hashed) is None  # the topic not in the metadata yet
    assert partition_for(producer({"raw": set()}), hashed) is None


def test_each_message_reads_the_metadata_of_its_own_topic_as_it_is_now() -> None:
    partitions = {"raw": {0, 1, 2, 3, 4, 5}, "other": {0}}
    meta = producer(partitions)
    key = b"1921567810453299200"
    assert partition_for(meta, OutgoingMessage("other", "k", b"", key_hash=key_hash(key))) == 0
    before = partition_for(meta, OutgoingMessage("raw", "k", b"", key_hash=key_hash(key)))
    partitions["raw"] = {0, 1}  # recreated smaller between two messages of one batch
    after = partition_for(meta, OutgoingMessage("raw", "k", b"", key_hash=key_hash(key)))
    assert before == key_hash(key) % 6 and after == key_hash(key) % 2


# --- ``KafkaPublisher.publish``: record batches per partition, every message once, in order -------


class Builder:
    """aiokafka's ``BatchBuilder`` as the publisher uses it: full after ``capacity`` records."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[bytes] = []
        self.closed = False

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes, headers: Any) -> object | None:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append(value)
        return object()

    def close(self) -> None:
        self.closed = True


class Producer:
    """A producer that records what it was handed, in order, and what was acknowledged.

    ``refuse`` holds the numbers of the hand-overs (1, 2, ...) that raise before the producer
    holds anything; ``fail`` those whose delivery future fails with the given error."""

    def __init__(self, partitions: dict[str, set[int]], *, capacity: int = 100) -> None:
        self.client = SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=partitions.get))
        self.capacity = capacity
        self.refuse: set[int] = set()
        self.fail: dict[int, Exception] = {}
        self.handovers = 0
        self.handed: list[tuple[str, int | None, bytes]] = []  # (topic, partition, value) in hand-over order
        self.acked: list[bytes] = []
        self.batches: list[int] = []  # the size of each batch submitted

    def create_batch(self) -> Builder:
        return Builder(self.capacity)

    def _future(self, values: list[bytes]) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        error = self.fail.get(self.handovers)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)
            self.acked += values
        return future

    def _hand(self) -> None:
        self.handovers += 1
        if self.handovers in self.refuse:
            raise KafkaTimeoutError()

    async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        assert builder.closed, "a submitted batch is closed, so nothing else joins it"
        self._hand()
        self.handed += [(topic, partition, value) for value in builder.records]
        self.batches.append(len(builder.records))
        return self._future(builder.records)

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        self._hand()
        self.handed.append((topic, partition, value))
        return self._future([value])


def tweet(n: int) -> OutgoingMessage:
    key = str(1921567810453299200 + n)
    return OutgoingMessage("raw", key, f"t{n}".encode(), [("traceparent", b"00-x")], key_hash(key.encode()))


def reject(n: int, *, sampled: bool = False) -> OutgoingMessage:
    """A reject: keyed by its source, no hash; a sampled one has no headers (its producer span roots its trace)."""
    return OutgoingMessage("rejected", "file.json", f"r{n}".encode(), [] if sampled else [("traceparent", b"00-y")])


def publisher_with(producer: Producer, *, retry: bool = True, traced: bool = False) -> KafkaPublisher:
    publisher = KafkaPublisher(IngestorSettings(), retry=retry, stopping=asyncio.Event())
    publisher._producer = producer  # type: ignore[assignment]
    publisher._traced = traced
    return publisher


def in_partition_order(producer: Producer, messages: list[OutgoingMessage]) -> None:
    """Each partition got its messages in the order they were published."""
    for place in {(topic, partition) for topic, partition, _ in producer.handed}:
        got = [value for topic, partition, value in producer.handed if (topic, partition) == place]
        assert got == [m.value for m in messages if m.value in got]


PARTITIONS = {"raw": {0, 1, 2}, "rejected": {0}}


async def test_tweets_go_in_one_record_batch_per_partition_each_once_in_order() -> None:
    producer = Producer(PARTITIONS)
    messages = [tweet(n) for n in range(30)]
    await publisher_with(producer).publish(messages)
    assert sorted(producer.acked) == sorted(m.value for m in messages)
    assert len(producer.batches) == 3 and sum(producer.batches) == 30  # one batch a partition, none sent alone
    assert {(topic, partition) for topic, partition, _ in producer.handed} == {("raw", 0), ("raw", 1), ("raw", 2)}
    for _, partition, value in producer.handed:
        message = next(m for m in messages if m.value == value)
        assert partition == partition_for(producer, message)  # type: ignore[arg-type]
    in_partition_order(producer, messages)


async def test_a_full_batch_is_submitted_and_its_partition_goes_on_in_the_next() -> None:
    producer = Producer({"raw": {0}}, capacity=4)
    messages = [tweet(n) for n in range(10)]
    await publisher_with(producer).publish(messages)
    assert producer.batches == [4, 4, 2]
    assert producer.acked == [m.value for m in messages]


@pytest.mark.parametrize("refused", [1, 2, 3, 4])
async def test_a_batch_the_producer_refuses_is_sent_again_with_every_message_after_it(refused: int) -> None:
    """A hand-over that raises (no room in the accumulator in time, no metadata) held nothing:
    the messages of that batch, of batches filled but not submitted and of those not read yet
    are all sent on the next round, and none that the producer already held is sent twice."""
    producer = Producer({"raw": {0, 1}}, capacity=3)
    producer.refuse = {refused}
    messages = [tweet(n) for n in range(14)]
    await publisher_with(producer).publish(messages)
    assert sorted(producer.acked) == sorted(m.value for m in messages)  # each exactly once
    assert len(producer.acked) == len(set(producer.acked))
    in_partition_order(producer, messages)


async def test_a_batch_whose_delivery_failed_retriably_is_sent_again() -> None:
    """Its messages never left the producer (the old per-message path did the same per message)."""
    producer = Producer({"raw": {0}}, capacity=3)
    producer.fail = {2: KafkaTimeoutError()}
    messages = [tweet(n) for n in range(8)]
    await publisher_with(producer).publish(messages)
    values = [m.value for m in messages]
    assert producer.acked == values[:3] + values[6:] + values[3:6]  # each exactly once
    assert producer.handovers == 4


async def test_a_permanent_delivery_failure_fails_the_publish() -> None:
    producer = Producer({"raw": {0}})
    producer.fail = {1: MessageSizeTooLargeError()}
    with pytest.raises(KafkaUnavailableError, match="MessageSizeTooLarge"):
        await publisher_with(producer).publish([tweet(1), tweet(2)])


async def test_without_retry_a_refused_batch_fails_the_publish() -> None:
    producer = Producer({"raw": {0}})
    producer.refuse = {1}
    with pytest.raises(KafkaUnavailableError, match="publishing to Kafka"):
        await publisher_with(producer, retry=False).publish([tweet(1), tweet(2)])


@pytest.mark.parametrize("traced", [False, True])
async def test_messages_sent_alone_never_overtake_earlier_ones_of_their_topic(traced: bool) -> None:
    """Rejects (no key hash), a sampled reject (sent through its producer span) and a tweet whose
    topic's metadata is not known yet are sent alone; whatever of their topic was published
    before them is handed over first, so a topic's messages keep their order."""
    producer = Producer({"raw": {0, 1, 2}, "other": {0, 1}})
    other = [
        OutgoingMessage("other", str(n), f"o{n}".encode(), [("traceparent", b"00-z")], key_hash(b"%d" % n))
        for n in range(6)
    ]
    alone_in_other = OutgoingMessage("other", "k", b"o-alone", [("traceparent", b"00-z")])  # no hash: alone
    messages = [
        tweet(0),
        reject(0),
        tweet(1),
        reject(1, sampled=True),
        tweet(2),
        reject(2),
        *other[:3],
        alone_in_other,
        *other[3:],
        tweet(3),
        OutgoingMessage("unknown-topic", "1", b"u", [], key_hash(b"1")),
    ]
    await publisher_with(producer, traced=traced).publish(messages)
    assert sorted(producer.acked) == sorted(m.value for m in messages)
    handed = [value for _, _, value in producer.handed]
    assert [v for v in handed if v.startswith(b"r")] == [b"r0", b"r1", b"r2"]
    alone_at = handed.index(b"o-alone")
    assert set(handed[:alone_at]) >= {m.value for m in other[:3]}  # the batches before it went first
    in_partition_order(producer, messages)
