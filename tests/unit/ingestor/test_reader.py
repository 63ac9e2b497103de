"""Reading a file in child processes (``ingestor.reader.ProcessReader``): the same verdicts in
the same order as the worker thread gives, a hand-over at any chunk, with one child or with
lanes (JSON Lines chunks in turn, repeats across them found in the parent), the children's
failures raised in the parent, and no child left behind. Real child processes; no Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from common.kafka import OutgoingMessage
from common.topics import Topics
from ingestor import main
from ingestor.errors import KafkaUnavailableError, ReaderError, SourceFormatError
from ingestor.logic import Reject, Verdict
from ingestor.reader import ProcessReader, Reader, open_reader, warm_up
from ingestor.replay import Replay
from ingestor.settings import IngestorSettings
from ingestor.source import Source, open_source

FIRST_ID = 1_750_000_000_000_000_000
TOPICS = Topics("t.")


def record(n: int) -> dict[str, Any]:
    return {
        "id": str(FIRST_ID + n),
        "user": {"handle": f"@user{n % 7}"},
        "meta": {"created_at": f"2024-03-{1 + n % 28:02d}T12:00:00Z", "hashtags": ["#a", "a"]},
        "payload": {"tweet": {"content": f"tweet  number {n}"}},
    }


def lines_file(path: Path, count: int, *, repeats: bool = False) -> Path:
    """``count`` lines: tweets, a repeat of an early id late in the file, bad lines here and there.
    With ``repeats``, also blank lines (not items: they shift lines against items) and more
    repeats: within a 100-item chunk, in the next chunk, and many chunks later."""
    with path.open("w") as out:
        for n in range(count):
            if n == count - 3:
                out.write(json.dumps(record(5)) + "\n")  # duplicate_id, read long after the hand-over
            elif n % 97 == 13:
                out.write("{not json\n")
            elif n % 101 == 50:
                out.write(json.dumps({**record(n), "payload": {}}) + "\n")  # missing_field:text
            elif repeats and n % 89 == 7:
                out.write(json.dumps(record(n - (n % 3) * 60 - 2)) + "\n")  # 2, 62 or 122 items back
            else:
                out.write(json.dumps(record(n)) + "\n")
            if repeats and n % 131 == 3:
                out.write("\n   \n" if n % 2 else "\n")
    return path


def array_file(path: Path, count: int, *, truncated: bool = False) -> Path:
    """A JSON array of ``count`` tweets, the one at ``count - 50`` repeating an early id; cut
    short in its last record when ``truncated`` (the rest is unreadable: a stream error)."""
    text = json.dumps([record(3 if n == count - 50 else n) for n in range(count)])
    path.write_text(text[:-30] if truncated else text)
    return path


def comparable(verdict: Verdict) -> tuple[Any, ...]:
    """A verdict without the times it was made at (``ingested_at``, ``rejected_at``)."""
    if isinstance(verdict, Reject):
        value = json.loads(verdict.value)
        del value["rejected_at"]
        return (verdict.reason, verdict.position, verdict.stream_error, verdict.duplicate, value)
    tweet_id, payload, key_hash = verdict
    value = json.loads(payload)
    del value["ingested_at"]
    return (tweet_id, value, key_hash)


async def read_all(reader: Reader, wanted: int = 100) -> list[Verdict]:
    verdicts: list[Verdict] = []
    while True:
        chunk = await reader.next(wanted)
        verdicts += chunk.entries
        if chunk.exhausted:
            return verdicts


def wait_ready(reader: ProcessReader) -> None:
    """Until the children said they are ready (without taking their message), failing after 30 s."""
    for child in reader._children:
        assert child.conn.poll(30), "a reading process did not start"


def gone(pid: int, within_s: float = 10) -> bool:
    """Whether the process ended within ``within_s`` (a zombie, not yet waited for, has ended)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.01)
    return False


def reaped(pid: int) -> bool:
    """Gone for good: ended and waited for (no zombie left behind)."""
    return not Path(f"/proc/{pid}").exists()


def in_thread(path: Path, skip: int = 0) -> list[tuple[Any, ...]]:
    source = open_source(str(path))
    source.skip(skip)
    try:
        return [comparable(v) for v in asyncio.run(read_all(Reader(source)))]
    finally:
        source.close()


