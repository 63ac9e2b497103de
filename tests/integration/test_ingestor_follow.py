"""Continuous ingestion against the real Kafka: ``--follow`` across restarts, rotation and
truncation, ``watch`` exactly once across restarts, ``--skip-existing`` against the real
Elasticsearch, and a Kafka outage on a private broker that is stopped and started again.

Every test counts the messages on the topic afterwards: exactly the distinct tweets written,
no more (nothing re-published) and no fewer (nothing dropped)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from common.settings import KafkaSettings
from ingestor.cli import ReplayOptions
from ingestor.logic import ReplaySummary
from ingestor.main import replay, watch
from ingestor.settings import IngestorSettings
from tests.conftest import REPO
from tests.integration.test_ingestor_kafka import TopicReader
from tests.support.polling import wait_until
from tests.support.private_kafka import PrivateKafka

pytestmark = pytest.mark.kafka
BASE = 1_800_000_000_000_000_000


def lines(ids: range) -> str:
    return "".join(
        json.dumps({"id": BASE + n, "user": {"handle": f"@u{n}"}, "meta": {"created_at": "2025-05-01T10:00:00Z"},
                    "payload": {"tweet": {"content": f"continuous tweet {n}"}}}) + "\n"
        for n in ids
    )


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(text)


def settings_for(kafka: KafkaSettings, tmp_path: Path, **extra: object) -> IngestorSettings:
    return IngestorSettings(kafka=kafka, state_dir=tmp_path / "state", poll_interval_s=0.05, batch_size=25, **extra)


class Following:
    """``replay --follow`` as a task, stopped like SIGTERM stops the CLI."""

    def __init__(self, path: Path, settings: IngestorSettings) -> None:
        self.stopping = asyncio.Event()
        self.task = asyncio.create_task(replay(str(path), settings, ReplayOptions(follow=True), stopping=self.stopping))

    async def stop(self) -> ReplaySummary:
        self.stopping.set()
        return await asyncio.wait_for(self.task, 120)


async def keys_on(kafka: KafkaSettings, count: int) -> Counter[str]:
    async with TopicReader(kafka, kafka.topics.raw) as reader:
        records = await reader.wait_for(count)
    return Counter(record.key.decode() for record in records)


def ids(numbers: range) -> Counter[str]:
    return Counter(str(BASE + n) for n in numbers)


async def test_follow_restart_resumes_without_republishing(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(lines(range(0, 60)))
    settings = settings_for(kafka_settings, tmp_path)
    first = Following(path, settings)
    await keys_on(kafka_settings, 60)
    append(path, lines(range(60, 70)))
    assert await keys_on(kafka_settings, 70) == ids(range(70))
    summary = await first.stop()
    assert summary.published == 70 and summary.reconciles

    append(path, lines(range(70, 100)))  # written while the ingestor is down
    second = Following(path, settings)
    assert await keys_on(kafka_settings, 100) == ids(range(100))  # each exactly once
    summary = await second.stop()
    assert (summary.read, summary.published, summary.follow_events) == (30, 30, ["resumed"])


async def test_follow_rotation_and_truncation_lose_and_repeat_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(lines(range(0, 20)))
    settings = settings_for(kafka_settings, tmp_path)
    following = Following(path, settings)
    await keys_on(kafka_settings, 20)
    append(path, lines(range(20, 30)))  # the last lines before logrotate renames the file
    path.rename(tmp_path / "live.jsonl.1")
    path.write_text(lines(range(30, 40)))
    await keys_on(kafka_settings, 40)
    with path.open("r+") as out:  # copytruncate-style: same inode, emptied, then written again
        out.truncate(0)
    append(path, lines(range(40, 50)))  # noticed either as a shorter file or by its changed first bytes
    assert await keys_on(kafka_settings, 50) == ids(range(50))
    summary = await following.stop()
    assert summary.published == 50 and summary.follow_events == ["rotated", "truncated"]

    path.rename(tmp_path / "live.jsonl.2")  # rotated while down: the rest of the old file comes first
    append(tmp_path / "live.jsonl.2", lines(range(50, 55)))
    path.write_text(lines(range(55, 60)))
    again = Following(path, settings)
    assert await keys_on(kafka_settings, 60) == ids(range(60))
    summary = await again.stop()
    assert summary.published == 10 and summary.follow_events == ["rotated"]


async def test_cli_follow_stops_on_sigterm_and_resumes(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(lines(range(0, 15)))
    env = {**os.environ, "KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
           "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers, "INGESTOR_POLL_INTERVAL_S": "0.05"}
    command = [sys.executable, "-m", "ingestor", "replay", str(path), "--follow", "--state-dir", str(tmp_path / "s")]

    async def run_until(count: int) -> dict[str, object]:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            await keys_on(kafka_settings, count)
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()
        summary: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])["summary"]
        return summary

    assert (await run_until(15))["published"] == 15
    append(path, lines(range(15, 25)))
    summary = await run_until(25)
    assert summary["published"] == 10 and summary["follow_events"] == ["resumed"]
    assert await keys_on(kafka_settings, 25) == ids(range(25))


async def test_watch_replays_each_file_once_across_restarts(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text(lines(range(0, 30)))
    records = [json.loads(line) for line in lines(range(30, 40)).splitlines()]
    (inbox / "b.json").write_text(json.dumps(records))
    (inbox / "c.jsonl.tmp").write_text(lines(range(40, 50)))  # still being copied in
    settings = settings_for(kafka_settings, tmp_path, watch_settle_s=0.3)

    async def watch_until(count: int) -> list[ReplaySummary]:
        stopping = asyncio.Event()
        task = asyncio.create_task(watch(inbox, settings, stopping=stopping))
        await keys_on(kafka_settings, count)
        stopping.set()
        return await asyncio.wait_for(task, 120)

    first = await watch_until(40)
    assert sorted((s.source, s.published) for s in first) == [("a.jsonl", 30), ("b.json", 10)]
    (inbox / "c.jsonl.tmp").rename(inbox / "c.jsonl")
    (inbox / "d.jsonl").write_text(lines(range(50, 55)) + lines(range(0, 5)))  # 5 new, 5 seen in a.jsonl
    second = await watch_until(60)
    assert sorted((s.source, s.published) for s in second) == [("c.jsonl", 10), ("d.jsonl", 10)]
    keys = await keys_on(kafka_settings, 60)
    assert keys == ids(range(55)) + ids(range(5))  # a, b, c, d exactly once each; d repeats 5 of a's tweets


@pytest.mark.es
async def test_skip_existing_publishes_only_tweets_not_indexed(
    kafka_settings: KafkaSettings, tmp_path: Path, es_url: str, index_name: str
) -> None:
    async with httpx.AsyncClient(base_url=es_url, timeout=30) as es:
        for n in (1, 2, 3):
            response = await es.put(f"/{index_name}/_doc/{BASE + n}", json={"text": "labelled before"},
                                    params={"refresh": "true"})
            response.raise_for_status()
    path = tmp_path / "rerun.jsonl"
    path.write_text(lines(range(0, 10)))
    settings = settings_for(kafka_settings, tmp_path, es_url=es_url, index=index_name)
    summary = await replay(str(path), settings, ReplayOptions(skip_existing=True))
    assert (summary.read, summary.published, summary.already_indexed) == (10, 7, 3) and summary.reconciles
    assert await keys_on(kafka_settings, 7) == ids(range(10)) - ids(range(1, 4))


async def test_follow_rides_out_a_kafka_outage(
    topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A private broker: absent when the ingestor starts, then up, then stopped mid-stream and
    started again (same data directory). Nothing may be lost or published twice."""
    broker = PrivateKafka(tmp_path / "kafka")
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix, request_timeout_ms=5000)
    settings = settings_for(kafka, tmp_path, max_backoff_s=2.0)
    path = tmp_path / "live.jsonl"
    path.write_text(lines(range(0, 20)))
    caplog.set_level(logging.WARNING, logger="ingestor")

    def retries() -> int:
        return sum(1 for r in caplog.records if r.getMessage() == "Kafka unavailable, retrying")

    following = Following(path, settings)
    try:
        await wait_until(lambda: asyncio.sleep(0.1, retries()), lambda n: n >= 2, timeout=60, what="retries")
        await asyncio.to_thread(broker.up)
        await keys_on(kafka, 20)
        await asyncio.to_thread(broker.down)
        before = retries()
        append(path, lines(range(20, 40)))
        await wait_until(lambda: asyncio.sleep(0.1, retries()), lambda n: n > before, timeout=120, what="retries")
        assert not following.task.done()
        await asyncio.to_thread(broker.up)
        assert await keys_on(kafka, 40) == ids(range(40))
        summary = await following.stop()
        assert summary.published == 40 and summary.reconciles
    finally:
        following.stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(following.task, 60)
        await asyncio.to_thread(broker.remove)
