"""The reading side of a replay: a source's items as verdicts, and where that work runs.

``Reader.judge`` reads and validates a chunk (``source.take``) and judges it (``logic.judge``):
in read order, a tweet to publish is its id and payload JSON, anything else a ``Reject``
(invalid, or a repeat of an id seen earlier in the file: ``duplicate_id``). Verdicts are small
and picklable, so the work can run in a child process on a spare core while this one traces and
produces.

A :class:`Reader` judges in a worker thread (stdin, ``--follow``, small files: the GIL keeps it
on the producer's core). A :class:`ProcessReader` judges a large file in a spawned child (this
process has threads, so it never forks), started ahead by :func:`warm_up` (as the CLI does) or
when needed. A child takes a few tenths of a second to start; until it is ready the reading
happens here, then it moves there, told which file (the very one open here: it checks), how
many items were read (it skips them) and the ids seen. The child sends verdicts in order, a
chunk at a time (the pipe holds back a child that runs ahead). Its failure is raised here as it
was raised there (``SourceFormatError``...); a child that ends unannounced is a
:class:`ReaderError`; one that fails before its first chunk (cannot start, cannot open that very
file) leaves the reading here. ``close()`` ends the child on every path.
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
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import NamedTuple

from common.errors import ServiceError
from ingestor.errors import ReaderError, SourceFormatError
from ingestor.logic import SeenIds, Verdict, Verdicts, judge
from ingestor.settings import SERVICE
from ingestor.source import Source, open_source, take

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


def warm_up() -> None:
    """Start a reading process now, for the next large file: its start (a fresh interpreter
    loading this module, a few tenths of a second) then overlaps the caller's own (settings,
    logging, tracing, Kafka). Nothing to do with one core, or while one is waiting already."""
    global _spare
    if _spare is None and len(os.sched_getaffinity(0)) > 1:
        try:
            _spare = _start_child()
        except OSError as exc:
            log.warning("cannot start a reading process", extra={"error": repr(exc)})


_spare: tuple[Connection, BaseProcess] | None = None  # started by warm_up, taken by the next ProcessReader


def _start_child() -> tuple[Connection, BaseProcess]:
    context = multiprocessing.get_context("spawn")  # never fork: this process has threads
    conn, child_end = context.Pipe()
    process = context.Process(target=serve, args=(child_end,), name=f"{SERVICE}-reader", daemon=True)
    process.start()
    child_end.close()
    return conn, process


def open_reader(source: Source, *, chunk_size: int, process_min_bytes: int) -> Reader:
    """A :class:`ProcessReader` for a regular file of at least ``process_min_bytes`` when this
    process may run on two cores or more, else a :class:`Reader`."""
    large = source.reopen is not None and (source.total_bytes or 0) >= process_min_bytes
    if large and len(os.sched_getaffinity(0)) > 1:
        try:
            return ProcessReader(source, chunk_size)
        except OSError as exc:
            log.warning("cannot start the reading process, reading here", extra={"error": repr(exc)})
    return Reader(source)


class ProcessReader(Reader):
    """Reads in the thread (as a :class:`Reader`) until the child is ready, then in the child;
    back here if the child fails before its first chunk (the same failure, if it was the file's,
    then happens here)."""

    def __init__(self, source: Source, chunk_size: int) -> None:
        super().__init__(source)
        if source.reopen is None:
            raise ValueError(f"{source.name} cannot be opened again in another process")
        global _spare
        spare, _spare = _spare, None
        self._conn, self._process = spare if spare is not None and spare[1].is_alive() else _start_child()
        self.pid = self._process.pid
        self._chunk_size = chunk_size
        self.handed_over = False
        self._child_failed = False
        self._child_started = False  # its first chunk arrived: from then on the file is the child's
        self._pending: list[Verdict] = []
        self._child_done = False
        self._child_bytes: int | None = None
        self._closed = False

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

    async def _from_child(self, wanted: int) -> Verdicts | None:
        while len(self._pending) < wanted and not self._child_done:
            received = await asyncio.to_thread(self._receive)
            if isinstance(received, Failed):
                self._give_up(received.error)
                return None
            if not self._child_started:
                self._child_started, self.seen = True, SeenIds()  # the child keeps them now
            self._pending += received.entries
            self._child_done, self._child_bytes = received.exhausted, received.bytes_read
            if received.cpu_s is not None:
                log.info("reading process done", extra={"source": self.name, "pid": self.pid, "cpu_s": received.cpu_s})
        entries, self._pending = self._pending[:wanted], self._pending[wanted:]
        return Verdicts(entries, exhausted=self._child_done and not self._pending, bytes_read=self._child_bytes)

    def _child_ready(self) -> bool:
        if self._child_failed or self._closed:
            return False
        try:
            if not self._conn.poll():
                return False
            return bool(self._conn.recv() == READY)
        except (EOFError, OSError):
            self._give_up(ReaderError("it ended"))
            return False

    def _hand_over(self) -> None:
        read = self.source.skipped + self.taken
        try:
            self._conn.send((self.source.reopen, self._chunk_size, read, self.seen))
        except OSError:
            self._give_up(ReaderError("it ended"))
            return
        self.handed_over = True
        log.info("reading moved to a child process", extra={"source": self.name, "pid": self.pid, "items_read": read})

    def _give_up(self, error: BaseException) -> None:
        """Nothing was read there that is not here: this process reads on."""
        self.handed_over, self._child_failed = False, True
        log.warning("the reading process failed before its first chunk, reading here",
                    extra={"source": self.name, "error": str(error)})

    def _receive(self) -> Verdicts | Failed:
        """The child's next chunk (blocking: run in a worker thread); its failure before its
        first chunk is returned, after it raised."""
        try:
            message: Verdicts | Failed = self._conn.recv()
        except (EOFError, OSError):
            if not self._child_started:
                return Failed(ReaderError("it ended"))
            self._process.join(timeout=5)
            code = self._process.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise ReaderError(f"the process reading {self.name} ended before the end of the file ({how})") from None
        if isinstance(message, Failed) and self._child_started:
            raise message.error
        assert isinstance(message, Failed) or not message.marks, "a file has no marks"
        return message

    def close(self) -> None:
        """End the child, whatever state it is in (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._conn.close()  # a child blocked on sending fails at once
        process = self._process
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        process.join()
        process.close()


class Failed(NamedTuple):
    """The child's failure: raised in the parent (before the child's first chunk: read on there)."""

    error: BaseException


def serve(conn: Connection) -> None:
    """The child: say it is ready, wait for a file (the parent's, which it checks it opened: the
    same device and inode) and the items already read there, then send the rest of the file as
    verdicts, a chunk at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    # What is loaded by now lives as long as the process: out of the collector's sight, a full
    # collection (one every few thousand tweets) costs a millisecond instead of six.
    gc.freeze()
    try:
        conn.send(READY)
        reopen, chunk_size, skip, seen = conn.recv()
    except (EOFError, OSError):
        return  # the parent finished, or closed, before handing over
    source: Source | None = None
    try:
        source = open_source(reopen.path, reopen.fmt, reopen.columns, csv_encoding=reopen.csv_encoding)
        if source.file_id() != reopen.file_id:
            raise SourceFormatError(f"{reopen.path} now names another file than the one being replayed")
        source.skip(skip)
        reader = Reader(source, seen)
        while True:
            verdicts = reader.judge(chunk_size)
            if verdicts.exhausted:
                verdicts.cpu_s = round(time.process_time(), 3)
            conn.send(verdicts)
            if verdicts.exhausted:
                return
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent closed its end: it needs no more
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(_failed(exc))
    finally:
        if source is not None:
            source.close()


def _failed(exc: BaseException) -> Failed:
    if not isinstance(exc, ServiceError):  # a bug, not a bad file: keep where it happened
        exc.add_note("in the reading process:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.dumps(exc)
    except Exception:
        return Failed(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return Failed(exc)
