"""The delivery loop's bookkeeping: offsets to commit and to rewind to, backoff, the fence."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from common import fencing
from common.fencing import Backoff, Fence, first_offsets, next_offsets, rebalance_timeout_ms, revoke_hold_s


def record(partition: int, offset: int, topic: str = "t") -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, 0, 0, None, b"v", None, 0, 0, [])


BATCH = [record(0, 5), record(1, 9), record(0, 7), record(0, 6), record(1, 8), record(2, 0, topic="u")]


def test_next_offsets_are_one_past_the_last_record_of_each_partition() -> None:
    assert next_offsets(BATCH) == {TopicPartition("t", 0): 8, TopicPartition("t", 1): 10, TopicPartition("u", 2): 1}


def test_first_offsets_are_the_earliest_record_of_each_partition_in_any_order() -> None:
    assert first_offsets(BATCH) == {TopicPartition("t", 0): 5, TopicPartition("t", 1): 8, TopicPartition("u", 2): 0}


def test_offsets_of_an_empty_batch_are_empty() -> None:
    assert next_offsets([]) == first_offsets([]) == {}


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_reset() -> None:
    backoff = Backoff(first=0.5, cap=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_backoff_never_exceeds_a_cap_below_its_first_delay() -> None:
    assert Backoff(first=5.0, cap=1.0).next() == 1.0


def test_a_batch_fetched_before_nothing_changed_may_be_delivered() -> None:
    fence = Fence()
    generation = fence.begin()
    assert fence.enter_delivery(generation)
    fence.end()


async def test_a_revoke_while_idle_returns_at_once_and_fences_older_batches() -> None:
    fence = Fence()
    stale = fence.generation
    await asyncio.wait_for(fence.revoke(grace=60, delivery_timeout=60), 1)
    assert not fence.enter_delivery(stale)
    assert fence.enter_delivery(fence.begin())


async def test_a_revoke_waits_for_a_batch_that_finishes_within_the_grace_and_lets_it_deliver() -> None:
    fence = Fence()
    generation = fence.begin()
    revoke = asyncio.create_task(fence.revoke(grace=60, delivery_timeout=60))
    await asyncio.sleep(0)
    assert not revoke.done()  # the batch is still being handled
    assert fence.enter_delivery(generation)  # handler done: it may still deliver
    await asyncio.sleep(0)
    assert not revoke.done()  # and the revoke waits for the delivery too
    fence.end()
    await asyncio.wait_for(revoke, 1)
    assert fence.generation == generation + 1


async def test_a_batch_still_handled_after_the_grace_is_abandoned() -> None:
    fence = Fence()
    generation = fence.begin()
    await asyncio.wait_for(fence.revoke(grace=0.01, delivery_timeout=60), 1)
    assert not fence.enter_delivery(generation)
    fence.end()


async def test_a_delivery_under_way_is_awaited_however_long_the_grace() -> None:
    fence = Fence()
    generation = fence.begin()
    assert fence.enter_delivery(generation)
    revoke = asyncio.create_task(fence.revoke(grace=0.01, delivery_timeout=60))
    await asyncio.sleep(0.05)
    assert not revoke.done()
    fence.end()
    await asyncio.wait_for(revoke, 1)


@pytest.mark.parametrize("revokes", [1, 3])
async def test_each_revoke_moves_to_a_new_generation(revokes: int) -> None:
    fence = Fence()
    for _ in range(revokes):
        await fence.revoke(grace=0, delivery_timeout=60)
    assert fence.generation == revokes


async def test_a_delivery_that_outlives_its_timeout_does_not_hold_the_revoke_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fencing, "REVOKE_MARGIN_S", 0.0)
    fence = Fence()
    generation = fence.begin()
    assert fence.enter_delivery(generation)  # and never ends: a hung commit
    await asyncio.wait_for(fence.revoke(grace=0, delivery_timeout=0.01), 5)
    assert fence.generation == generation + 1
    assert not fence.enter_delivery(generation)


def test_backoff_longest_jumps_to_the_cap() -> None:
    backoff = Backoff(first=0.5, cap=30.0)
    backoff.longest()
    assert backoff.next() == 30.0


def test_the_rebalance_timeout_outlasts_every_part_of_the_revoke_hold() -> None:
    grace, delivery, visible = 30.0, 60.0, 10.0
    hold = revoke_hold_s(grace, delivery, visible)
    assert hold >= grace + delivery + visible
    assert rebalance_timeout_ms(grace, delivery, visible) > hold * 1000
