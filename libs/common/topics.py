"""Topic names. Every name can be prefixed (tests use a unique prefix per run)."""

from __future__ import annotations

from dataclasses import dataclass

RAW = "tweets.raw"
LABELS = "tweets.labels"
REJECTED = "tweets.rejected"
REQUESTS = "tweets.requests"  # + ".<task>": tweets the gateway re-queues for one classifier
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    @property
    def raw(self) -> str:
        return f"{self.prefix}{RAW}"

    @property
    def labels(self) -> str:
        return f"{self.prefix}{LABELS}"

    @property
    def rejected(self) -> str:
        return f"{self.prefix}{REJECTED}"

    def requests(self, task: str) -> str:
        """Re-label requests for one task (``emotion`` or ``stance``), queued by the gateway."""
        return f"{self.prefix}{REQUESTS}.{task}"

    def dlq(self, topic: str) -> str:
        """Dead-letter topic for messages of ``topic`` that a consumer could not process."""
        return f"{topic}{DLQ_SUFFIX}"

    def all(self) -> list[str]:
        requests = [self.requests(task) for task in ("emotion", "stance")]
        return [
            self.raw,
            self.labels,
            self.rejected,
            *requests,
            self.dlq(self.raw),
            self.dlq(self.labels),
            *(self.dlq(r) for r in requests),
        ]
