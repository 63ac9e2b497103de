"""The reading side of a replay: a source's items as verdicts, and where that work runs.

``Reader.judge`` reads and validates a chunk (``source.take``) and judges it (``logic.judge``):
in read order, a tweet to publish is its id and payload JSON, anything else a ``Reject``
(invalid, or a repeat of an id seen earlier in the file: ``duplicate_id``). Verdicts are small
and picklable, so the work can run in a child process on a spare core while this one traces and
produces.

A :class:`Reader` judges in a worker thread (stdin, ``--follow``, small files: the GIL keeps it
on the producer's core). A :class:`ProcessReader` judges a large file in spawned children (this
process has threads, so it never forks), started ahead by :func:`warm_up` (as the CLI does) or
when needed. A child takes a few tenths of a second to start; until the children are ready the
reading happens here, then it moves there, told which file (the very one open here: they
check), how many items were read (they skip them) and the ids seen. A child sends verdicts in
order, a chunk at a time (the pipe holds back a child that runs ahead). Its failure is raised
here as it was raised there (``SourceFormatError``...); a child that ends unannounced is a
:class:`ReaderError`; a failure before the first chunk (cannot start, cannot open that very
file) leaves the reading here. ``close()`` ends the children on every path.

One child reads a JSON array, a CSV file or twitter-v2 pages. JSON Lines of one tweet a line
are shared by ``INGESTOR_READER_PROCESSES`` children (lanes, ``source.lane_chunks``): chunk k is
parsed, validated and serialised by child k mod lanes, every child counting the others' lines
without parsing them, and the chunks are received here in turn, so the order is the file's.
Repeats of an id across chunks are found here, where every id passes, and rejected as one
reader would have (their lines read again for the rejects' text). With one child the reading
ran at about 30,000 tweets/s on this 2-core host and set the replay's rate; two lanes read
1.4 to 1.6 times as fast alone, but in a whole ingest on these 2 cores, where the producing
process and the broker need the same cores, they were no faster for more CPU a tweet, so one
is the default (bench/README.md, sixth pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import time
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import NamedTuple

from common.errors import ServiceError
from common.records import to_outcome
from ingestor.errors import ReaderError
from ingestor.logic import SeenIds, Verdict, Verdicts, judge, repeat_reject, repeated
from ingestor.settings import SERVICE
from ingestor.source import Source, check_same_file, items_at, lane_chunks, open_source, take

log = logging.getLogger(SERVICE)

READY = "ready"  # the child's first message


class Reader:
    """A source's verdicts, ``wanted`` items at a time (fewer when it idles or ends), judged in a
    worker thread."""

    def __init__(self, source: Source, seen: SeenIds | None = None) -> None:
        self.source = source
        self.name = source.name
        self.total_bytes = source.total_bytes
        self.seen = seen if seen is not None else SeenIds()  # handed on when a child takes over
        self.taken = 0  # items read here so far

    @property
    def format(self) -> str | None:
        return self.source.format  # stdin and --follow know it once the first line arrived

    def bytes_read(self) -> int | None:
        return self.source.bytes_read()

    async def next(self, wanted: int) -> Verdicts:
        return await asyncio.to_thread(self.judge, wanted)

    def judge(self, wanted: int) -> Verdicts:
        """Read, validate (``source.take``) and judge (``logic.judge``) a chunk; blocking."""
        chunk = take(self.source, wanted)
        self.taken += len(chunk.items)
        verdicts = judge(chunk.items, self.seen, self.source.name)
        return Verdicts(verdicts, chunk.marks, chunk.idle, chunk.exhausted, self.source.bytes_read())

    def close(self) -> None:
        return None  # the source is its opener's to close


def warm_up(count: int = 1) -> None:
    """Start reading processes now, up to ``count`` waiting, for the next large file: their start
    (a fresh interpreter loading this module, a few tenths of a second each) then overlaps the
    caller's own (settings, logging, tracing, Kafka). Nothing to do with one core."""
    if len(os.sched_getaffinity(0)) < 2:
        return
    _drop_dead_spares()
    while len(_spares) < count:
        try:
            _spares.append(_start_child())
        except OSError as exc:
            log.warning("cannot start a reading process", extra={"error": repr(exc)})
            return


_spares: list[tuple[Connection, BaseProcess]] = []  # started by warm_up, taken by the next ProcessReader


def _start_child() -> tuple[Connection, BaseProcess]:
    context = multiprocessing.get_context("spawn")  # never fork: this process has threads
    conn, child_end = context.Pipe()
    process = context.Process(target=serve, args=(child_end,), name=f"{SERVICE}-reader", daemon=True)
    process.start()
    child_end.close()
    return conn, process


def _drop_dead_spares() -> None:
    """Forget the spares that died while waiting, closing their pipes."""
    for spare in [spare for spare in _spares if not spare[1].is_alive()]:
        spare[0].close()
        _spares.remove(spare)


