"""Reading sources: files (streamed, constant memory), a JSON Lines file being appended to
(``--follow``) and stdin (``-``). Everything here is blocking I/O; the replay pulls items in
chunks (:func:`take`: read and validate) from a worker thread or, for a large file, a child
process (``reader``), so the event loop stays free for the Kafka producer.

JSON arrays and single objects are streamed with ijson (non-integers come back as ``Decimal``,
never ``float``, so an id's digits are never rounded); JSON Lines are parsed by jiter with
``float_mode="decimal"`` (``common.json_lines``), which gives the same values.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import select
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import ijson

from common.json_lines import parse_json_line
from common.records import Adapter, Outcome, SourceItem, map_nested, to_outcome
from ingestor import pages
from ingestor.checkpoint import Mark
from ingestor.errors import SourceFormatError
from ingestor.formats import check_format, detect, file_container, json_container
from ingestor.formats.tabular import csv_items, csv_row_mapper, map_sentiment140, parse_column_overrides
from ingestor.formats.twitter_api import map_twitter_v1, map_twitter_v2

HEAD_BYTES = 64 * 1024
# The format (named by --format or detected) picks the adapter that maps a JSON record to
# TweetRecord fields; the container (array, lines, object) is read from the file itself.
JSON_ADAPTERS: dict[str, Adapter] = {
    "nested": map_nested,
    "jsonl": map_nested,
    "twitter-v1": map_twitter_v1,
    "twitter-v2": map_twitter_v2,
}
csv.field_size_limit(16 * 1024 * 1024)  # a quoted field may hold a long thread; the model bounds text


class Idle:
    """Yielded by continuous sources when no input is waiting: the replay flushes its batch."""


IDLE: Final = Idle()
Item = SourceItem | Idle | Mark


def _adapter_pending(value: Any) -> dict[str, Any]:
    raise RuntimeError("the source format is not known yet")


@dataclass(frozen=True)
class Reopen:
    """How to open a file source again (in another process), its format settled; ``file_id``
    tells whether the path still names the same file."""

    path: str
    fmt: str
    columns: str | None
    csv_encoding: str
    file_id: tuple[int, int] | None
    one_item_a_line: bool = False  # JSON Lines of one tweet a line: several processes may share it (``lane_chunks``)


class Source:
    """An opened input: ``items`` to iterate, and the ``format``/``adapter`` that map them.

    For stdin and ``--follow`` without ``--format`` the format is detected from the first
    line that parses, so ``format`` and ``adapter`` are set once the first item arrives.
    A regular file can be opened again elsewhere (``reopen``), skipping what was ``skipped``.
    """

    def __init__(self, name: str, handle: IO[bytes] | None, total_bytes: int | None) -> None:
        self.name = name
        self.format: str | None = None
        self.adapter: Adapter = _adapter_pending
        self.total_bytes = total_bytes
        self.items: Iterator[Item] = iter(())
        self.reopen: Reopen | None = None
        self.skipped = 0
        # A JSON Lines file of one item a line (not twitter-v2 pages), unread yet: ``lane_chunks``.
        self.lines: IO[bytes] | None = None
        self._handle = handle

    def use(self, fmt: str, adapter: Adapter) -> None:
        self.format, self.adapter = fmt, adapter

    def skip(self, count: int) -> None:
        """Leave out the first ``count`` items (published by an earlier run)."""
        self.items = itertools.islice(self.items, count, None)
        self.skipped += count

    def bytes_read(self) -> int | None:
        return self._handle.tell() if self._handle is not None and not self._handle.closed else None

    def file_id(self) -> tuple[int, int] | None:
        """(device, inode) of the open file; None for stdin and --follow."""
        if self._handle is None:
            return None
        stat = os.fstat(self._handle.fileno())
        return stat.st_dev, stat.st_ino

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


@dataclass
class Chunk:
    items: list[tuple[SourceItem, Outcome]] = field(default_factory=list)
    marks: dict[int, Mark] = field(default_factory=dict)  # item index → the mark after it (-1: before all)
    idle: bool = False
    exhausted: bool = False


def take(source: Source, limit: int) -> Chunk:
    """Read and validate up to ``limit`` items; returns early when a continuous source idles."""
    chunk = Chunk()
    while len(chunk.items) < limit:
        item = next(source.items, None)
        if item is None:
            chunk.exhausted = True
            break
        if isinstance(item, Idle):
            chunk.idle = True
            break
        if isinstance(item, Mark):
            chunk.marks[len(chunk.items) - 1] = item
            continue
        chunk.items.append((item, to_outcome(item, source.adapter, source.name)))
    return chunk


def open_source(
    path: str,
    fmt: str | None = None,
    columns: str | None = None,
    *,
    follow: bool = False,
    poll_interval_s: float = 0.5,
    csv_encoding: str = "utf-8",
) -> Source:
    """Open ``path`` (``-`` for stdin) and pick its format; raises :class:`SourceFormatError`."""
    if fmt is not None:
        check_format(fmt)
    parse_column_overrides(columns)  # a typo in --columns fails before anything is read
    if path == "-" or follow:
        check_lines_format(fmt)
        if path == "-":
            source = Source("stdin", None, None)
            source.items = json_lines_items(fd_lines(sys.stdin.fileno(), poll_interval_s), source)
        else:  # the caller (ingestor.tail) sets the items: a tail that resumes from a checkpoint
            if not Path(path).is_file():
                raise SourceFormatError(f"cannot open {path}: not a file")
            source = Source(Path(path).name, None, None)
        if fmt is not None:
            source.use(fmt, JSON_ADAPTERS[fmt])
        return source

    handle = _open(path)
    try:
        head = handle.read(HEAD_BYTES)
        handle.seek(0)
        source = Source(Path(path).name, handle, os.fstat(handle.fileno()).st_size)
        if fmt is None:
            # --columns only makes sense for CSV, so it settles a header no default name matches.
            tabular = columns is not None and json_container(head) == "csv"
            fmt = "csv" if tabular else detect(source.name, head)
        _read_as(source, handle, head, fmt, columns, csv_encoding)
        source.reopen = Reopen(path, fmt, columns, csv_encoding, source.file_id(), source.lines is not None)
    except BaseException:
        handle.close()
        raise
    return source


def check_lines_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in JSON_ADAPTERS:
        raise SourceFormatError(f"stdin and --follow read JSON Lines; --format {fmt} is not JSON")


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # the Source owns and closes it
    except OSError as exc:
        raise SourceFormatError(f"cannot open {path}: {exc.strerror}") from None


def _read_as(source: Source, handle: IO[bytes], head: bytes, fmt: str, columns: str | None, encoding: str) -> None:
    if fmt in ("csv", "sentiment140"):
        text = io.TextIOWrapper(handle, encoding=encoding, errors="surrogateescape", newline="")
        reader = csv.reader(text)
        if fmt == "csv":
            header = next(reader, None)
            if header is None:
                raise SourceFormatError(f"{source.name} has no header row")
            source.use(fmt, csv_row_mapper(header, parse_column_overrides(columns)))
        else:
            source.use(fmt, map_sentiment140)
        source.items = csv_items(reader)
        return
    container = file_container(handle, head)
    if container == "csv":
        raise SourceFormatError(f"--format {fmt} expects JSON, but {source.name} does not start with [ or {{")
    source.use(fmt, JSON_ADAPTERS[fmt])
    if container == "json-array":
        source.items = pages.array_of_responses(handle) if fmt == "twitter-v2" else json_array_items(handle)
    elif container == "json-object" and fmt == "twitter-v2":
        source.items = pages.concatenated_responses(handle)
    else:  # a JSON Lines file whose first line is broken still reads line by line
        source.items = json_lines_items(iter(handle), source)
        if fmt != "twitter-v2":
            source.lines = handle


def json_array_items(handle: IO[bytes]) -> Iterator[SourceItem]:
    count = 0
    try:
        for value in ijson.items(handle, "item"):
            count += 1
            yield SourceItem(f"record {count}", None, value)  # its text is made if it is rejected
    except ijson.JSONError as exc:
        yield _broken_tail(count, exc)


def _broken_tail(parsed: int, exc: Exception) -> SourceItem:
    return SourceItem(
        f"record {parsed + 1}",
        "",
        error=f"JSON breaks after record {parsed}, the rest of the file is unreadable: {exc}",
    )


def json_lines_items(lines: Iterable[bytes | Idle], source: Source) -> Iterator[Item]:
    number = 0
    for line in lines:
        if isinstance(line, Idle):
            yield line
            continue
        number += 1
        if source.format is None or source.format == "twitter-v2":
            yield from line_items(line, f"line {number}", source)
        elif line and not line.isspace():  # one item a line, as line_items gives it, minus a generator per line
            yield parse_json_line(line, f"line {number}")


@dataclass
class LaneChunk:
    """One chunk of a lane (``lane_chunks``): its items parsed, where its first line starts
    (byte offset, line number: ``items_at`` reads its lines again), and whether the file ends
    with it."""

    items: list[SourceItem]
    start: tuple[int, int]
    exhausted: bool


def lane_chunks(source: Source, *, skip: int, size: int, lane: int, lanes: int) -> Iterator[LaneChunk]:
    """A JSON Lines file (``source.lines``) shared by ``lanes`` processes: after ``skip`` items,
    its items in chunks of ``size``, chunk k parsed by lane k mod ``lanes``; this lane's chunks,
    the last one with ``exhausted`` (empty when the file ends in another lane's chunk).

    Every lane reads every line, but another lane's are only told blank or not (an item is a
    line that is not blank, as ``json_lines_items`` counts them), so each lane numbers lines and
    chunks as one reader would, and the lanes' chunks, taken in turn, are the file in order."""
    if source.lines is None:
        raise ValueError(f"{source.name} is not JSON Lines of one item a line")
    handle = source.lines
    number = index = 0  # lines read; items read after the skipped ones
    items: list[SourceItem] = []
    start = (handle.tell(), 1)
    for line in handle:
        number += 1
        if not line or line.isspace():
            continue
        if skip:
            skip -= 1
            if not skip:
                start = (handle.tell(), number + 1)
            continue
        if (index // size) % lanes == lane:
            items.append(parse_json_line(line, f"line {number}"))
        index += 1
        if index % size == 0:
            if (index // size - 1) % lanes == lane:
                yield LaneChunk(items, start, exhausted=False)
                items = []
            start = (handle.tell(), number + 1)
    yield LaneChunk(items, start, exhausted=True)


def check_same_file(reopen: Reopen, file_id: tuple[int, int] | None) -> None:
    """Raise unless ``file_id`` (device, inode) is the file ``reopen`` was made from: the path
    may name another file by now (rotated, replaced)."""
    if file_id != reopen.file_id:
        raise SourceFormatError(f"{reopen.path} now names another file than the one being replayed")


def items_at(reopen: Reopen, start: tuple[int, int], indexes: set[int]) -> dict[int, SourceItem]:
    """The items at ``indexes`` (counted from 0) of the chunk that starts at ``start`` (a
    ``LaneChunk``'s), read again from the file and parsed: for a reject's text."""
    with _open(reopen.path) as handle:
        stat = os.fstat(handle.fileno())
        check_same_file(reopen, (stat.st_dev, stat.st_ino))
        offset, first_number = start
        handle.seek(offset)
        found: dict[int, SourceItem] = {}
        index = 0
        for number, line in enumerate(handle, start=first_number):
            if not line or line.isspace():
                continue
            if index in indexes:
                found[index] = parse_json_line(line, f"line {number}")
                if len(found) == len(indexes):
                    break
            index += 1
    return found


def line_items(line: bytes, position: str, source: Source) -> Iterator[SourceItem]:
    """The items of one JSON Lines line: none (blank, empty page), one, or a v2 page's tweets."""
    if not line.strip():
        return
    item = parse_json_line(line, position)
    if item.error is not None:
        yield item
        return
    if source.format is None:
        _detect_first_line(source, line)
    if source.format == "twitter-v2":
        yield from pages.response_items(item.value, position, item.raw_text())
    else:
        yield item


def _detect_first_line(source: Source, line: bytes) -> None:
    fmt = detect(source.name, line)
    source.use(fmt, JSON_ADAPTERS[fmt])


def fd_lines(fd: int, poll_interval_s: float) -> Iterator[bytes | Idle]:
    """Lines from a pipe or terminal until EOF, with ``IDLE`` whenever nothing arrives for a poll."""
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], poll_interval_s)
        if not ready:
            yield IDLE
            continue
        chunk = os.read(fd, 64 * 1024)
        if not chunk:
            if pending:
                yield pending
            return
        *lines, pending = (pending + chunk).split(b"\n")
        yield from (line + b"\n" for line in lines)
