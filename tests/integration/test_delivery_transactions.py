"""Exactly-once label delivery and topic administration on the real broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from common.kafka import ensure_topics, make_producer, transactional_id
from common.settings import KafkaSettings
from tests.support.delivery_rig import Recorder, Rig, now, running
from tests.support.kafka_probe import read_all
from tests.support.polling import wait_until

pytestmark = [pytest.mark.kafka]


def keys(n: int) -> list[str]:
    return [str(2**62 + i) for i in range(n)]


async def test_a_restarted_replica_fences_its_dead_incarnation_whose_open_transaction_never_becomes_visible(
    kafka_settings: KafkaSettings,
) -> None:
    rig = Rig(kafka_settings)
    await rig.create_topics()
    produced = keys(100)
    await rig.produce(produced)
    # The dead incarnation of replica "a": it wrote output for every record in a transaction
    # and died before committing it (never committed, never aborted).
    replica = kafka_settings.model_copy(update={"replica_id": "a"})
    zombie = make_producer(replica, "zombie", transactional_id(replica, kafka_settings.group(rig.group)))
    await zombie.start()
    try:
        await zombie.begin_transaction()
        sent = [await zombie.send(rig.output, b"zombie", key=k.encode()) for k in produced]
        await asyncio.gather(*sent)
        recorder = Recorder(rig.output)
        async with running(rig.loop(recorder, replica="a")):
            await wait_until(rig.all_committed, bool, what="everything committed by the new incarnation")
        outputs = await rig.output_keys()
        assert set(outputs) == set(produced) and max(outputs.values()) == 1
        assert all(value != b"zombie" for _, value in await read_all(rig.kafka, rig.output))
    finally:
        with contextlib.suppress(Exception):
            await zombie.stop()


async def partitions(settings: KafkaSettings, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def test_raising_kafka_partitions_grows_existing_topics_and_lowering_it_never_shrinks_them(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"{kafka_settings.topic_prefix}grow"
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 1}), [topic])
    assert await partitions(kafka_settings, topic) == 1
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 4}), [topic])
    await wait_until(lambda: partitions(kafka_settings, topic), lambda n: n == 4, what="4 partitions")
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 2}), [topic])
    assert await partitions(kafka_settings, topic) == 4


async def test_a_plain_producer_reaches_a_read_committed_reader(kafka_settings: KafkaSettings) -> None:
    # The ingestor and the indexer's dead letters are not transactional; read_committed must see them.
    rig = Rig(kafka_settings)
    await rig.create_topics()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(rig.output, b"v", key=b"k")
    finally:
        await producer.stop()
    assert await rig.output_keys() == {"k": 1}


async def test_two_live_processes_with_one_replica_id_keep_outputs_once_and_neither_stops_for_good(
    kafka_settings: KafkaSettings,
) -> None:
    rig = Rig(kafka_settings)
    await rig.create_topics()
    produced: list[str] = []
    recorders = [Recorder(rig.output, delay=0.01), Recorder(rig.output, delay=0.01)]
    loops = [rig.loop(rec, replica="same", batch_size=10) for rec in recorders]

    enough = asyncio.Event()

    async def feed() -> None:  # both keep delivering, so they keep fencing each other
        # Stopped by an event, not cancelled: a cancel mid-send would leave keys in `produced` that never reached Kafka.
        while len(produced) < 4000 and not enough.is_set():
            batch = [str(2**62 + i) for i in range(len(produced), len(produced) + 20)]
            await rig.produce(batch)
            produced.extend(batch)
            await asyncio.sleep(0.05)

    async with loops[0], loops[1]:
        runs = [asyncio.create_task(loop.run()) for loop in loops]
        feeding = asyncio.create_task(feed())
        # Fenced again and again (past fenced_limit within the window): each backs off and goes on.
        await wait_until(
            now(lambda: max(len(loop._replaced_at) for loop in loops)),
            lambda n: n > loops[0].fenced_limit,
            timeout=120,
            what="a replica fenced again and again",
        )
        assert not any(run.done() for run in runs), "a replica stopped over being fenced"
        enough.set()
        await feeding
        loops[0].stopping.set()  # the operator stops the duplicate: it leaves the group
        await runs[0]
        await loops[0].consumer.stop()
        await wait_until(rig.all_committed, bool, timeout=120, what="everything committed by the survivor")
        loops[1].stopping.set()
        await runs[1]
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) and max(outputs.values()) == 1