def _take_child() -> tuple[Connection, BaseProcess]:
    _drop_dead_spares()
    return _spares.pop(0) if _spares else _start_child()


def open_reader(source: Source, *, chunk_size: int, process_min_bytes: int, processes: int = 1) -> Reader:
    """A :class:`ProcessReader` for a regular file of at least ``process_min_bytes`` when this
    process may run on two cores or more, else a :class:`Reader`. JSON Lines of one item a line
    are read by up to ``processes`` children, chunks in turn; other formats by one."""
    large = source.reopen is not None and (source.total_bytes or 0) >= process_min_bytes
    if large and len(os.sched_getaffinity(0)) > 1:
        lanes = processes if source.reopen is not None and source.reopen.one_item_a_line else 1
        try:
            return ProcessReader(source, chunk_size, lanes=lanes)
        except OSError as exc:
            log.warning("cannot start the reading process, reading here", extra={"error": repr(exc)})
    return Reader(source)


class _Child:
    """One reading process, as its parent sees it."""

    def __init__(self, conn: Connection, process: BaseProcess) -> None:
        self.conn, self.process = conn, process
        self.ready = False  # it said so: it may be handed the file
        self.done = False  # it sent its last chunk
        self.ended = False

    def end(self) -> None:
        """End the process, whatever state it is in (idempotent)."""
        if self.ended:
            return
        self.ended = True
        self.conn.close()  # a child blocked on sending fails at once
        process = self.process
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        process.join()
        process.close()


