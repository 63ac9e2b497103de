"""The ingestor against the real Kafka broker (``make up-infra``), one topic prefix per test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner

from common.events import RejectedRecord, TweetRecord
from common.settings import KafkaSettings
from ingestor.main import replay
from ingestor.settings import IngestorSettings
from tests.conftest import REPO, SAMPLE_DATASET
from tests.support.polling import wait_until

pytestmark = pytest.mark.kafka

INVALID_POSITIONS = {11, 22, 34, 45}  # see data/sample_tweets.json: the four deliberately bad records
EXPECTED_REJECTS = {
    "missing_field:text": 1,
    "invalid_date:created_at": 1,
    "invalid_type:id": 1,
    "empty_field:text": 1,
    "duplicate_id": 1,
}


def expected_ids() -> set[str]:
    records = json.loads(SAMPLE_DATASET.read_text(encoding="utf-8"))  # Python ints: exact
    return {str(r["id"]) for n, r in enumerate(records, 1) if n not in INVALID_POSITIONS}


class TopicReader:
    """Accumulates every message of one topic from the beginning."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.records: list[ConsumerRecord] = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def poll(self) -> int:
        polled = await self.consumer.getmany(timeout_ms=500)
        self.records.extend(r for rs in polled.values() for r in rs)
        return len(self.records)

    async def wait_for(self, count: int) -> list[ConsumerRecord]:
        await wait_until(self.poll, lambda n: n >= count, timeout=60, interval=0.1, what=f"{count} messages")
        await self.poll()  # anything beyond ``count`` would be a bug: give it a chance to show
        return self.records


async def run_cli(
    args: list[str], settings: KafkaSettings, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_TOPIC_PREFIX": settings.topic_prefix,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        **(env or {}),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ingestor", *args],
        cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )


async def read_topics(settings: KafkaSettings, raw: int, rejected: int) -> tuple[list[ConsumerRecord], ...]:
    async with TopicReader(settings, settings.topics.raw) as raw_reader, TopicReader(
        settings, settings.topics.rejected
    ) as rejected_reader:
        return await raw_reader.wait_for(raw), await rejected_reader.wait_for(rejected)


async def test_sample_replay_publishes_exactly_the_distinct_valid_tweets(kafka_settings: KafkaSettings) -> None:
    settings = IngestorSettings(kafka=kafka_settings, batch_size=16)
    summary = await replay(str(SAMPLE_DATASET), settings)

    assert (summary.read, summary.valid, summary.duplicates, summary.published, summary.rejected) == (45, 41, 1, 40, 5)
    assert summary.rejected_by_reason == EXPECTED_REJECTS
    assert summary.reconciles
    assert summary.topics == {"raw": kafka_settings.topics.raw, "rejected": kafka_settings.topics.rejected}

    raw, rejected = await read_topics(kafka_settings, 40, 5)
    assert len(raw) == 40 and len(rejected) == 5
    keys = [record.key.decode() for record in raw]
    assert set(keys) == expected_ids() and len(set(keys)) == 40
    assert "9007199254740993" in keys  # 2**53 + 1, exact end to end
    every = list(range(kafka_settings.partitions))
    for record in raw:
        tweet = TweetRecord.model_validate_json(record.value)
        assert tweet.id == record.key.decode() and tweet.source == "sample_tweets.json"
        # Where any client's default partitioner puts the key (the publisher's pick from the reading side's hash)
        assert record.partition == DefaultPartitioner()(record.key, every, every)
    assert len({record.partition for record in raw}) == kafka_settings.partitions > 1
    rejects = [RejectedRecord.model_validate_json(record.value) for record in rejected]
    assert Counter(r.reason for r in rejects) == Counter(EXPECTED_REJECTS)
    assert {r.position for r in rejects} == {"record 11", "record 22", "record 23", "record 34", "record 45"}
    float_id = next(r for r in rejects if r.reason == "invalid_type:id")
    assert "1.8600000000000000E+18" in float_id.raw


