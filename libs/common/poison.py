"""What the delivery loop does when its handler fails on a batch: tell a systemic failure (a
dependency, or the handler itself, fails on every record) from poison records (records that
fail alone while others succeed); retry the first, dead-letter only the second.

- A failed batch is bisected: its halves are handled separately, recursively, down to the
  records that fail alone. When both halves of a split fail before any record has succeeded,
  the failure looks systemic and the search stops there (an outage costs three handler calls
  a round, not 2·n); every ``max_attempts``-th such round in a row probes the first half down
  to a single record instead, so poison records in both halves are found too.
- Nothing succeeded (a one-record batch included): a :class:`TransientError`, so the loop
  rewinds, pauses the assignment and backs off. Nothing is dead-lettered, however long it lasts.
- A record that fails alone while others succeed: a non-transient error dead-letters it at once
  (reason ``unhandled_error``); a transient one retries the batch, and dead-letters the record
  (reason ``retries_exhausted``) once it has failed alone ``max_attempts`` times.
- A :class:`SystemicError` (a dependency refusing everything: Elasticsearch write-blocked or
  unreachable) is systemic by definition: the batch is retried as a whole at once, without
  bisecting, and counts against no record.
- A :class:`ConfigurationError` from the handler is never retried nor dead-lettered: it ends the loop.

A batch of n records with k poison records costs about 2·k·log2(n) extra handler calls a round.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition

from common.errors import ConfigurationError, PermanentError, SystemicError, TransientError, is_transient
from common.kafka import OutgoingMessage, dead_letter

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[list[OutgoingMessage]]]
UNHANDLED = "unhandled_error"  # dead-letter reason: a record failing alone with a non-transient error
RETRIES_EXHAUSTED = "retries_exhausted"  # dead-letter reason: a record failing alone, transiently, too often
RecordId = tuple[str, int, int]


def record_id(record: ConsumerRecord) -> RecordId:
    return (record.topic, record.partition, record.offset)


@dataclass
class Isolated:
    """What bisection made of a failing batch: the outputs of every healthy sub-batch, how many
    records they held, and the records that failed alone with their errors."""

    outgoing: list[OutgoingMessage] = field(default_factory=list)
    failed: list[tuple[ConsumerRecord, Exception]] = field(default_factory=list)
    succeeded: int = 0


class _Systemic(Exception):
    """Both halves of a split failed and nothing has succeeded: stop bisecting."""


async def isolate(batch: list[ConsumerRecord], handle: BatchHandler, error: Exception, *, probe: bool) -> Isolated:
    """Handle ``batch``, which already failed as a whole with ``error``, in halves, recursively.

    ``probe``: when both halves fail with nothing succeeded yet, follow the first half down to
    a single record before calling it systemic (else stop at once). A systemic result has
    ``succeeded == 0``.
    """
    result = Isolated()
    if len(batch) == 1:
        result.failed.append((batch[0], error))
        return result
    try:
        await _split(batch, handle, result, probe)
    except _Systemic:
        return Isolated(failed=[(record, error) for record in batch])
    return result


async def _split(batch: list[ConsumerRecord], handle: BatchHandler, result: Isolated, probe: bool) -> None:
    middle = len(batch) // 2
    failures: list[tuple[list[ConsumerRecord], Exception]] = []
    for half in (batch[:middle], batch[middle:]):
        try:
            outgoing = await handle(half)
        except (ConfigurationError, SystemicError):
            raise
        except Exception as exc:
            failures.append((half, exc))
        else:
            result.outgoing += outgoing
            result.succeeded += len(half)
    for half, failure in failures:
        if len(failures) == 2 and not result.succeeded and (not probe or len(half) == 1):
            raise _Systemic
        if len(half) == 1:
            result.failed.append((half[0], failure))
        else:
            await _split(half, handle, result, probe)


@dataclass
class FailurePolicy:
    """The handler's output for a batch, with the failure policy above; its state (how often
    each record failed alone, how many systemic rounds in a row) lives as long as the loop."""

    handle: BatchHandler
    service: str
    max_attempts: int = 6
    failed_alone: dict[RecordId, int] = field(default_factory=dict)
    systemic_rounds: int = 0

    async def outputs(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        try:
            outgoing = await self.handle(batch)
        except (ConfigurationError, SystemicError):
            raise
        except Exception as exc:
            outgoing = await self._after_failure(batch, exc)
        self.systemic_rounds = 0
        for record in batch:
            self.failed_alone.pop(record_id(record), None)
        return outgoing

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked: their next owner counts afresh."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.failed_alone = {rid: n for rid, n in self.failed_alone.items() if rid[:2] not in gone}

    async def _after_failure(self, batch: list[ConsumerRecord], exc: Exception) -> list[OutgoingMessage]:
        probe = (self.systemic_rounds + 1) % self.max_attempts == 0
        isolated = await isolate(batch, self.handle, exc, probe=probe)
        if not isolated.succeeded:
            self.systemic_rounds += 1
            log.error(
                "every record of a batch failed: retrying it as transient, dead-lettering nothing",
                exc_info=exc,
                extra={"records": len(batch), "systemic_rounds": self.systemic_rounds},
            )
            raise TransientError(f"every record of a {len(batch)}-record batch failed: {exc!r}") from exc
        dead: list[OutgoingMessage] = []
        retry = 0
        for record, error in isolated.failed:
            if not is_transient(error):
                dead.append(self._dead(record, UNHANDLED, error))
                continue
            rid = record_id(record)
            attempts = self.failed_alone[rid] = self.failed_alone.get(rid, 0) + 1
            if attempts >= self.max_attempts:
                dead.append(self._dead(record, RETRIES_EXHAUSTED, error, f"failed alone {attempts} times; last: "))
            else:
                retry += 1
        if retry:
            raise TransientError(f"{retry} record(s) failed alone with a transient error; retrying") from exc
        return isolated.outgoing + dead

    def _dead(self, record: ConsumerRecord, reason: str, exc: Exception, prefix: str = "") -> OutgoingMessage:
        log.error(
            "dead-lettering a record the handler fails on while others succeed",
            exc_info=exc,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset, "reason": reason},
        )
        return dead_letter(record, self.service, PermanentError(reason, f"{prefix}{type(exc).__name__}: {exc}"))
