"""The dead-letter tool against the real Kafka: list/show/redrive, filters, dry runs, idempotent
re-drives, and the /metrics gauges."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner, Result

from common.events import DeadLetter, RejectedRecord, ValidationIssue
from common.kafka import OutgoingMessage, ensure_topics, make_producer, publish_all
from common.settings import KafkaSettings
from gateway.dead_letters import REDRIVEN_FROM, DeadLetterStore
from gateway.dlq.cli import app
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_indexer import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]


def letter(settings: KafkaSettings, source: str, offset: int, service: str, reason: str) -> OutgoingMessage:
    value = json.dumps({"schema_version": 1, "id": str(1000 + offset), "note": f"original {offset}"})
    dead = DeadLetter(
        service=service,
        source_topic=source,
        partition=0,
        offset=offset,
        key=str(1000 + offset),
        value=value,
        reason=reason,
        error_class="PermanentError",
    )
    # As common.kafka.dead_letter writes them: the source record's headers, then the failure's.
    headers = [
        ("traceparent", traceparent(offset)),
        ("origin", f"crawler-{offset}".encode()),
        ("reason", reason.encode()),
    ]
    return OutgoingMessage(settings.topics.dlq(source), dead.key, dead.model_dump_json().encode(), headers)


def traceparent(offset: int) -> bytes:
    return f"00-{offset:032x}-{offset:016x}-01".encode()


async def seed(settings: KafkaSettings) -> None:
    topics = settings.topics
    await ensure_topics(
        settings, [topics.raw, topics.labels, topics.rejected, topics.dlq(topics.raw), topics.dlq(topics.labels)]
    )
    reject = RejectedRecord(
        source="api:ci",
        position="line 3",
        reason="missing_field:text",
        errors=[ValidationIssue(loc="text", msg="field required", type="missing")],
        raw='{"id": 5}',
    )
    messages = [
        letter(settings, topics.raw, 1, "emotion", "invalid_tweet:text"),
        letter(settings, topics.raw, 2, "emotion", "invalid_tweet:created_at"),
        letter(settings, topics.raw, 3, "stance", "inference_error"),
        letter(settings, topics.labels, 4, "gateway-indexer", "invalid_label:label"),
        OutgoingMessage(topics.rejected, "api:ci", reject.model_dump_json().encode()),
    ]
    producer = make_producer(settings, "test-deadletters")
    await producer.start()
    try:
        await publish_all(producer, messages)
    finally:
        await producer.stop()


async def cli(settings: KafkaSettings, *args: str) -> Result:
    """The CLI in its own thread (it runs its own event loop), given its settings as ``gateway.dlq.main`` does."""
    obj = GatewaySettings(kafka=settings)
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=obj, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result


async def listed(settings: KafkaSettings, *filters: str) -> dict[str, dict[str, Any]]:
    output = (await cli(settings, "list", "--json", *filters)).output
    return {row["topic"]: row for row in map(json.loads, output.splitlines())}


async def test_list_and_show_count_every_dlq_and_the_rejects_with_filters(kafka_settings: KafkaSettings) -> None:
    await seed(kafka_settings)
    rows = await listed(kafka_settings)
    assert set(rows) == {"tweets.raw.dlq", "tweets.labels.dlq", "tweets.rejected"}
    raw = rows["tweets.raw.dlq"]
    assert (raw["messages"], raw["matching"], raw["redriven"]) == (3, 3, 0)
    assert raw["reasons"] == {"invalid_tweet:text": 1, "invalid_tweet:created_at": 1, "inference_error": 1}
    assert rows["tweets.rejected"]["reasons"] == {"missing_field:text": 1}
    assert rows["tweets.rejected"]["redriven"] is None

    filtered = await listed(kafka_settings, "--reason", "invalid_tweet", "--service", "emotion")
    assert (filtered["tweets.raw.dlq"]["messages"], filtered["tweets.raw.dlq"]["matching"]) == (3, 2)
    assert filtered["tweets.labels.dlq"]["matching"] == 0
    table = (await cli(kafka_settings, "list")).output
    assert "tweets.raw.dlq" in table and "re-driven" in table

    shown = (await cli(kafka_settings, "show", "--json", "--service", "stance", "--service", "gateway-indexer")).output
    letters = [json.loads(line) for line in shown.splitlines()]
    assert sorted((s["service"], s["reason"]) for s in letters) == [
        ("gateway-indexer", "invalid_label:label"),
        ("stance", "inference_error"),
    ]
    assert all(s["value"].startswith('{"schema_version"') for s in letters)
    assert {s["headers"]["origin"] for s in letters} == {"crawler-3", "crawler-4"}, "headers shown as text"


async def test_redrive_republishes_the_original_once_with_a_header(kafka_settings: KafkaSettings) -> None:
    topics = kafka_settings.topics
    await seed(kafka_settings)

    dry = (await cli(kafka_settings, "redrive", "--dry-run", "--reason", "invalid_tweet")).output
    assert "2 matching dead letters; 0 re-driven earlier; would republish 2 (tweets.raw x2)" in dry
    assert await read_topic(kafka_settings, topics.raw) == [], "a dry run publishes nothing"

    first = (await cli(kafka_settings, "redrive", "--reason", "invalid_tweet")).output
    assert "republished 2" in first
    raw = await read_topic(kafka_settings, topics.raw)
    assert sorted(key for key, _, _ in raw) == [b"1001", b"1002"]
    for key, value, headers in raw:
        assert json.loads(value)["note"] == f"original {int(key) - 1000}", "the original value, unchanged"
        origin = dict(headers)[REDRIVEN_FROM].decode()
        assert origin.startswith(f"{topics.dlq(topics.raw)}:") and origin.count(":") == 2
        offset = int(key) - 1000
        assert dict(headers)["origin"] == f"crawler-{offset}".encode(), "the original's own headers travel on"
        assert "reason" not in dict(headers), "the failure's headers stay on the dead letter"
        trace_id = dict(headers)["traceparent"].decode().split("-")[1]
        assert trace_id == f"{offset:032x}", "the re-driven record continues the tweet's trace"

    everything = (await cli(kafka_settings, "redrive")).output
    assert "4 matching dead letters; 2 re-driven earlier; republished 2" in everything
    again = (await cli(kafka_settings, "redrive")).output
    assert "4 matching dead letters; 4 re-driven earlier; republished 0" in again
    assert sorted(k for k, _, _ in await read_topic(kafka_settings, topics.raw)) == [b"1001", b"1002", b"1003"]
    assert [k for k, _, _ in await read_topic(kafka_settings, topics.labels)] == [b"1004"]
    assert len(await read_topic(kafka_settings, topics.rejected)) == 1, "rejects are listed, never re-driven"

    assert (await listed(kafka_settings))["tweets.raw.dlq"]["redriven"] == 3, "the list shows what was re-driven"


async def test_dead_letter_gauges_count_each_topic(kafka_settings: KafkaSettings) -> None:
    await seed(kafka_settings)
    store = DeadLetterStore(kafka_settings)
    try:
        sizes = await store.refresh_gauges()
    finally:
        await store.close()
    prefix = kafka_settings.topic_prefix
    assert {t.removeprefix(prefix): n for t, n in sizes.items()} == {
        "tweets.raw.dlq": 3,
        "tweets.labels.dlq": 1,
        "tweets.rejected": 1,
    }
    for topic, expected in (("tweets.raw.dlq", 3), ("tweets.labels.dlq", 1)):
        assert REGISTRY.get_sample_value("pipeline_dead_letters", {"topic": topic}) == expected
