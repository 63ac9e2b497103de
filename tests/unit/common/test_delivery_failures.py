"""The delivery loop's failure policy (common.poison.FailurePolicy): a failure of every record is
retried and never dead-lettered; a record failing alone while others succeed is dead-lettered,
at once if the error is not transient, after a bounded number of attempts if it is."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from common.errors import ConfigurationError, TransientError
from common.events import DeadLetter
from common.kafka import OutgoingMessage
from common.poison import RETRIES_EXHAUSTED, UNHANDLED, FailurePolicy
from common.tweet_store import StoreUnavailable

ROUNDS = 40  # far more rounds than any bound on attempts below


def batch(n: int, start: int = 0, partition: int = 0) -> list[ConsumerRecord]:
    return [
        ConsumerRecord("src", partition, i, 0, 0, str(i).encode(), str(i).encode(), None, 0, 0, [])
        for i in range(start, start + n)
    ]


class Handler:
    """One output per record; raises ``error`` for a batch holding a ``poison`` offset, or for
    every batch while ``down``."""

    def __init__(self, poison: set[int] | None = None, error: Exception | None = None, down: bool = False) -> None:
        self.poison, self.down = set(poison or ()), down
        self.error = error or RuntimeError("inference failed")
        self.calls = 0

    async def __call__(self, records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        self.calls += 1
        if self.down or any(r.offset in self.poison for r in records):
            raise self.error
        return [OutgoingMessage("out", None, r.value or b"") for r in records]


def letters(outgoing: list[OutgoingMessage]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(m.value) for m in outgoing if m.topic == "src.dlq"]


def outputs(outgoing: list[OutgoingMessage]) -> list[int]:
    return sorted(int(m.value) for m in outgoing if m.topic == "out")


async def rounds_until_delivered(
    policy: FailurePolicy, records: list[ConsumerRecord]
) -> tuple[int, list[OutgoingMessage]]:
    """Run the batch as the loop would (retry on TransientError) until it yields output."""
    for n in range(1, ROUNDS + 1):
        try:
            return n, await policy.outputs(records)
        except TransientError:
            continue
    raise AssertionError(f"still retrying after {ROUNDS} rounds")


async def assert_never_delivered(policy: FailurePolicy, records: list[ConsumerRecord]) -> None:
    for _ in range(ROUNDS):
        with pytest.raises(TransientError):
            await policy.outputs(records)


@pytest.mark.parametrize("error", [RuntimeError("es 401"), TransientError("es down")], ids=["bug", "transient"])
@pytest.mark.parametrize("size", [1, 2, 7, 64])
async def test_a_failure_of_every_record_is_retried_for_ever_and_dead_letters_nothing(
    size: int, error: Exception
) -> None:
    # An Elasticsearch 401, a write block, a model that fails on everything: the stream must not drain.
    await assert_never_delivered(FailurePolicy(Handler(error=error, down=True), "svc", max_attempts=3), batch(size))


async def test_a_one_record_batch_failing_for_a_possibly_systemic_reason_is_not_dead_lettered_at_once() -> None:
    handler = Handler(poison={0})
    policy = FailurePolicy(handler, "svc", max_attempts=3)
    await assert_never_delivered(policy, batch(1))
    assert handler.calls == ROUNDS  # handled once a round, never bisected nor dead-lettered


async def test_the_stream_resumes_once_the_dependency_is_back() -> None:
    handler = Handler(down=True)
    policy = FailurePolicy(handler, "svc", max_attempts=3)
    for _ in range(7):
        with pytest.raises(TransientError):
            await policy.outputs(batch(8))
    handler.down = False
    outgoing = await policy.outputs(batch(8))
    assert outputs(outgoing) == list(range(8)) and not letters(outgoing)
    assert policy.systemic_rounds == 0


async def test_an_outage_costs_a_few_handler_calls_a_round_not_a_bisection() -> None:
    handler = Handler(error=TransientError("down"), down=True)
    policy = FailurePolicy(handler, "svc", max_attempts=100)
    with pytest.raises(TransientError):
        await policy.outputs(batch(256))
    assert handler.calls == 3  # the batch, then both halves: nothing succeeds, stop


async def test_a_record_failing_alone_with_a_bug_is_dead_lettered_at_once_beside_the_others_outputs() -> None:
    outgoing = await FailurePolicy(Handler(poison={13}), "svc").outputs(batch(32))
    assert outputs(outgoing) == [i for i in range(32) if i != 13]
    [letter] = letters(outgoing)
    assert (letter.offset, letter.reason) == (13, UNHANDLED) and "RuntimeError: inference failed" in letter.detail


@pytest.mark.parametrize("max_attempts", [1, 3, 6])
async def test_a_record_that_keeps_answering_retry_is_dead_lettered_after_the_bounded_attempts(
    max_attempts: int,
) -> None:
    handler = Handler(poison={5}, error=TransientError("item answered 503"))
    policy = FailurePolicy(handler, "svc", max_attempts=max_attempts)
    rounds, outgoing = await rounds_until_delivered(policy, batch(20))
    assert rounds == max_attempts
    assert outputs(outgoing) == [i for i in range(20) if i != 5]  # the partition moves on
    [letter] = letters(outgoing)
    assert (letter.offset, letter.reason) == (5, RETRIES_EXHAUSTED)
    assert f"failed alone {max_attempts} times" in letter.detail and "item answered 503" in letter.detail
    assert policy.failed_alone == {}  # delivered: nothing left to count


async def test_a_transient_poison_record_in_another_partition_than_the_healthy_ones_is_found_too() -> None:
    records = batch(1, partition=0) + batch(9, start=100, partition=1)
    handler = Handler(poison={0}, error=TransientError("retry"))
    rounds, outgoing = await rounds_until_delivered(FailurePolicy(handler, "svc", max_attempts=4), records)
    assert rounds == 4 and [d.offset for d in letters(outgoing)] == [0]
    assert outputs(outgoing) == list(range(100, 109))


async def test_poison_records_in_both_halves_look_systemic_at_first_and_are_found_by_a_probing_round() -> None:
    handler = Handler(poison={0, 17})
    rounds, outgoing = await rounds_until_delivered(FailurePolicy(handler, "svc", max_attempts=4), batch(32))
    assert rounds == 4  # three systemic rounds, then the probe finds records that succeed
    assert sorted(d.offset for d in letters(outgoing)) == [0, 17]
    assert all(d.reason == UNHANDLED for d in letters(outgoing))
    assert outputs(outgoing) == [i for i in range(32) if i not in {0, 17}]


async def test_a_record_that_recovers_starts_counting_afresh() -> None:
    handler = Handler(poison={3}, error=TransientError("retry"))
    policy = FailurePolicy(handler, "svc", max_attempts=3)
    for _ in range(2):
        with pytest.raises(TransientError):
            await policy.outputs(batch(8))
    handler.poison = set()
    assert outputs(await policy.outputs(batch(8))) == list(range(8))  # it recovered: delivered, not dead
    handler.poison = {3}
    rounds, outgoing = await rounds_until_delivered(policy, batch(8))
    assert rounds == 3 and [d.offset for d in letters(outgoing)] == [3]


async def test_revoked_partitions_are_forgotten() -> None:
    handler = Handler(poison={3}, error=TransientError("retry"))
    policy = FailurePolicy(handler, "svc", max_attempts=3)
    for _ in range(2):
        with pytest.raises(TransientError):
            await policy.outputs(batch(8))
    policy.forget({TopicPartition("src", 1)})
    assert policy.failed_alone == {("src", 0, 3): 2}
    policy.forget({TopicPartition("src", 0)})
    assert policy.failed_alone == {}


async def test_a_configuration_error_from_the_handler_ends_the_loop_instead_of_dead_lettering() -> None:
    handler = Handler(poison={2}, error=ConfigurationError("model missing"))
    with pytest.raises(ConfigurationError):
        await FailurePolicy(handler, "svc").outputs(batch(8))
    assert handler.calls <= 3


async def test_a_systemic_error_from_part_of_a_batch_is_retried_whole_and_blames_no_record() -> None:
    # Elasticsearch write-blocked: a sub-batch with nothing to write would succeed, and without
    # SystemicError the rest would look like records failing alone, struck until dead-lettered.
    calls: list[int] = []

    async def handler(records: list[ConsumerRecord]) -> list[OutgoingMessage]:
        calls.append(len(records))
        if any(r.offset % 2 == 0 for r in records):
            raise StoreUnavailable("write_block", "index [tweets] blocked by: [FORBIDDEN/8/index write (api)]")
        return []

    policy = FailurePolicy(handler, "svc", max_attempts=2)
    for _ in range(5):
        with pytest.raises(StoreUnavailable):
            await policy.outputs(batch(8))
    assert calls == [8] * 5  # never bisected
    assert policy.failed_alone == {}