@pytest.mark.parametrize("name", ["lines.jsonl", "array.json", "truncated.json"])
@pytest.mark.parametrize("local_chunks", [0, 3])
async def test_the_child_gives_the_threads_verdicts_in_order_whenever_it_takes_over(
    tmp_path: Path, name: str, local_chunks: int
) -> None:
    path = tmp_path / name
    if name == "lines.jsonl":
        lines_file(path, 1200)
    else:
        array_file(path, 700, truncated=name == "truncated.json")
    expected = await asyncio.to_thread(in_thread, path)
    source = open_source(str(path))
    reader = ProcessReader(source, chunk_size=100)
    try:
        got = [await Reader.next(reader, 100) for _ in range(local_chunks)]  # read here first
        wait_ready(reader)
        verdicts = [v for chunk in got for v in chunk.entries] + await read_all(reader)
        assert reader.handed_over
    finally:
        reader.close()
        source.close()
    assert [comparable(v) for v in verdicts] == expected
    assert any(isinstance(v, Reject) and v.duplicate for v in verdicts)  # seen before the hand-over
    if name == "truncated.json":
        assert isinstance(verdicts[-1], Reject) and verdicts[-1].stream_error is not None


@pytest.mark.parametrize("lanes", [2, 3])
@pytest.mark.parametrize("local_chunks", [0, 3])
async def test_lanes_give_the_threads_verdicts_in_order_with_repeats_across_them(
    tmp_path: Path, lanes: int, local_chunks: int
) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 2000, repeats=True)
    expected = await asyncio.to_thread(in_thread, path)
    source = open_source(str(path))
    reader = ProcessReader(source, chunk_size=100, lanes=lanes)
    try:
        got = [await Reader.next(reader, 100) for _ in range(local_chunks)]  # read here first
        wait_ready(reader)
        verdicts = [v for chunk in got for v in chunk.entries] + await read_all(reader, wanted=70)
        assert reader.handed_over and reader.lanes == lanes
    finally:
        reader.close()
        source.close()
    assert [comparable(v) for v in verdicts] == expected
    repeats = [v for v in verdicts if isinstance(v, Reject) and v.duplicate]
    assert len(repeats) > 20  # within a chunk, in the next one (another lane's), and far back
    raw = [json.loads(v.value)["raw"] for v in repeats]
    assert all(json.loads(text)["id"] for text in raw)  # each reject keeps its own line's text
    assert all(reaped(pid) for pid in reader.pids)


async def test_a_repeat_across_lanes_in_a_file_replaced_meanwhile_is_an_error_not_a_wrong_reject(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_text("".join(json.dumps(record(n % 150)) + "\n" for n in range(400)))  # repeats from item 150
    source = open_source(str(path))
    reader = ProcessReader(source, chunk_size=100, lanes=2)
    try:
        wait_ready(reader)
        first = await reader.next(100)
        assert reader.handed_over and len(first.entries) == 100
        assert reader._children[1].conn.poll(30)  # the second lane opened the file and sent its first chunk
        path.unlink()
        path.write_text("{}\n" * 400)  # the name now another file: the repeat's line cannot be read again
        with pytest.raises(SourceFormatError, match="now names another file"):
            await read_all(reader)
    finally:
        reader.close()
        source.close()


@pytest.mark.parametrize("lanes", [1, 2])
async def test_a_resumed_file_is_resumed_in_the_child_too(tmp_path: Path, lanes: int) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 700, repeats=lanes > 1)
    expected = await asyncio.to_thread(in_thread, path, 250)
    source = open_source(str(path))
    source.skip(250)  # published by an earlier run (ingestor watch)
    reader = ProcessReader(source, chunk_size=100, lanes=lanes)
    try:
        local = await Reader.next(reader, 100)
        wait_ready(reader)
        verdicts = local.entries + await read_all(reader)
        assert reader.handed_over
    finally:
        reader.close()
        source.close()
    assert [comparable(v) for v in verdicts] == expected
    assert comparable(verdicts[0])[1]["id"] == str(FIRST_ID + 250)


