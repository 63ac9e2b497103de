"""The consumer linger: a fetch held by the broker until about a batch of bytes or the linger."""

from __future__ import annotations

from common.kafka import LINGER_MIN_BYTES, make_consumer
from common.settings import KafkaSettings
from gateway.settings import GatewaySettings


# async: aiokafka builds a consumer on the running event loop
async def test_a_linger_asks_the_broker_to_hold_fetches_for_a_batch_of_bytes_or_the_linger() -> None:
    consumer = make_consumer(KafkaSettings(), "g", "t", fetch_linger_ms=750)
    assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (LINGER_MIN_BYTES, 750)


async def test_without_a_linger_a_fetch_returns_as_soon_as_one_byte_is_there() -> None:
    consumer = make_consumer(KafkaSettings(), "g", "t")
    assert consumer._fetch_min_bytes == 1


def test_the_indexer_lingers_by_default_and_zero_turns_it_off() -> None:
    assert GatewaySettings().indexer_linger_ms > 0
    assert GatewaySettings(indexer_linger_ms=0).indexer_linger_ms == 0
