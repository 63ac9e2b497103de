"""`make status`: per-stage counts and consumer lag in one table.

Reads Kafka offsets (topic sizes, each consumer group's committed offsets), Elasticsearch
counts and each indexer replica's ``/metrics`` (whether Elasticsearch refuses its writes now, and
for how long it has in all), so a person sees at a glance whether every stage keeps up.
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from common.settings import KafkaSettings

GROUPS = {"emotion": "raw", "stance": "raw", "gateway-indexer": "raw+labels"}
INDEXER_PORTS = 8  # replicas probed: the base port + 10 per replica (deploy/local/supervisor_conf.py)


async def topic_sizes(consumer: AIOKafkaConsumer, topics: list[str]) -> dict[str, dict[TopicPartition, int]]:
    existing = await consumer.topics()
    sizes: dict[str, dict[TopicPartition, int]] = {}
    for topic in topics:
        if topic not in existing:
            sizes[topic] = {}
            continue
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        sizes[topic] = await consumer.end_offsets(partitions)
    return sizes


async def group_members(admin: AIOKafkaAdminClient, settings: KafkaSettings) -> Table:
    """Each consumer group's state and members (one per running replica) with their partitions."""
    table = Table(title="Consumer group members (one per replica)")
    for column in ("group", "state", "member", "host", "partitions"):
        table.add_column(column)
    for name in GROUPS:
        # One group per request: aiokafka 0.12 misparses a DescribeGroups response with several.
        (response,) = await admin.describe_consumer_groups([settings.group(name)])
        for group in response.to_object()["groups"]:
            if not group["members"]:
                table.add_row(name, group["state"], "-", "-", "-")  # Dead: never existed, or expired
            for member in sorted(group["members"], key=lambda m: m["member_id"]):
                assigned = ConsumerProtocolMemberAssignment.decode(member["member_assignment"]).assignment
                partitions = " ".join(
                    f"{topic.removeprefix(settings.topic_prefix)}[{','.join(map(str, sorted(ps)))}]"
                    for topic, ps in assigned
                )
                member_id = f"…{member['member_id'][-12:]}"  # <client id>-<uuid>: the uuid's tail tells them apart
                table.add_row(name, group["state"], member_id, member["client_host"].lstrip("/"), partitions)
    return table


async def gather(settings: KafkaSettings, es_url: str, index: str) -> tuple[Table, Table, Table]:
    t = settings.topics
    names = [t.raw, t.labels, t.rejected, t.dlq(t.raw), t.dlq(t.labels)]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        sizes = await topic_sizes(consumer, names)
        stages = Table(title="Kafka topics (messages ever written)")
        stages.add_column("topic")
        stages.add_column("messages", justify="right")
        for topic in names:
            stages.add_row(topic, str(sum(sizes[topic].values())))
        lag = Table(
            title="Consumer groups",
            # Read-committed consumers never see transaction markers, so they cannot commit past them.
            caption=f"{t.labels} is written in Kafka transactions: each commit marker takes an offset, "
            "so a group that has caught up shows a lag of up to 1 per partition there",
        )
        for column in ("group", "topic", "committed", "end", "lag"):
            lag.add_column(column, justify="right" if column != "group" and column != "topic" else "left")
        for group in GROUPS:
            committed = await admin.list_consumer_group_offsets(settings.group(group))
            for topic in (t.raw, t.labels) if group == "gateway-indexer" else (t.raw,):
                ends = sizes.get(topic, {})
                done = sum(committed[tp].offset for tp in ends if tp in committed and committed[tp].offset >= 0)
                end = sum(ends.values())
                lag.add_row(group, topic, str(done), str(end), str(end - done))
        members = await group_members(admin, settings)
    finally:
        await admin.close()
        await consumer.stop()
    async with httpx.AsyncClient(base_url=es_url, timeout=10) as es:
        counts = {}
        for label, query in {
            "indexed tweets": {"exists": {"field": "created_at"}},
            "with emotion": {"exists": {"field": "emotion.label"}},
            "with stance": {"exists": {"field": "stance.label"}},
        }.items():
            response = await es.post(f"/{index}/_count", json={"query": query})
            counts[label] = response.json().get("count", 0) if response.status_code == 200 else "n/a"
    for label, value in counts.items():
        stages.add_row(f"elasticsearch {index}: {label}", str(value))
    return stages, lag, members


def main() -> int:
    console = Console()
    settings = KafkaSettings()
    es_url = os.environ.get("GATEWAY_ES_URL", "http://127.0.0.1:9200")
    index = os.environ.get("GATEWAY_INDEX", "tweets")
    try:
        stages, lag, members = asyncio.run(gather(settings, es_url, index))
    except Exception as exc:  # a status command reports, it does not crash
        console.print(f"[red]cannot read pipeline status: {exc!r}. Is the stack running? (`make up`)[/red]")
        return 1
    console.print(stages)
    console.print(lag)
    console.print(members)
    console.print(indexer_table(int(os.environ.get("GATEWAY_METRICS_PORT") or 9104)))
    console.print(dead_letter_table(settings))
    return 0


def indexer_blocked(metrics: str) -> tuple[str, float]:
    """(the reason Elasticsearch refuses the replica's writes now, or "no"; seconds refused in all)."""
    now, total = "no", 0.0
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "gateway_indexer_blocked" and sample.value > 0:
                now = f"yes: {sample.labels.get('reason', '?')}"
            elif sample.name == "gateway_indexer_blocked_seconds_total":
                total = sample.value
    return now, total


def indexer_table(base_port: int) -> Table:
    """Each indexer replica's blocked state, from its /metrics (replicas that answer)."""
    table = Table("indexer /metrics", "blocked now", "blocked seconds (total)", title="Indexer writes")
    for replica in range(INDEXER_PORTS):
        port = base_port + 10 * replica
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        except httpx.HTTPError:
            continue  # no replica there
        now, total = indexer_blocked(response.text)
        table.add_row(f":{port}", now, f"{total:.1f}")
    if not table.row_count:
        table.add_row(f":{base_port}…", "no indexer /metrics answered", "-")
    return table


def dead_letter_table(settings: KafkaSettings) -> Table:
    """Messages held per dead-letter topic and in tweets.rejected (`make dlq` lists, shows, re-drives)."""
    from gateway.dead_letters import DeadLetterStore

    async def count() -> dict[str, int]:
        store = DeadLetterStore(settings)
        try:
            return await store.sizes(await store.topics())
        finally:
            await store.close()

    table = Table("dead letters (make dlq)", "messages")
    try:
        sizes = asyncio.run(count())
    except Exception as exc:  # reported in the table, like the rest of this command
        table.add_row("cannot count", repr(exc)[:60])
        return table
    for topic, messages in sizes.items():
        table.add_row(topic.removeprefix(settings.topic_prefix), str(messages))
    return table


if __name__ == "__main__":
    sys.exit(main())
