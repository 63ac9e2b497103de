"""The loop's failure policy for a batch, without a broker: the consumer is built, never started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import ProducerFenced

from common.delivery import BatchLoop
from common.errors import ConfigurationError, TransientError
from common.events import DeadLetter
from common.kafka import OutgoingMessage


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
    outgoing = await loop._outputs(batch(5))
    assert sorted(m.value for m in outgoing if m.topic == "out") == [b"0", b"1", b"3", b"4"]
    [letter] = [DeadLetter.model_validate_json(m.value) for m in outgoing if m.topic == "src.dlq"]
    assert letter.offset == 2 and letter.reason == "unhandled_error"


async def test_a_batch_on_which_every_record_fails_is_retried_as_transient_before_being_dead_lettered(
    consumer: AIOKafkaConsumer,
) -> None:
    loop = BatchLoop(consumer, None, Failing(set(), everything=True), service="svc", systemic_retries=3)
    for _ in range(3):
        with pytest.raises(TransientError):
            await loop._outputs(batch(4))
    outgoing = await loop._outputs(batch(4))
    assert len(outgoing) == 4 and all(m.topic == "src.dlq" for m in outgoing)


async def test_a_successful_batch_resets_the_count_of_systemic_failures(consumer: AIOKafkaConsumer) -> None:
    handler = Failing(set(), everything=True)
    loop = BatchLoop(consumer, None, handler, systemic_retries=1)
    with pytest.raises(TransientError):
        await loop._outputs(batch(4))
    handler.everything = False
    assert len(await loop._outputs(batch(4))) == 4
    handler.everything = True
    with pytest.raises(TransientError):  # a fresh strike, not the dead-lettering one
        await loop._outputs(batch(4))


async def test_transient_handler_errors_propagate_untouched(consumer: AIOKafkaConsumer) -> None:
    async def down(records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        raise TransientError("api circuit open")

    loop = BatchLoop(consumer, None, down)
    with pytest.raises(TransientError, match="circuit open"):
        await loop._outputs(batch(3))


async def test_a_fenced_producer_is_replaced_and_fenced_again_and_again_is_a_configuration_error(
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
    assert len(built) == 3
    with pytest.raises(ConfigurationError, match="REPLICA_ID"):
        await loop._replace_producer(ProducerFenced())
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
