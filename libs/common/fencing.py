"""The bookkeeping the delivery loop (:mod:`common.delivery`) relies on, free of I/O: which
offsets a batch commits or rewinds to, backoff delays, and the fence that keeps a batch from
being delivered after its partitions were revoked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition


def next_offsets(batch: Iterable[ConsumerRecord]) -> dict[TopicPartition, int]:
    """The offsets to commit once ``batch`` is done: one past its last record, per partition."""
    offsets: dict[TopicPartition, int] = {}
    for record in batch:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


def first_offsets(batch: Iterable[ConsumerRecord]) -> dict[TopicPartition, int]:
    """Where to rewind to so that ``batch`` is fetched again: its first record, per partition."""
    offsets: dict[TopicPartition, int] = {}
    for record in batch:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = min(offsets.get(tp, record.offset), record.offset)
    return offsets


@dataclass
class Backoff:
    """Capped exponential delays: first, 2·first, 4·first, ... up to ``cap``; ``reset`` on success."""

    first: float = 0.5
    cap: float = 30.0
    _next: float = 0.0

    def next(self) -> float:
        delay = self._next or self.first
        self._next = min(delay * 2, self.cap)
        return min(delay, self.cap)

    def reset(self) -> None:
        self._next = 0.0


class Fence:
    """Decides whether a batch may still be delivered: only within the assignment it was fetched in.

    The loop calls :meth:`begin` when it starts a batch, :meth:`enter_delivery` (synchronous, so
    no rebalance can slip in between the check and the delivery) before publishing, and
    :meth:`end` when done. The rebalance listener calls :meth:`revoke`, which waits for a
    delivery under way, gives a batch still being handled ``grace`` seconds, and then moves to a
    new generation: whatever is still in flight can no longer be delivered.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._not_delivering = asyncio.Event()
        self._not_delivering.set()

    def begin(self) -> int:
        self._idle.clear()
        return self.generation

    def enter_delivery(self, generation: int) -> bool:
        if generation != self.generation:
            return False
        self._not_delivering.clear()
        return True

    def end(self) -> None:
        self._not_delivering.set()
        self._idle.set()

    async def revoke(self, grace: float) -> None:
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        await self._not_delivering.wait()  # a delivery under way always completes (or fails) first
        self.generation += 1