async def test_cli_entry_point_replays_and_prints_the_summary(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    done = await run_cli(["replay", str(SAMPLE_DATASET), "--summary-json", str(summary_file)], kafka_settings)
    assert done.returncode == 0, done.stderr
    written = json.loads(summary_file.read_text())
    last_log_line = json.loads(done.stdout.strip().splitlines()[-1])
    assert last_log_line["msg"] == "replay summary"
    for summary in (written, last_log_line["summary"]):
        assert (summary["read"], summary["published"], summary["rejected"], summary["duplicates"]) == (45, 40, 5, 1)
        assert summary["reconciles"] is True
    assert "records/s" in done.stderr  # the rich summary table
    raw, rejected = await read_topics(kafka_settings, 40, 5)
    assert {r.key.decode() for r in raw} == expected_ids()


async def test_stdin_json_lines_until_eof(kafka_settings: KafkaSettings) -> None:
    lines = [
        json.dumps({"id": 2**62 + n, "user": {"handle": f"@pipe{n}"}, "meta": {"created_at": "2025-01-01T10:00:00Z"},
                    "payload": {"tweet": {"content": f"piped tweet {n}"}}})
        for n in range(5)
    ]
    stdin = "\n".join([*lines, "not json", lines[0]]) + "\n"
    done = await run_cli(["replay", "-"], kafka_settings, stdin=stdin)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])["summary"]
    assert (summary["read"], summary["published"], summary["rejected"]) == (7, 5, 2)
    assert summary["rejected_by_reason"] == {"not_json": 1, "duplicate_id": 1}
    raw, rejected = await read_topics(kafka_settings, 5, 2)
    assert sorted(r.key.decode() for r in raw) == sorted(str(2**62 + n) for n in range(5))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: files are read in a thread")
async def test_a_large_json_lines_file_read_by_lanes_publishes_each_tweet_once_and_rejects_in_order(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The CLI on a file above INGESTOR_READER_PROCESS_MIN_BYTES, shared by two reading processes
    (chunks of 100 in turn): every distinct valid tweet once, and every reject, repeats across the
    lanes' chunks included, in the file's order with its own line's text."""
    count, path = 6_000, tmp_path / "large.jsonl"
    lines: list[str] = []
    for n in range(count):
        tweet_id = 1_750_000_000_000_000_000 + (n - 150 if n % 250 == 249 else n)  # repeats 150 items back
        record = {"id": str(tweet_id), "user": {"handle": f"@u{n % 9}"},
                  "meta": {"created_at": "2024-05-01T10:00:00Z"}, "payload": {"tweet": {"content": f"tweet {n}"}}}
        lines.append("{broken" if n % 500 == 7 else json.dumps(record))
        if n % 700 == 3:
            lines.append("")  # a blank line: no item, but a line number
    path.write_text("\n".join(lines) + "\n")
    broken, repeats = count // 500, count // 250
    env = {"INGESTOR_READER_PROCESS_MIN_BYTES": "100000", "INGESTOR_READER_PROCESSES": "2",
           "INGESTOR_BATCH_SIZE": "100"}
    # Paced, so the run outlasts the reading processes' start (a few tenths of a second) whatever the host.
    args = ["replay", str(path), "--rate", "4000", "--summary-json", str(tmp_path / "s.json")]
    done = await run_cli(args, kafka_settings, env=env)
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    [moved] = [entry for entry in logged if entry["msg"] == "reading moved to a child process"]
    assert len(set(moved["pids"])) == 2
    assert len([entry for entry in logged if entry["msg"] == "reading process done"]) == 2
    summary = json.loads((tmp_path / "s.json").read_text())
    published = count - broken - repeats
    assert (summary["read"], summary["published"], summary["duplicates"]) == (count, published, repeats)
    assert summary["reconciles"] is True

    raw, rejected = await read_topics(kafka_settings, published, broken + repeats)
    assert len(raw) == published and len({r.key for r in raw}) == published
    rejects = [RejectedRecord.model_validate_json(record.value) for record in rejected]
    assert len({r.partition for r in rejected}) == 1  # keyed by source: one partition, in order
    numbers = [int(r.position.removeprefix("line ")) for r in rejects]
    assert numbers == sorted(numbers)
    file_lines = path.read_text().split("\n")
    for reject in rejects:
        assert reject.raw == file_lines[int(reject.position.removeprefix("line ")) - 1]
    assert Counter(r.reason for r in rejects) == {"not_json": broken, "duplicate_id": repeats}