async def test_a_replay_through_the_child_publishes_what_the_thread_does_and_stops_at_the_limit(
    tmp_path: Path,
) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 1500)

    async def replay(make: Callable[[Source], Reader], limit: int | None) -> tuple[Any, list[tuple[str, str | None]]]:
        publisher = Recording()
        source = open_source(str(path))
        reader = make(source)
        try:
            if isinstance(reader, ProcessReader):
                wait_ready(reader)
            summary = await Replay(reader, publisher, TOPICS, batch_size=200, limit=limit, tracer=None).run()
        finally:
            reader.close()
            source.close()
        return summary, [(m.topic, m.key) for batch in publisher.batches for m in batch]

    for limit in (None, 1234):
        threaded, thread_keys = await replay(Reader, limit)
        for lanes in (1, 2):
            child, child_keys = await replay(lambda s: ProcessReader(s, 200, lanes=lanes), limit)  # noqa: B023
            assert child_keys == thread_keys and child.reconciles
            assert child.model_dump(exclude={"elapsed_s", "rate_per_s"}) == threaded.model_dump(
                exclude={"elapsed_s", "rate_per_s"}
            )
            assert child.read == (limit or 1500) and child.duplicates == (0 if limit else 1)


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("change", ["deleted", "replaced"])
async def test_a_child_that_cannot_open_the_very_file_leaves_the_reading_here(
    tmp_path: Path, change: str, lanes: int
) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 600)
    expected = await asyncio.to_thread(in_thread, path)
    source = open_source(str(path))  # opened here; gone, or another file, when the child opens it
    path.unlink()
    if change == "replaced":
        lines_file(path, 10)
    reader = ProcessReader(source, chunk_size=100, lanes=lanes)
    try:
        wait_ready(reader)
        verdicts = await read_all(reader)
        assert not reader.handed_over
    finally:
        reader.close()
        source.close()
    assert [comparable(v) for v in verdicts] == expected
    assert all(reaped(pid) for pid in reader.pids)


async def test_a_failure_in_the_child_is_raised_here_as_the_thread_raises_it(tmp_path: Path) -> None:
    # The last record of a JSON array is nested too deeply for its reject's raw text (re-serialised
    # for an array's record) to be made: an error no record rule catches. (A JSON Lines line that
    # deep is a not_json reject now: its raw text is the line.)
    records = [record(n) for n in range(600)]
    records[-1]["payload"]["tweet"]["content"] = "<deep>"
    path = tmp_path / "array.json"
    path.write_text(json.dumps(records).replace('"<deep>"', "[" * 3_000 + "]" * 3_000))
    source = open_source(str(path))
    with pytest.raises(RecursionError) as in_thread:
        await read_all(Reader(source))
    source.close()
    source = open_source(str(path))
    reader = ProcessReader(source, chunk_size=100)
    try:
        wait_ready(reader)
        with pytest.raises(RecursionError) as in_child:
            await read_all(reader)
        assert reader.handed_over
    finally:
        reader.close()
        source.close()
    assert str(in_child.value) == str(in_thread.value)
    assert "in the reading process" in "".join(getattr(in_child.value, "__notes__", []))
    assert reaped(reader.pid)


@pytest.mark.parametrize(("lanes", "killed"), [(1, 0), (2, 0), (2, 1)])
async def test_a_killed_child_is_a_reader_error_and_close_leaves_no_process(
    tmp_path: Path, lanes: int, killed: int
) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 20_000)  # far more than the pipes hold: they wait for us
    source = open_source(str(path))
    reader = ProcessReader(source, chunk_size=100, lanes=lanes)
    try:
        wait_ready(reader)
        first = await reader.next(100)
        assert reader.handed_over and len(first.entries) == 100
        os.kill(reader.pids[killed], signal.SIGKILL)
        with pytest.raises(ReaderError, match="killed by signal 9"):
            await read_all(reader)
    finally:
        reader.close()
        source.close()
    assert all(reaped(pid) for pid in reader.pids)


@pytest.mark.parametrize(("lanes", "killed"), [(1, 0), (2, 0), (2, 1)])
async def test_a_child_that_dies_before_the_hand_over_leaves_the_reading_here(
    tmp_path: Path, lanes: int, killed: int
) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 600)
    expected = await asyncio.to_thread(in_thread, path)
    source = open_source(str(path))
    reader = ProcessReader(source, chunk_size=100, lanes=lanes)
    try:
        os.kill(reader.pids[killed], signal.SIGKILL)
        assert gone(reader.pids[killed])
        verdicts = await read_all(reader)
        assert not reader.handed_over
    finally:
        reader.close()
        source.close()
    assert [comparable(v) for v in verdicts] == expected
    assert all(reaped(pid) for pid in reader.pids)


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("stage", ["starting", "handed over"])
async def test_close_ends_the_child_at_any_stage(tmp_path: Path, stage: str, lanes: int) -> None:
    source = open_source(str(lines_file(tmp_path / "lines.jsonl", 20_000)))
    reader = ProcessReader(source, chunk_size=100, lanes=lanes)
    if stage == "handed over":
        wait_ready(reader)
        await reader.next(100)
    reader.close()
    reader.close()  # idempotent
    source.close()
    assert len(reader.pids) == lanes and all(reaped(pid) for pid in reader.pids)