class ProcessReader(Reader):
    """Reads in the thread (as a :class:`Reader`) until the children are ready, then in them;
    back here if the first fails before its first chunk (the same failure, if it was the
    file's, then happens here).

    With ``lanes`` children (a JSON Lines file of one item a line: ``source.lane_chunks``), chunk
    k is child k mod ``lanes``'s and they are received in turn, so the verdicts are the file's in
    order. Each child rejects only the repeats within its chunk; the repeats across chunks are
    found here, where every id is seen, and their lines read again for the rejects' text
    (``source.items_at``)."""

    def __init__(self, source: Source, chunk_size: int, *, lanes: int = 1) -> None:
        super().__init__(source)
        if source.reopen is None:
            raise ValueError(f"{source.name} cannot be opened again in another process")
        if lanes > 1 and not source.reopen.one_item_a_line:
            raise ValueError(f"{source.name} is not JSON Lines of one item a line: one process reads it")
        self._children: list[_Child] = []
        try:
            for _ in range(lanes):
                self._children.append(_Child(*_take_child()))
        except OSError:
            for child in self._children:
                child.end()
            raise
        self.pid = self._children[0].process.pid
        self.pids = [child.process.pid for child in self._children]
        self._chunk_size = chunk_size
        self._turn = 0  # the child whose chunk comes next
        self.handed_over = False
        self._child_failed = False
        self._child_started = False  # a first chunk arrived: from then on the file is the children's
        self._pending: list[Verdict] = []
        self._child_bytes: int | None = None
        self._closed = False

    @property
    def lanes(self) -> int:
        return len(self._children)

    def bytes_read(self) -> int | None:
        return self._child_bytes if self._child_started else super().bytes_read()

    async def next(self, wanted: int) -> Verdicts:
        if not self.handed_over and self._child_ready():
            self._hand_over()
        if self.handed_over:
            verdicts = await self._from_child(wanted)
            if verdicts is not None:
                return verdicts
        return await super().next(wanted)

    def _all_done(self) -> bool:
        return all(child.done for child in self._children)

    async def _from_child(self, wanted: int) -> Verdicts | None:
        while len(self._pending) < wanted and not self._all_done():
            child = self._children[self._turn]
            received = await asyncio.to_thread(self._receive, child)
            if isinstance(received, Failed):
                self._give_up(received.error)
                return None
            if not self._child_started:
                self._child_started = True
                if self.lanes == 1:
                    self.seen = SeenIds()  # the child keeps them now
            self._pending += self._repeats_rejected(received) if self.lanes > 1 else received.entries
            child.done = received.exhausted
            if received.bytes_read is not None:
                self._child_bytes = max(self._child_bytes or 0, received.bytes_read)
            if received.cpu_s is not None:
                log.info("reading process done", extra={"source": self.name, "pid": child.process.pid,
                                                         "cpu_s": received.cpu_s})
            self._next_turn()
        entries, self._pending = self._pending[:wanted], self._pending[wanted:]
        return Verdicts(entries, exhausted=self._all_done() and not self._pending, bytes_read=self._child_bytes)

    def _next_turn(self) -> None:
        for _ in range(self.lanes):
            self._turn = (self._turn + 1) % self.lanes
            if not self._children[self._turn].done:
                return

    def _repeats_rejected(self, received: Verdicts) -> list[Verdict]:
        """A lane's chunk with the tweets whose id an earlier chunk (another lane's) held turned
        into ``duplicate_id`` rejects, as one reader would have judged them."""
        entries = received.entries
        repeats = repeated(entries, self.seen)
        if repeats:
            assert self.source.reopen is not None and received.lines_start is not None
            items = items_at(self.source.reopen, received.lines_start, set(repeats))
            for index in repeats:
                entries[index] = repeat_reject(items[index], self.name, entries[index][0])
        return entries

    def _child_ready(self) -> bool:
        if self._child_failed or self._closed:
            return False
        try:
            for child in self._children:
                if not child.ready:
                    if not child.conn.poll():
                        return False
                    child.ready = child.conn.recv() == READY
            return all(child.ready for child in self._children)
        except (EOFError, OSError):
            self._give_up(ReaderError("it ended"))
            return False

    def _hand_over(self) -> None:
        read = self.source.skipped + self.taken
        lanes = self.lanes
        try:
            for lane, child in enumerate(self._children):
                # One child keeps the ids seen; lanes leave that to this process (``_repeats_rejected``).
                seen = self.seen if lanes == 1 else None
                child.conn.send((self.source.reopen, self._chunk_size, read, seen, lane, lanes))
        except OSError:
            self._give_up(ReaderError("it ended"))
            return
        self.handed_over = True
        log.info("reading moved to a child process",
                 extra={"source": self.name, "pid": self.pid, "pids": self.pids, "items_read": read})

    def _give_up(self, error: BaseException) -> None:
        """Nothing was read there that is not here: this process reads on, and ends the children."""
        self.handed_over, self._child_failed = False, True
        log.warning("the reading process failed before its first chunk, reading here",
                    extra={"source": self.name, "error": str(error)})
        for child in self._children:
            child.end()

    def _receive(self, child: _Child) -> Verdicts | Failed:
        """``child``'s next chunk (blocking: run in a worker thread); a failure before the first
        chunk (of any child) is returned, after it raised."""
        try:
            message: Verdicts | Failed = child.conn.recv()
        except (EOFError, OSError):
            if not self._child_started:
                return Failed(ReaderError("it ended"))
            child.process.join(timeout=5)
            code = child.process.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise ReaderError(f"the process reading {self.name} ended before the end of the file ({how})") from None
        if isinstance(message, Failed) and self._child_started:
            raise message.error
        assert isinstance(message, Failed) or not message.marks, "a file has no marks"
        return message

    def close(self) -> None:
        """End the children, whatever state they are in (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for child in self._children:
            child.end()


class Failed(NamedTuple):
    """The child's failure: raised in the parent (before the child's first chunk: read on there)."""

    error: BaseException


def serve(conn: Connection) -> None:
    """The child: say it is ready, wait for a file (the parent's, which it checks it opened: the
    same device and inode) and the items already read there, then send the rest of the file as
    verdicts, a chunk at a time (with lanes, its own chunks: ``source.lane_chunks``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    # What is loaded by now lives as long as the process: out of the collector's sight, a full
    # collection (one every few thousand tweets) costs a millisecond instead of six.
    gc.freeze()
    try:
        conn.send(READY)
        reopen, chunk_size, skip, seen, lane, lanes = conn.recv()
    except (EOFError, OSError):
        return  # the parent finished, or closed, before handing over
    source: Source | None = None
    try:
        source = open_source(reopen.path, reopen.fmt, reopen.columns, csv_encoding=reopen.csv_encoding)
        check_same_file(reopen, source.file_id())
        chunks = _lane(source, chunk_size, skip, lane, lanes) if lanes > 1 else _whole(source, chunk_size, skip, seen)
        for verdicts in chunks:
            if verdicts.exhausted:
                verdicts.cpu_s = round(time.process_time(), 3)
            conn.send(verdicts)
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent closed its end: it needs no more
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(_failed(exc))
    finally:
        if source is not None:
            source.close()


def _whole(source: Source, chunk_size: int, skip: int, seen: SeenIds) -> Iterator[Verdicts]:
    source.skip(skip)
    reader = Reader(source, seen)
    while True:
        verdicts = reader.judge(chunk_size)
        yield verdicts
        if verdicts.exhausted:
            return


def _lane(source: Source, chunk_size: int, skip: int, lane: int, lanes: int) -> Iterator[Verdicts]:
    adapter, name = source.adapter, source.name
    for chunk in lane_chunks(source, skip=skip, size=chunk_size, lane=lane, lanes=lanes):
        outcomes = [(item, to_outcome(item, adapter, name)) for item in chunk.items]
        # Repeats within the chunk are rejected here, those across chunks by the parent, which
        # sees every id (a set per chunk keeps this process's memory flat).
        entries = judge(outcomes, SeenIds(), name)
        yield Verdicts(entries, exhausted=chunk.exhausted, bytes_read=source.bytes_read(), lines_start=chunk.start)


def _failed(exc: BaseException) -> Failed:
    if not isinstance(exc, ServiceError):  # a bug, not a bad file: keep where it happened
        exc.add_note("in the reading process:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.dumps(exc)
    except Exception:
        return Failed(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return Failed(exc)
