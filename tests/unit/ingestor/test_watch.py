"""Which files a watched directory offers, and the ledger that remembers finished ones."""

from __future__ import annotations

import os
from pathlib import Path

from ingestor.checkpoint import Ledger, read_identity
from ingestor.watch import ReadyFiles


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
