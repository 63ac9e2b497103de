"""The loop's failure policy for a batch, without a broker: the consumer is built, never started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import ProducerFenced

from common.delivery import BatchLoop, Subscription, group_loop
from common.errors import ConfigurationError
from common.events import DeadLetter
from common.fencing import revoke_hold_s
from common.kafka import OutgoingMessage
from common.settings import KafkaSettings


def batch(n: int) -> list[ConsumerRecord]:
    return [ConsumerRecord("src", 0, i, 0, 0, str(i).encode(), str(i).encode(), None, 0, 0, []) for i in range(n)]


@pytest.fixture
async def consumer() -> AsyncIterator[AIOKafkaConsumer]:
    built = AIOKafkaConsumer("src", bootstrap_servers="127.0.0.1:1", group_id="g", enable_auto_commit=False)
    yield built
    await built.stop()


class Failing:
    """Raises on batches holding a poison value; ``everything`` makes every record poison."""

    def __init__(self, poison: set[bytes], everything: bool = False) -> None:
        self.poison, self.everything = poison, everything

    async def __call__(self, records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        if self.everything or any(r.value in self.poison for r in records):
            raise RuntimeError("inference failed")
        return [OutgoingMessage("out", None, r.value or b"") for r in records]


async def test_a_transactional_loop_without_a_producer_is_a_configuration_error(consumer: AIOKafkaConsumer) -> None:
    with pytest.raises(ConfigurationError):
        BatchLoop(consumer, None, Failing(set()), transactional=True, group_id="g")


async def test_the_loop_keeps_its_consumers_topics_when_it_installs_its_rebalance_listener(
    consumer: AIOKafkaConsumer,
) -> None:
    loop = BatchLoop(consumer, None, Failing(set()))
    assert loop.consumer.subscription() == {"src"}


async def test_a_poison_record_in_a_batch_becomes_one_dead_letter_beside_the_other_outputs(
    consumer: AIOKafkaConsumer,
) -> None:
    loop = BatchLoop(consumer, None, Failing({b"2"}), service="svc")
    outgoing = await loop._failures.outputs(batch(5))
    assert sorted(m.value for m in outgoing if m.topic == "out") == [b"0", b"1", b"3", b"4"]
    [letter] = [DeadLetter.model_validate_json(m.value) for m in outgoing if m.topic == "src.dlq"]
    assert letter.offset == 2 and letter.reason == "unhandled_error"


async def test_the_loop_takes_its_attempts_per_record_from_its_settings(consumer: AIOKafkaConsumer) -> None:
    loop = BatchLoop(consumer, None, Failing(set()), service="svc", kafka=KafkaSettings(max_record_attempts=4))
    assert (loop._failures.max_attempts, loop._failures.service) == (4, "svc")


async def test_a_fenced_producer_is_replaced_and_fenced_again_and_again_backs_off_the_longest_and_goes_on(
    consumer: AIOKafkaConsumer,
) -> None:
    built: list[AIOKafkaProducer] = []

    def new_producer() -> AIOKafkaProducer:
        built.append(AIOKafkaProducer(bootstrap_servers="127.0.0.1:1"))
        return built[-1]

    loop = BatchLoop(consumer, new_producer(), Failing(set()), new_producer=new_producer, fenced_limit=3)
    for _ in range(2):  # a broker restart, a timed-out transaction: a fresh producer each time
        await loop._replace_producer(ProducerFenced())
        assert loop.producer is built[-1]
    assert loop._backoff.next() == loop._backoff.first  # no escalation yet
    for _ in range(3):  # again and again: never the end of the process
        await loop._replace_producer(ProducerFenced())
        assert loop.producer is built[-1] and not loop._producer_started
        assert loop._backoff.next() == loop.max_backoff_s  # the longest pause before the next try
    assert len(built) == 6
    await asyncio.gather(*loop._retiring)  # the replaced ones are stopped in the background
    for producer in built:
        await producer.stop()


async def test_replacements_long_ago_do_not_count_towards_the_limit(consumer: AIOKafkaConsumer) -> None:
    def new_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")

    loop = BatchLoop(consumer, None, Failing(set()), new_producer=new_producer, fenced_limit=2, fenced_window_s=0.05)
    await loop._replace_producer(ProducerFenced())
    await asyncio.sleep(0.1)
    await loop._replace_producer(ProducerFenced())  # the first fell out of the window
    assert loop.producer is not None
    await loop.producer.stop()


async def test_without_a_way_to_build_producers_a_fenced_one_is_a_configuration_error(
    consumer: AIOKafkaConsumer,
) -> None:
    loop = BatchLoop(consumer, None, Failing(set()))
    with pytest.raises(ConfigurationError):
        await loop._replace_producer(ProducerFenced())


async def test_a_group_loop_takes_its_revoke_bounds_from_the_settings_and_its_consumer_outlasts_them() -> None:
    kafka = KafkaSettings(revoke_grace_s=12, delivery_timeout_s=40, offsets_visible_s=7, max_record_attempts=5)
    loop = group_loop(kafka, Subscription("s", "g", ["t"], 10, 100, transactional=False), Failing(set()))
    try:
        assert loop.kafka is kafka  # the loop's bounds and the consumer's rebalance timeout: one source
        assert loop._failures.max_attempts == 5
        hold = revoke_hold_s(kafka.revoke_grace_s, kafka.delivery_timeout_s, kafka.offsets_visible_s)
        assert loop.consumer._rebalance_timeout_ms > hold * 1000 > loop.consumer._session_timeout_ms
    finally:
        await loop.consumer.stop()
        if loop.producer is not None:
            await loop.producer.stop()


def test_the_default_settings_bound_the_attempts_per_record() -> None:
    assert 5 <= KafkaSettings().max_record_attempts <= 8


async def test_a_stop_that_arrives_as_the_batch_commit_completes_still_stops_the_loop(
    consumer: AIOKafkaConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker is stopped by cancelling its task. On Python 3.11, ``asyncio.wait_for`` returned
    the inner result and dropped a cancel that arrived in the step its inner task finished, so a
    hard-stopped indexer went on consuming (a CI run hung on it); the delivery bound must not."""

    async def no_outputs(records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        return []

    async def commit_then_stop(offsets: object = None) -> None:
        worker.cancel()  # the stop lands in the very step the commit completes

    monkeypatch.setattr(consumer, "commit", commit_then_stop)
    monkeypatch.setattr(consumer, "highwater", lambda tp: None)  # never started: nothing assigned
    loop = BatchLoop(consumer, None, no_outputs)
    worker = asyncio.create_task(loop._process(batch(3)))
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert worker.cancelled()
