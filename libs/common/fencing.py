"""The bookkeeping the delivery loop (:mod:`common.delivery`) relies on, free of I/O: which
offsets a batch commits or rewinds to, backoff delays, and the fence that keeps a batch from
being delivered after its partitions were revoked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)

REVOKE_MARGIN_S = 5.0  # a cancelled delivery's clean-up, past its own timeout
REJOIN_MARGIN_S = 10.0  # the JoinGroup round trip after the revoke listener returns


def revoke_hold_s(grace: float, delivery_timeout: float, offsets_visible: float) -> float:
    """The longest :meth:`Fence.revoke` plus the wait for offsets can hold a rebalance: the grace
    for a batch still being handled, then its delivery (cut at ``delivery_timeout``), then the
    wait until the committed offsets are readable. Every part is bounded."""
    return grace + delivery_timeout + REVOKE_MARGIN_S + offsets_visible


def rebalance_timeout_ms(grace: float, delivery_timeout: float, offsets_visible: float) -> int:
    """The consumer's ``rebalance_timeout_ms``: longer than any revoke hold, so the broker never
    evicts a member that is still finishing a batch and hands its partitions to another (whose
    commit would then race ours: aiokafka's ``TxnOffsetCommit`` carries no generation)."""
    return int((revoke_hold_s(grace, delivery_timeout, offsets_visible) + REJOIN_MARGIN_S) * 1000)


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

    def longest(self) -> None:
        """The next delay is the cap (something keeps failing in a way retrying fast cannot fix)."""
        self._next = self.cap


class Fence:
    """Decides whether a batch may still be delivered: only within the assignment it was fetched in.

    The loop calls :meth:`begin` when it starts a batch, :meth:`enter_delivery` (synchronous, so
    no rebalance can slip in between the check and the delivery) before publishing, and
    :meth:`end` when done. The rebalance listener calls :meth:`revoke`, which gives a batch
    still being handled ``grace`` seconds, waits for a delivery under way (which the loop cuts
    at ``delivery_timeout``), and then moves to a new generation: whatever is still in flight
    can no longer be delivered. Both waits are bounded, so the member always rejoins within
    :func:`revoke_hold_s`.
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

    async def revoke(self, grace: float, delivery_timeout: float) -> None:
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
        # A delivery under way completes, fails or is cut at its timeout first; the margin is a
        # backstop only (the loop's own timeout started earlier).
        try:
            async with asyncio.timeout(delivery_timeout + REVOKE_MARGIN_S):
                await self._not_delivering.wait()
        except TimeoutError:
            log.error("a delivery outlived its timeout at revoke; letting the partitions go")
        self.generation += 1
