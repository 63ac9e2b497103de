"""How long the indexer has been unable to write, and why: ``/metrics`` and the log.

The indexer is blocked from the first batch Elasticsearch refuses as a whole for a systemic
reason (``common.tweet_store.systemic_reason``: auth, a write block, read-only, overload,
failure, unreachable) until the next batch it stores. While blocked, the delivery loop pauses
and retries the batch; nothing is dead-lettered. ``make status`` reads these two series.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)
BLOCKED_SECONDS = Counter(
    "gateway_indexer_blocked_seconds", "Seconds the indexer could not write to Elasticsearch (systemic refusals)"
)
BLOCKED = Gauge("gateway_indexer_blocked", "1 while the indexer cannot write, labelled with the reason", ["reason"])


@dataclass
class BlockedTime:
    """Counts blocked time as it passes: each refusal adds the time since the last observation."""

    clock: Callable[[], float] = time.monotonic
    reason: str | None = None
    since: float = 0.0
    last: float = 0.0
    total_s: float = field(default=0.0)

    def refused(self, reason: str, detail: str) -> None:
        now = self.clock()
        if self.reason is None:
            self.since = now
            log.warning("elasticsearch refuses writes: pausing, nothing is dead-lettered",
                        extra={"reason": reason, "detail": detail[:300]})  # fmt: skip
        else:
            self._add(now)
            if reason != self.reason:
                BLOCKED.labels(self.reason).set(0)
        self.reason, self.last = reason, now
        BLOCKED.labels(reason).set(1)

    def stored(self) -> None:
        if self.reason is None:
            return
        now = self.clock()
        self._add(now)
        blocked_s = round(now - self.since, 1)
        log.info("elasticsearch takes writes again", extra={"reason": self.reason, "blocked_s": blocked_s})
        BLOCKED.labels(self.reason).set(0)
        self.reason = None

    def _add(self, now: float) -> None:
        elapsed = max(0.0, now - self.last)
        self.total_s += elapsed
        BLOCKED_SECONDS.inc(elapsed)
