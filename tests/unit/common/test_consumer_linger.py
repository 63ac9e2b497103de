"""The consumer linger: a fetch held by the broker until about a batch of bytes or the linger."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from common.delivery import Subscription, group_loop
from common.kafka import LINGER_MIN_BYTES, OutgoingMessage, make_consumer
from common.settings import KafkaSettings
from gateway.settings import GatewaySettings


# async: aiokafka builds a consumer on the running event loop
async def test_a_linger_asks_the_broker_to_hold_fetches_for_a_batch_of_bytes_or_the_linger() -> None:
    consumer = make_consumer(KafkaSettings(), "g", "t", fetch_linger_ms=750)
    assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (LINGER_MIN_BYTES, 750)


async def test_without_a_linger_a_fetch_returns_as_soon_as_one_byte_is_there() -> None:
    consumer = make_consumer(KafkaSettings(), "g", "t")
    assert consumer._fetch_min_bytes == 1


async def test_a_group_loop_hands_its_batch_size_and_linger_to_its_consumer_and_the_indexer_lingers_by_default() -> (
    None
):
    linger = GatewaySettings().indexer_linger_ms
    assert linger > 0
    subscription = Subscription("s", "g", ["t"], batch_size=10, max_wait_ms=100, transactional=False, linger_ms=linger)
    loop = group_loop(KafkaSettings(), subscription, _no_output)
    try:
        assert (loop.consumer._fetch_min_bytes, loop.consumer._fetch_max_wait_ms) == (LINGER_MIN_BYTES, linger)
        # the consumer caps each batch (the loop's poll passes no cap of its own)
        assert (loop.consumer._max_poll_records, loop.max_wait_ms) == (10, 100)
    finally:
        await loop.consumer.stop()
        if loop.producer is not None:
            await loop.producer.stop()


async def _no_output(batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
    return []
