"""``--follow`` on real files in a temporary directory: resume from a checkpoint, rotation and
truncation (live and while the process was down), and pages split across batches."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from common.records import SourceItem
from ingestor.checkpoint import Checkpoint, Cursor, Mark, StateDir
from ingestor.source import Idle, Item, open_source
from ingestor.tail import FollowedFile, open_followed


def line(n: int) -> str:
    return json.dumps({"id": n, "user": {"handle": "@f"}, "meta": {"created_at": "2025-01-01"},
                       "payload": {"tweet": {"content": f"tweet {n}"}}}) + "\n"


def v2_page(ids: range) -> str:
    return json.dumps({"data": [{"id": str(i), "text": f"t{i}", "author_id": "1", "created_at": "2025-01-01T00:00:00Z"}
                                for i in ids], "includes": {"users": [{"id": "1", "username": "one"}]}}) + "\n"


class Follower:
    """A followed file read like the replay does: items, and the last mark after each."""

    def __init__(self, path: Path, resume: Checkpoint | None = None, fmt: str | None = "jsonl") -> None:
        self.source = open_source(str(path), fmt, follow=True, poll_interval_s=0.001)
        self.followed: FollowedFile = open_followed(self.source, path, 0.001, resume)
        self.items: Iterator[Item] = self.source.items
        self.mark: Mark | None = None

    def ids(self, count: int) -> list[int]:
        """The next ``count`` records' ids (bounded: fails rather than spinning forever)."""
        got: list[int] = []
        for _ in range(100_000):
            if len(got) == count:
                return got
            item = next(self.items)
            if isinstance(item, Mark):
                self.mark = item
            elif isinstance(item, SourceItem):
                value = item.value
                got.append(int(value["tweet"]["id"]) if "tweet" in value else value["id"])
        raise AssertionError(f"only {got} arrived")

    def idle(self) -> bool:
        """Drain to the next idle poll; True if nothing but marks came before it."""
        for _ in range(100):
            item = next(self.items)
            if isinstance(item, Idle):
                return True
            if isinstance(item, Mark):
                self.mark = item
                continue
            return False
        return False

    def checkpoint(self, tmp_path: Path, path: Path) -> Checkpoint:
        assert self.mark is not None and self.mark.file is not None
        state = StateDir(tmp_path / "state", "test")
        state.save("k", path, self.mark.file, self.mark.cursor)
        loaded = state.load("k")
        assert loaded is not None
        return loaded