async def test_children_started_ahead_are_the_next_readers(tmp_path: Path) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 700)
    expected = await asyncio.to_thread(in_thread, path)
    from ingestor import reader as module

    warm_up(2)
    warm_up(2)  # up to two wait at a time
    warm_up()  # fewer wanted: none is ended
    dead = module._spares[0][1].pid
    os.kill(dead, signal.SIGKILL)
    assert gone(dead)
    warm_up(2)  # a spare that died is replaced
    spares = [process.pid for _, process in module._spares]
    assert len(spares) == 2 and dead not in spares
    source = open_source(str(path))
    reader = ProcessReader(source, chunk_size=100, lanes=3)
    try:
        assert reader.pids[:2] == spares and reader.pids[2] not in spares and not module._spares
        wait_ready(reader)
        verdicts = await read_all(reader)
        assert reader.handed_over
    finally:
        reader.close()
        source.close()
    assert [comparable(v) for v in verdicts] == expected and all(reaped(pid) for pid in reader.pids)


def test_large_json_lines_get_lanes_and_other_files_one_child(tmp_path: Path) -> None:
    lines = lines_file(tmp_path / "lines.jsonl", 50)
    array = array_file(tmp_path / "array.json", 50)
    pages = tmp_path / "pages.jsonl"  # twitter-v2 pages: a line holds many tweets, items cannot be counted by lines
    pages.write_text(json.dumps({"data": [{"id": "1", "text": "a", "created_at": "2024-01-01T00:00:00Z"}]}) + "\n")
    opened: list[tuple[str, int]] = []
    for path in (lines, array, pages):
        source = open_source(str(path))
        reader = open_reader(source, chunk_size=100, process_min_bytes=0, processes=3)
        try:
            assert isinstance(reader, ProcessReader)
            opened.append((path.name, reader.lanes))
        finally:
            reader.close()
            source.close()
    assert opened == [("lines.jsonl", 3), ("array.json", 1), ("pages.jsonl", 1)]
    source = open_source(str(array))
    with pytest.raises(ValueError, match="one process reads it"):
        ProcessReader(source, chunk_size=100, lanes=2)
    source.close()


def test_small_files_stdin_and_single_cores_read_in_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = open_source(str(lines_file(tmp_path / "lines.jsonl", 50)))
    try:
        assert type(open_reader(source, chunk_size=100, process_min_bytes=10**9)) is Reader
        monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0})
        assert type(open_reader(source, chunk_size=100, process_min_bytes=0)) is Reader
        source.reopen = None  # stdin, --follow
        monkeypatch.undo()
        assert type(open_reader(source, chunk_size=100, process_min_bytes=0)) is Reader
    finally:
        source.close()


class Recording:
    def __init__(self) -> None:
        self.batches: list[list[OutgoingMessage]] = []

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.batches.append(list(messages))


class Publisher:
    """Stands in for ``KafkaPublisher`` in ``main.replay``: fails to start, or stops the run."""

    fail_start = False

    def __init__(self, settings: IngestorSettings, *, retry: bool, stopping: asyncio.Event) -> None:
        self.stopping = stopping

    async def start(self) -> None:
        if self.fail_start:
            raise KafkaUnavailableError("cannot reach Kafka")

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.stopping.set()  # as a signal would: finish this batch, then summarise

    async def stop(self) -> None:
        return None


@pytest.mark.parametrize("fail_start", [True, False])
async def test_the_replay_ends_its_reading_process_when_kafka_fails_or_it_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_start: bool
) -> None:
    path = lines_file(tmp_path / "lines.jsonl", 20_000)
    readers: list[Reader] = []

    def spy(source: Source, **kwargs: Any) -> Reader:
        readers.append(open_reader(source, **kwargs))
        return readers[-1]

    monkeypatch.setattr(main, "KafkaPublisher", type("P", (Publisher,), {"fail_start": fail_start}))
    monkeypatch.setattr(main, "open_reader", spy)
    settings = IngestorSettings(
        reader_process_min_bytes=0, reader_processes=2, batch_size=100, state_dir=tmp_path / "state"
    )
    if fail_start:
        with pytest.raises(KafkaUnavailableError):
            await main.replay(str(path), settings)
    else:
        summary = await main.replay(str(path), settings)
        assert 0 < summary.read < 20_000 and summary.reconciles
    [reader] = readers
    assert isinstance(reader, ProcessReader) and reader.lanes == settings.reader_processes == 2
    assert all(reaped(pid) for pid in reader.pids)
