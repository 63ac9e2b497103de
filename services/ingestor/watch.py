"""``ingestor watch DIR``: replay every file that arrives in a directory, each exactly once.

:class:`ReadyFiles` says which files are ready. A file is ready once it is a regular file whose
name does not mark it as unfinished (hidden, ``*.tmp``, ``*.part``, ``*.partial``,
``*.crdownload``, ``*.swp``) and whose size and mtime have not changed for ``settle_s`` seconds:
a writer still copying it in would change them. Writers that can should write under a temporary
name and rename when done (atomic on one filesystem). Files come oldest first (mtime, then name),
so a stream of files replays in arrival order.

:class:`DirectoryWatch` replays each ready file once across restarts: a ledger of finished files
(by identity) in the state directory, and a checkpoint (records already sent) for the file in
progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingestor.checkpoint import Ledger, StateDir, read_identity
from ingestor.errors import SourceFormatError
from ingestor.logic import ReplaySummary
from ingestor.reader import open_reader, warm_up
from ingestor.replay import IndexedIds, Publisher, Replay
from ingestor.settings import SERVICE, IngestorSettings
from ingestor.source import open_source

log = logging.getLogger(SERVICE)

UNFINISHED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


def unfinished_name(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(UNFINISHED_SUFFIXES)


class ReadyFiles:
    def __init__(self, directory: Path, settle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.settle_s = settle_s
        self._clock = clock
        self._seen: dict[str, tuple[int, int, float]] = {}  # path → (size, mtime_ns, unchanged since)

    def scan(self) -> list[Path]:
        now = self._clock()
        current: dict[str, tuple[int, int, float]] = {}
        ready: list[tuple[int, str]] = []
        for entry in os.scandir(self.directory):
            if unfinished_name(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # renamed or removed between listing and stat
            size, mtime = stat.st_size, stat.st_mtime_ns
            previous = self._seen.get(entry.path)
            since = previous[2] if previous is not None and previous[:2] == (size, mtime) else now
            current[entry.path] = (size, mtime, since)
            if size > 0 and now - since >= self.settle_s:
                ready.append((mtime, entry.path))
        self._seen = current
        return [Path(path) for _, path in sorted(ready)]


@dataclass
class DirectoryWatch:
    """Replay the files that become ready in ``directory`` until ``stopping`` is set."""

    directory: Path
    settings: IngestorSettings
    publisher: Publisher
    state: StateDir
    stopping: asyncio.Event
    indexed: IndexedIds | None = None
    fmt: str | None = None
    columns: str | None = None
    on_file: Callable[[ReplaySummary], None] | None = None
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.state.ledger_file(self.directory))
        self._ready = ReadyFiles(self.directory, self.settings.watch_settle_s)

    async def run(self) -> list[ReplaySummary]:
        summaries: list[ReplaySummary] = []
        while not self.stopping.is_set():
            for path in await asyncio.to_thread(self._ready.scan):
                if self.stopping.is_set():
                    break
                summary = await self._replay_file(path)
                if summary is not None:
                    summaries.append(summary)
                    if self.on_file is not None:
                        self.on_file(summary)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self.stopping.wait()
        return summaries

    async def _replay_file(self, path: Path) -> ReplaySummary | None:
        try:
            file = await asyncio.to_thread(read_identity, path)
        except OSError:
            return None  # gone between the scan and now
        if self.ledger.has(file):
            return None
        key = f"watch:{file.device}:{file.inode}:{file.fingerprint}"
        resume = self.state.load(key)
        skip = resume.skip if resume is not None else 0
        try:
            source = await asyncio.to_thread(
                open_source, str(path), self.fmt, self.columns, csv_encoding=self.settings.csv_encoding
            )
        except SourceFormatError as exc:
            log.error("watched file skipped: unreadable", extra={"path": str(path), "error": str(exc)})
            self.ledger.add(path, file, published=0, error=str(exc))
            return None
        source.skip(skip)
        reader = open_reader(
            source,
            chunk_size=self.settings.batch_size,
            process_min_bytes=self.settings.reader_process_min_bytes,
            processes=self.settings.reader_processes,
        )
        try:
            run = Replay(
                reader,
                self.publisher,
                self.settings.kafka.topics,
                batch_size=self.settings.batch_size,
                stopping=self.stopping,
                indexed=self.indexed,
                count_items=True,  # a whole file has no marks: resume by counting records
                skipped=skip,
                on_checkpoint=lambda mark: self.state.save(key, path, file, mark.cursor),
                sample_ratio=self.settings.telemetry.otel_traces_sampler_ratio,
            )
            summary = await run.run()
        finally:
            reader.close()
            source.close()
            warm_up()  # a reading process for the next file (if it is large), starting meanwhile
        summary.skipped_on_resume = skip
        if self.stopping.is_set():
            return summary  # interrupted: the checkpoint resumes it after a restart
        self.ledger.add(path, file, published=summary.published)
        self.state.forget(key)
        log.info("watched file done", extra={"path": str(path), "summary": summary.model_dump(mode="json")})
        return summary
