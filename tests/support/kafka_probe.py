"""Reading back what a test's services wrote to the real Kafka."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.settings import KafkaSettings


async def read_all(settings: KafkaSettings, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every committed (key, value) on ``topic`` from the beginning, until a second passes with
    nothing new. Records of aborted or still open transactions are not read (read_committed)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        out: list[tuple[bytes | None, bytes]] = []
        while True:
            polled = await consumer.getmany(timeout_ms=1000)
            if not polled:
                return out
            out.extend((r.key, r.value) for rs in polled.values() for r in rs)
    finally:
        await consumer.stop()


async def committed_and_ends(
    settings: KafkaSettings, group_id: str, topics: list[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """A group's committed offsets and the topics' end offsets, per partition."""
    check = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group_id)
    await check.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        ends = await check.end_offsets(partitions)
        return {tp: await check.committed(tp) or 0 for tp in partitions}, ends
    finally:
        await check.stop()
