"""The delivery loop on the real broker while its consumer group rebalances.

Each test runs loops of one consumer group on a 3-partition source topic, with a handler that
writes one output message per record. "Once" is checked by counting the committed
(read_committed) output messages per key; "nothing lost" by comparing keys with what was
produced, and the group's committed offsets with the topic's end offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY

from common.settings import KafkaSettings
from tests.support.delivery_rig import Recorder, Rig, now, running
from tests.support.polling import wait_until

pytestmark = [pytest.mark.kafka]


def keys(n: int, start: int = 0) -> list[str]:
    return [str(2**62 + i) for i in range(start, start + n)]


def abandoned() -> float:
    return REGISTRY.get_sample_value("pipeline_batches_abandoned_total", {"service": "delivery-test"}) or 0.0


def handled(*recorders: Recorder) -> Counter[str]:
    return Counter((r.key or b"").decode() for rec in recorders for r in rec.seen)


@pytest.fixture
async def rig(kafka_settings: KafkaSettings) -> Rig:
    rig = Rig(kafka_settings)
    await rig.create_topics()
    return rig


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "transactional"])
async def test_a_member_joining_during_backoff_loses_nothing_and_commits_nothing_meanwhile(
    rig: Rig, transactional: bool
) -> None:
    # The bug that lost 484 tweets: partitions assigned while backing off were fetched and dropped.
    produced = keys(300)
    await rig.produce(produced)
    first, second = Recorder(rig.output, down=True), Recorder(rig.output, down=True)
    second_loop = rig.loop(second, replica="b", transactional=transactional)
    async with running(rig.loop(first, replica="a", transactional=transactional)) as first_task:
        await wait_until(now(lambda: first.calls), lambda n: n >= 2, what="first member retrying")
        async with running(second_loop) as second_task:
            await wait_until(now(lambda: second.calls), lambda n: n >= 2, what="second member assigned and retrying")
            assert await rig.committed_total() == 0  # nothing is committed while the dependency is down
            first.down = second.down = False
            await wait_until(rig.all_committed, bool, what="everything committed after the outage")
            assert not first_task.done() and not second_task.done()
    assert set(handled(first, second)) == set(produced)
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced)
    if transactional:
        assert max(outputs.values()) == 1


async def test_a_member_joining_mid_batch_lets_the_batch_commit_first_and_nothing_is_handled_twice(rig: Rig) -> None:
    produced = keys(200)
    await rig.produce(produced)
    gate = asyncio.Event()
    first, second = Recorder(rig.output, gate=gate), Recorder(rig.output)
    first_loop = rig.loop(first, replica="a")
    async with running(first_loop):
        await wait_until(now(first.started.is_set), bool, what="a batch in the first member's handler")
        async with running(rig.loop(second, replica="b")):
            # The rebalance waits on the first member's revoke, which waits for its batch.
            await wait_until(now(lambda: first_loop.revoking), bool, what="revoke waiting for the batch")
            gate.set()
            await wait_until(rig.all_committed, bool, what="everything committed")
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) and max(outputs.values()) == 1
    # The batch in flight was committed before its partitions moved: nobody handled it again.
    assert sum(handled(first, second).values()) == len(produced)
    assert second.seen, "the second member must have taken partitions over"


async def test_a_handler_slower_than_the_session_timeout_while_a_replica_joins_commits_nothing_twice(
    rig: Rig,
) -> None:
    # Scenario (d): the first member's batch takes longer than the group's session timeout
    # while a second member joins. The rebalance must wait for it (the rebalance timeout outlasts
    # the revoke hold) instead of evicting the member and handing its partitions over mid-batch.
    produced = keys(200)
    await rig.produce(produced)
    gate = asyncio.Event()
    first, second = Recorder(rig.output, gate=gate), Recorder(rig.output)
    first_loop = rig.loop(first, replica="a")
    session_timeout_s = first_loop.consumer._session_timeout_ms / 1000
    assert first_loop.kafka.revoke_grace_s > session_timeout_s + 2
    async with running(first_loop):
        await wait_until(now(first.started.is_set), bool, what="a batch in the first member's handler")
        async with running(rig.loop(second, replica="b")):
            await wait_until(now(lambda: first_loop.revoking), bool, what="revoke waiting for the slow batch")
            await asyncio.sleep(session_timeout_s + 2)  # the handler outlives the session timeout
            assert first_loop.revoking, "the member must still hold its partitions, not be evicted"
            gate.set()
            await wait_until(rig.all_committed, bool, what="everything committed")
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) and max(outputs.values()) == 1
    assert sum(handled(first, second).values()) == len(produced)  # the slow batch was not handled twice
    assert second.seen, "the second member must have taken partitions over"


async def test_a_batch_outliving_the_revoke_grace_is_abandoned_uncommitted_and_replayed_once(rig: Rig) -> None:
    produced = keys(200)
    await rig.produce(produced)
    gate = asyncio.Event()
    first, second = Recorder(rig.output, gate=gate), Recorder(rig.output)
    first_loop = rig.loop(first, replica="a")
    first_loop.kafka = first_loop.kafka.model_copy(update={"revoke_grace_s": 0.2})  # its consumer's stays long
    second_loop = rig.loop(second, replica="b")
    abandoned_before = abandoned()
    async with running(first_loop):
        await wait_until(now(first.started.is_set), bool, what="a batch in the first member's handler")
        async with running(second_loop):
            await wait_until(now(second_loop.consumer.assignment), bool, what="rebalance done without the batch")
            gate.set()  # the abandoned batch's handler returns only now: its output must go nowhere
            await wait_until(rig.all_committed, bool, what="everything committed")
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) and max(outputs.values()) == 1
    assert sum(handled(first, second).values()) > len(produced), "the abandoned batch must have been replayed"
    assert abandoned() > abandoned_before


async def test_replicas_joining_and_leaving_mid_stream_commit_every_output_once(rig: Rig) -> None:
    produced: list[str] = []

    async def produce(n: int) -> None:
        batch = keys(n, start=len(produced))
        produced.extend(batch)
        await rig.produce(batch)

    recorders = [Recorder(rig.output, delay=0.01) for _ in range(3)]
    loops = [rig.loop(rec, replica=name, batch_size=10) for rec, name in zip(recorders, "abc", strict=True)]
    async with running(loops[0]):
        await produce(150)
        async with running(loops[1]):
            await wait_until(now(loops[1].consumer.assignment), bool, what="second replica assigned")
            await produce(150)
            await wait_until(now(lambda: recorders[1].seen), bool, what="second replica handling")
            async with running(loops[2]):
                await wait_until(now(loops[2].consumer.assignment), bool, what="third replica assigned")
                await produce(150)
                await wait_until(now(lambda: recorders[2].seen), bool, what="third replica handling")
                leaving = asyncio.create_task(produce(150))  # records arrive while the third leaves
            await leaving
            await produce(150)
        await produce(150)  # the second left
        await wait_until(rig.all_committed, bool, what="everything committed")
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) and max(outputs.values()) == 1
    assert all(rec.seen for rec in recorders), "every replica must have handled some records"


async def test_a_poison_record_is_isolated_by_bisection_and_dead_lettered_alone(rig: Rig) -> None:
    produced = keys(60)
    poison_key = produced[37]
    await rig.produce(produced)
    recorder = Recorder(rig.output, poison={poison_key.encode()})
    async with running(rig.loop(recorder, replica="a", batch_size=64)):
        await wait_until(rig.all_committed, bool, what="everything committed past the poison")
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) - {poison_key} and max(outputs.values()) == 1
    [(key, value)] = await rig.dead_letters()
    assert key == poison_key.encode()
    assert b'"reason":"unhandled_error"' in value and b"ValueError" in value


async def test_a_worker_cancelled_mid_transaction_and_restarted_commits_every_output_once(rig: Rig) -> None:
    produced = keys(400)
    await rig.produce(produced)
    seen: list[ConsumerRecord] = []
    for _ in range(4):
        recorder = Recorder(rig.output, delay=0.02)
        loop = rig.loop(recorder, replica="a", batch_size=15)

        async def serve(loop: object = loop) -> None:
            async with loop:  # type: ignore[attr-defined]
                await loop.run()  # type: ignore[attr-defined]

        task = asyncio.create_task(serve())
        await wait_until(now(lambda rec=recorder: rec.calls), lambda n: n >= 3, interval=0.01, what="batches")
        task.cancel()  # wherever it is: handling, publishing in the transaction, committing
        with contextlib.suppress(asyncio.CancelledError):
            await task
        seen += recorder.seen
    last = Recorder(rig.output)
    async with running(rig.loop(last, replica="a")):
        await wait_until(rig.all_committed, bool, what="everything committed")
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) and max(outputs.values()) == 1
