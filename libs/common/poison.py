"""Isolating poison records: when a handler fails on a whole batch for no known reason, split
the batch in halves until the records that make it fail are alone, and dead-letter only them.

A batch of n records with k poison records costs about 2·k·log2(n) extra handler calls. A
transient error met on the way (a dependency went down meanwhile) aborts the search: the
caller retries the whole batch later.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord

from common.errors import PermanentError, is_transient
from common.kafka import OutgoingMessage, dead_letter

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[list[OutgoingMessage]]]
UNHANDLED = "unhandled_error"  # the dead-letter reason of an isolated poison record


@dataclass
class Isolated:
    """What bisection made of a failing batch: the outputs of every healthy sub-batch, and the
    dead letters of the records that fail even when handled alone."""

    outgoing: list[OutgoingMessage] = field(default_factory=list)
    poison: list[ConsumerRecord] = field(default_factory=list)


async def isolate_poison(batch: list[ConsumerRecord], handle: BatchHandler, service: str, error: Exception) -> Isolated:
    """Handle ``batch``, which already failed as a whole with ``error``, in halves, recursively.

    Transient errors propagate. Any other exception of a single record dead-letters that
    record with reason ``unhandled_error`` and the exception in the detail.
    """
    result = Isolated()
    if len(batch) == 1:
        _dead(batch[0], error, service, result)
    else:
        await _split(batch, handle, service, result)
    return result


async def _split(batch: list[ConsumerRecord], handle: BatchHandler, service: str, result: Isolated) -> None:
    middle = len(batch) // 2
    for half in (batch[:middle], batch[middle:]):
        try:
            result.outgoing += await handle(half)
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(half) == 1:
                _dead(half[0], exc, service, result)
            else:
                await _split(half, handle, service, result)


def _dead(record: ConsumerRecord, exc: Exception, service: str, result: Isolated) -> None:
    log.error(
        "dead-lettering a record the handler fails on",
        exc_info=exc,
        extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
    )
    error = PermanentError(UNHANDLED, f"{type(exc).__name__}: {exc}")
    result.outgoing.append(dead_letter(record, service, error))
    result.poison.append(record)
