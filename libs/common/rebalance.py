"""How a :class:`common.delivery.BatchLoop` hands partitions over in a rebalance.

On revoke, the batch in flight is fenced off (finished if it is being delivered, cut at
``delivery_timeout_s``; abandoned after ``revoke_grace_s`` if it is still being handled) and
the revoke is held until the group can read the offsets our transactions committed, at most
``offsets_visible_s``: every part is bounded, and the consumer's rebalance timeout outlasts
their sum, so the member always rejoins before the broker would evict it; on assign, a loop that is backing off pauses
the new partitions too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from common.fencing import Fence
from common.metrics import OFFSETS_NOT_VISIBLE, REBALANCES
from common.poison import FailurePolicy
from common.settings import KafkaSettings

log = logging.getLogger(__name__)


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: RebalanceHandling) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._loop.on_assigned(set(assigned))


class RebalanceHandling:
    """The rebalance half of :class:`common.delivery.BatchLoop` (which owns the state below)."""

    consumer: AIOKafkaConsumer
    service: str
    fence: Fence
    kafka: KafkaSettings  # revoke_grace_s, delivery_timeout_s, offsets_visible_s
    _failures: FailurePolicy
    revoking: bool
    _txn_offsets: dict[TopicPartition, int]
    _resume_at: float | None

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revoking = True
        if revoked:
            REBALANCES.labels(self.service).inc()
        try:
            await self.fence.revoke(self.kafka.revoke_grace_s, self.kafka.delivery_timeout_s)
            await self._until_offsets_visible(revoked)
            self._failures.forget(revoked)
        finally:
            self.revoking = False
        log.info("partitions revoked", extra={"partitions": sorted(map(str, revoked))})

    async def _until_offsets_visible(self, revoked: set[TopicPartition]) -> None:
        """Hold the revoke until the group can read the offsets our transactions committed.

        Otherwise the next owner may fetch the previous committed offset and handle (and
        commit output for) the last batch a second time. Bounded, each lookup included: after
        ``offsets_visible_s`` we let go (warned and counted; the marker normally lands within
        milliseconds).
        """
        pending = {tp: offset for tp, offset in self._txn_offsets.items() if tp in revoked}
        self._txn_offsets.clear()
        deadline = time.monotonic() + self.kafka.offsets_visible_s
        while pending:
            for tp, offset in list(pending.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    continue
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(left):
                        committed = await self.consumer.committed(tp)
                    if (committed or 0) >= offset:
                        del pending[tp]
            if pending and time.monotonic() >= deadline:
                log.warning("committed offsets not visible yet; the next owner may replay", extra={"n": len(pending)})
                OFFSETS_NOT_VISIBLE.labels(self.service).inc()
                return
            if pending:
                await asyncio.sleep(0.02)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._resume_at is not None and assigned:
            # Still backing off: a fresh assignment starts unpaused, so pause it too.
            self.consumer.pause(*assigned)
        log.info("partitions assigned", extra={"partitions": sorted(map(str, assigned))})
