"""Bisecting a failing batch down to its poison records."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from common.errors import TransientError
from common.events import DeadLetter
from common.kafka import OutgoingMessage
from common.poison import UNHANDLED, isolate_poison


def batch(n: int) -> list[ConsumerRecord]:
    return [
        ConsumerRecord("tweets.raw", i % 3, i, 0, 0, str(i).encode(), str(i).encode(), None, 0, 0, []) for i in range(n)
    ]


class Handler:
    """Fails (ValueError) on any batch holding one of ``poison``; else one output per record."""

    def __init__(self, poison: set[int], transient_after: int | None = None) -> None:
        self.poison = {str(p).encode() for p in poison}
        self.calls: list[int] = []
        self.transient_after = transient_after

    async def __call__(self, records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        self.calls.append(len(records))
        if self.transient_after is not None and len(self.calls) > self.transient_after:
            raise TransientError("went down meanwhile")
        if any(r.value in self.poison for r in records):
            raise ValueError("boom")
        return [OutgoingMessage("out", (r.key or b"").decode(), r.value or b"") for r in records]


def outputs(messages: list[OutgoingMessage]) -> list[str]:
    return sorted((m.key or "" for m in messages if m.topic == "out"), key=int)


def letters(messages: list[OutgoingMessage]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(m.value) for m in messages if m.topic.endswith(".dlq")]


@pytest.mark.parametrize("poison", [{0}, {13}, {31}, {4, 5}, {0, 17, 31}])
async def test_only_the_poison_records_are_dead_lettered_and_every_other_record_is_handled_once(
    poison: set[int],
) -> None:
    handler = Handler(poison)
    isolated = await isolate_poison(batch(32), handler, "svc", ValueError("boom"))
    assert outputs(isolated.outgoing) == [str(i) for i in range(32) if i not in poison]
    dead = letters(isolated.outgoing)
    assert sorted(d.offset for d in dead) == sorted(poison)
    assert sorted(r.offset for r in isolated.poison) == sorted(poison)
    assert all(d.reason == UNHANDLED and d.service == "svc" and "ValueError: boom" in d.detail for d in dead)
    assert all(d.source_topic == "tweets.raw" for d in dead)


async def test_one_poison_record_costs_about_two_handler_calls_per_halving() -> None:
    handler = Handler({21})
    await isolate_poison(batch(64), handler, "svc", ValueError("boom"))
    assert len(handler.calls) == 2 * 6  # 64 → 32 → ... → 1: two halves at each of six levels
    assert sum(handler.calls) <= 2 * 64


async def test_a_single_failing_record_is_dead_lettered_with_its_error_without_handling_it_again() -> None:
    handler = Handler({0})
    isolated = await isolate_poison(batch(1), handler, "svc", RuntimeError("llama_decode returned -1"))
    [letter] = letters(isolated.outgoing)
    assert handler.calls == [] and letter.detail.endswith("RuntimeError: llama_decode returned -1")


async def test_a_batch_that_now_succeeds_is_handled_in_two_halves() -> None:
    isolated = await isolate_poison(batch(10), Handler(set()), "svc", ValueError("flaky"))
    assert outputs(isolated.outgoing) == [str(i) for i in range(10)] and not isolated.poison


async def test_a_transient_error_met_while_bisecting_propagates() -> None:
    with pytest.raises(TransientError):
        await isolate_poison(batch(16), Handler({3}, transient_after=3), "svc", ValueError("boom"))
