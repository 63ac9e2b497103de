"""Which files a watched directory offers, the ledger that remembers finished ones, and the
watch that replays each file once across restarts (an in-memory publisher; Kafka is in
tests/integration/test_ingestor_follow.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from common.kafka import OutgoingMessage
from ingestor.checkpoint import Ledger, StateDir, read_identity
from ingestor.logic import ReplaySummary
from ingestor.settings import IngestorSettings
from ingestor.watch import DirectoryWatch, ReadyFiles

SAMPLE = Path(__file__).parents[3] / "data" / "sample_tweets.json"  # 45 records


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_ready_once_unchanged_for_the_settle_time(tmp_path: Path) -> None:
    clock = Clock()
    ready = ReadyFiles(tmp_path, settle_s=2.0, clock=clock)
    growing = tmp_path / "a.jsonl"
    growing.write_text("one\n")
    assert ready.scan() == []
    clock.now += 1.5
    with growing.open("a") as out:
        out.write("two\n")  # still being written: the clock starts again
    os.utime(growing, ns=(1, 1))
    assert ready.scan() == []
    clock.now += 2.0
    assert ready.scan() == [growing]


def test_unfinished_names_and_empty_files_are_never_offered(tmp_path: Path) -> None:
    clock = Clock()
    ready = ReadyFiles(tmp_path, settle_s=0.0, clock=clock)
    for name in ("b.jsonl.tmp", "c.part", ".hidden.json", "d.csv.partial"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "old.json").write_text("[]")
    (tmp_path / "new.json").write_text("[]")
    os.utime(tmp_path / "old.json", ns=(10**18, 10**18))
    os.utime(tmp_path / "new.json", ns=(2 * 10**18, 2 * 10**18))
    assert ready.scan() == [tmp_path / "old.json", tmp_path / "new.json"]  # oldest first


def test_the_ledger_survives_a_restart_and_knows_renamed_files(tmp_path: Path) -> None:
    data = tmp_path / "in" / "a.json"
    data.parent.mkdir()
    data.write_text('[{"id": 1}]')
    ledger = Ledger(tmp_path / "state" / "ledger.jsonl")
    ledger.add(data, read_identity(data), published=1)
    with (tmp_path / "state" / "ledger.jsonl").open("a") as out:
        out.write('{"device": 1, "ino')  # a line torn by a crash mid-append
    renamed = data.with_name("renamed.json")
    data.rename(renamed)
    reopened = Ledger(tmp_path / "state" / "ledger.jsonl")
    assert reopened.has(read_identity(renamed)) and len(reopened) == 1
    other = tmp_path / "in" / "b.json"
    other.write_text('[{"id": 2}]')
    assert not reopened.has(read_identity(other))


class StoppingPublisher:
    """Acknowledges every batch; after ``stop_after`` of them the watch is stopped (a restart)."""

    def __init__(self, stopping: asyncio.Event, stop_after: int | None) -> None:
        self.stopping, self.stop_after = stopping, stop_after
        self.batches: list[list[OutgoingMessage]] = []

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.batches.append(list(messages))
        if len(self.batches) == self.stop_after:
            self.stopping.set()


async def watch_once(directory: Path, settings: IngestorSettings, stop_after: int | None) -> list[ReplaySummary]:
    """One process's life: watch until a file is done or the publisher stops it."""
    stopping = asyncio.Event()
    publisher = StoppingPublisher(stopping, stop_after)
    state = StateDir(settings.state_dir, scope="test")
    watch = DirectoryWatch(directory, settings, publisher, state, stopping, on_file=lambda _: stopping.set())
    return await watch.run()


@pytest.mark.parametrize("child_from_bytes", [1024 * 1024, 0])  # read in the thread; in a child process too
async def test_a_file_interrupted_twice_is_read_exactly_once_across_restarts(
    tmp_path: Path, child_from_bytes: int
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(SAMPLE, inbox / "sample.json")
    settings = IngestorSettings(batch_size=10, state_dir=tmp_path / "state", watch_settle_s=0, poll_interval_s=0.01,
                                reader_process_min_bytes=child_from_bytes)
    [first] = await watch_once(inbox, settings, stop_after=1)
    [second] = await watch_once(inbox, settings, stop_after=1)
    [third] = await watch_once(inbox, settings, stop_after=None)
    assert 0 < first.read < 45 and 0 < second.read < 45 - first.read
    # Each restart resumes after every record sent before it, the first restart's included.
    assert [run.skipped_on_resume for run in (first, second, third)] == [0, first.read, first.read + second.read]
    assert first.read + second.read + third.read == 45
    ledger = Ledger(StateDir(settings.state_dir, scope="test").ledger_file(inbox))
    assert ledger.has(read_identity(inbox / "sample.json"))