def test_appended_lines_arrive_and_marks_point_past_them(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(line(1))
    follower = Follower(path)
    assert follower.ids(1) == [1] and follower.idle()
    assert follower.mark is not None and follower.mark.cursor == Cursor(len(line(1)))
    with path.open("a") as out:
        out.write(line(2) + '{"id": 3, "half')
    assert follower.ids(1) == [2] and follower.idle()  # the half line waits for its newline
    with path.open("a") as out:
        out.write('"}\n')
    item = next(i for i in follower.items if isinstance(i, SourceItem))
    assert item.position == f"byte {len(line(1) + line(2))}" and item.error is not None


def test_restart_resumes_after_the_checkpoint_without_repeating(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text("".join(line(n) for n in range(1, 4)))
    first = Follower(path)
    assert first.ids(3) == [1, 2, 3] and first.idle()
    checkpoint = first.checkpoint(tmp_path, path)
    first.followed.close()
    with path.open("a") as out:
        out.write(line(4))
    second = Follower(path, checkpoint)
    assert second.ids(1) == [4] and second.idle()
    assert second.followed.events == ["resumed"]


def test_a_page_split_by_a_batch_resumes_inside_the_page(tmp_path: Path) -> None:
    path = tmp_path / "pages.jsonl"
    path.write_text(v2_page(range(10, 15)) + v2_page(range(20, 22)))
    first = Follower(path, fmt=None)
    assert first.ids(3) == [10, 11, 12]
    mark = next(first.items)  # the mark after 12: resume at the page's line, skipping 3
    assert isinstance(mark, Mark)
    first.mark = mark
    checkpoint = first.checkpoint(tmp_path, path)
    assert (checkpoint.offset, checkpoint.skip) == (0, 3)
    first.followed.close()
    second = Follower(path, checkpoint, fmt=None)
    assert second.ids(4) == [13, 14, 20, 21] and second.idle()


def test_rotation_while_following_finishes_the_old_file_then_reads_the_new(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(line(1))
    follower = Follower(path)
    assert follower.ids(1) == [1] and follower.idle()
    with path.open("a") as out:
        out.write(line(2))  # written just before the rotation, not read yet
    path.rename(tmp_path / "live.jsonl.1")
    path.write_text(line(3) + line(4))
    assert follower.ids(3) == [2, 3, 4] and follower.idle()
    assert follower.followed.events == ["rotated"]


def test_rotation_while_down_reads_the_rest_of_the_rotated_file_first(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(line(1))
    first = Follower(path)
    assert first.ids(1) == [1] and first.idle()
    checkpoint = first.checkpoint(tmp_path, path)
    first.followed.close()
    with path.open("a") as out:
        out.write(line(2))
    path.rename(tmp_path / "live.jsonl.1")
    path.write_text(line(3))
    second = Follower(path, checkpoint)
    assert second.ids(2) == [2, 3] and second.idle()
    assert second.followed.events == ["rotated"]


def test_truncation_while_following_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(line(1) + line(2))
    follower = Follower(path)
    assert follower.ids(2) == [1, 2] and follower.idle()
    with path.open("r+") as out:
        out.truncate(0)
    assert follower.idle()
    with path.open("a") as out:
        out.write(line(7))
    assert follower.ids(1) == [7]
    assert "truncated" in follower.followed.events


def test_truncation_while_down_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(line(1) + line(2))
    first = Follower(path)
    assert first.ids(2) == [1, 2] and first.idle()
    checkpoint = first.checkpoint(tmp_path, path)
    first.followed.close()
    with path.open("r+") as out:  # same inode, rewritten shorter with other content
        out.truncate(0)
        out.write(line(9))
    second = Follower(path, checkpoint)
    assert second.ids(1) == [9]
    assert second.followed.events == ["truncated"]


def test_checkpoints_are_written_atomically_and_scoped(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(line(1))
    follower = Follower(path)
    follower.ids(1)
    assert follower.idle()
    assert follower.mark is not None and follower.mark.file is not None
    one, other = StateDir(tmp_path / "s", "kafka-a|p."), StateDir(tmp_path / "s", "kafka-b|p.")
    one.save("k", path, follower.mark.file, follower.mark.cursor)
    assert other.load("k") is None  # another cluster or prefix has its own checkpoint
    loaded = one.load("k")
    assert loaded is not None and loaded.cursor == follower.mark.cursor and loaded.file.inode == os.stat(path).st_ino
    assert [p.name for p in (tmp_path / "s").iterdir() if p.name.endswith(".tmp")] == []


def test_a_split_page_resumes_inside_the_page_in_its_rotated_copy(tmp_path: Path) -> None:
    path = tmp_path / "pages.jsonl"
    path.write_text(v2_page(range(10, 15)))
    first = Follower(path, fmt=None)
    assert first.ids(2) == [10, 11]
    mark = next(first.items)
    assert isinstance(mark, Mark) and mark.cursor == Cursor(0, 2)
    first.mark = mark
    checkpoint = first.checkpoint(tmp_path, path)
    first.followed.close()
    path.rename(tmp_path / "pages.jsonl.1")
    path.write_text(v2_page(range(20, 22)))
    second = Follower(path, checkpoint, fmt=None)
    assert second.ids(5) == [12, 13, 14, 20, 21] and second.idle()
    assert second.followed.events == ["rotated"]
