"""Bisecting a failing batch down to its poison records (common.poison.FailurePolicy, as the
delivery loop runs it)."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from common.errors import TransientError
from common.events import DeadLetter
from common.kafka import OutgoingMessage
from common.poison import UNHANDLED, FailurePolicy, isolate


def batch(n: int) -> list[ConsumerRecord]:
    return [
        ConsumerRecord("tweets.raw", i % 3, i, 0, 0, str(i).encode(), str(i).encode(), None, 0, 0, []) for i in range(n)
    ]


class Handler:
    """Fails (ValueError) on any batch holding one of ``poison``; else one output per record."""

    def __init__(self, poison: set[int]) -> None:
        self.poison = {str(p).encode() for p in poison}
        self.calls: list[int] = []

    async def __call__(self, records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        self.calls.append(len(records))
        if any(r.value in self.poison for r in records):
            raise ValueError("boom")
        return [OutgoingMessage("out", (r.key or b"").decode(), r.value or b"") for r in records]


def outputs(messages: list[OutgoingMessage]) -> list[str]:
    return sorted((m.key or "" for m in messages if m.topic == "out"), key=int)


def letters(messages: list[OutgoingMessage]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(m.value) for m in messages if m.topic.endswith(".dlq")]


async def settled(policy: FailurePolicy, records: list[ConsumerRecord]) -> tuple[list[OutgoingMessage], int]:
    """The batch's output once the policy stops retrying it, and how many rounds that took
    (poison in both halves looks systemic until a probing round)."""
    for rounds in range(1, policy.max_attempts + 1):
        try:
            return await policy.outputs(records), rounds
        except TransientError:
            continue
    raise AssertionError(f"still retrying after {policy.max_attempts} rounds")


@pytest.mark.parametrize("poison", [{0}, {13}, {31}, {4, 5}, {0, 17, 31}])
async def test_only_the_poison_records_are_dead_lettered_and_every_other_record_is_output_once(
    poison: set[int],
) -> None:
    out, _ = await settled(FailurePolicy(Handler(poison), "svc"), batch(32))
    assert outputs(out) == [str(i) for i in range(32) if i not in poison]
    dead = letters(out)
    assert sorted(d.offset for d in dead) == sorted(poison)
    assert all(d.reason == UNHANDLED and d.service == "svc" and "ValueError: boom" in d.detail for d in dead)
    assert all(d.source_topic == "tweets.raw" for d in dead)


async def test_one_poison_record_costs_about_two_handler_calls_per_halving() -> None:
    handler = Handler({21})
    out, rounds = await settled(FailurePolicy(handler, "svc"), batch(64))
    assert rounds == 1 and [d.offset for d in letters(out)] == [21]
    # the whole batch once, then 64 → 32 → ... → 1: two halves at each of six levels
    assert len(handler.calls) == 1 + 2 * 6
    assert sum(handler.calls[1:]) <= 2 * 64


async def test_a_batch_that_now_succeeds_is_handled_in_two_halves() -> None:
    handler = Handler(set())
    isolated = await isolate(batch(10), handler, ValueError("flaky"), probe=False)
    assert outputs(isolated.outgoing) == [str(i) for i in range(10)] and not isolated.failed
    assert handler.calls == [5, 5]
