"""The API provider's quota, configured once for the whole stance group and shared by its replicas.

``STANCE_REQUESTS_PER_SECOND`` is the quota of the group, not of one process. Every
``STANCE_QUOTA_REFRESH_S`` each replica reads how many members its consumer group has and
sets its own limiter to ``quota / members``. No coordination beyond Kafka's group membership
is needed, and the sum over the replicas is the quota once every replica has refreshed.

During a rebalance the sum is off for at most one refresh interval: a replica that joins
starts at the share it computes on start-up while the others still use the old, larger share
(overshoot up to ``(members + 1) / members`` of the quota), and when one leaves the others keep
the smaller share until their next refresh (undershoot). A replica that dies without leaving
the group stays a member until the group's session timeout (10 s by default), so the others
undershoot that long too. The provider's 429s with ``Retry-After`` (honoured by the client)
absorb a short overshoot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def replica_share(group_quota: float, members: int) -> float:
    """This replica's requests per second: an equal share; a group not yet joined counts as one."""
    if group_quota <= 0:
        raise ValueError("the group quota must be positive")
    return group_quota / max(1, members)


class SharedQuota:
    """Keeps ``apply(share)`` in step with the group's membership until ``stopping`` is set."""

    def __init__(
        self,
        group_quota: float,
        count_members: Callable[[], Awaitable[int]],
        apply: Callable[[float], None],
        refresh_s: float,
    ) -> None:
        self._group_quota = group_quota
        self._count_members = count_members
        self._apply = apply
        self._refresh_s = refresh_s
        self.members = 1
        self.share = replica_share(group_quota, 1)

    async def refresh(self) -> float:
        """Read the membership once and apply the new share if it changed; returns the share."""
        try:
            members = await self._count_members()
        except Exception as exc:  # Kafka unreachable: keep the last share, the batch loop pauses anyway
            log.warning("cannot read the group's members; keeping the last quota share", extra={"error": repr(exc)})
            return self.share
        share = replica_share(self._group_quota, members)
        if share != self.share:
            log.info(
                "quota share changed",
                extra={"members": members, "requests_per_second": round(share, 3), "group_quota": self._group_quota},
            )
            self._apply(share)
        self.members, self.share = max(1, members), share
        return share

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await stopping.wait()
