"""Wiring only. ``main()`` runs the command line (``cli``) with the two runs below; each run opens
the source, the Kafka publisher, the index lookup (``--skip-existing``) and the checkpoints, runs
the replay loop over them (one file, a followed file, or every file a watched directory
receives) and closes them again."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Callable
from pathlib import Path

from common.errors import TransientError
from common.tweet_store import ExistingIds, TweetStore
from ingestor.checkpoint import Mark, StateDir
from ingestor.cli import ReplayOptions, Runs, app
from ingestor.errors import IndexUnavailableError, SourceFormatError
from ingestor.logic import ReplaySummary
from ingestor.publisher import KafkaPublisher
from ingestor.reader import open_reader
from ingestor.replay import ProgressCallback, Replay
from ingestor.settings import SERVICE, IngestorSettings
from ingestor.source import open_source
from ingestor.tail import open_followed
from ingestor.watch import DirectoryWatch

log = logging.getLogger(SERVICE)


def state_dir(settings: IngestorSettings) -> StateDir:
    kafka = settings.kafka
    return StateDir(settings.state_dir, scope=f"{kafka.bootstrap_servers}|{kafka.topic_prefix}")


async def replay(
    path: str,
    settings: IngestorSettings,
    options: ReplayOptions | None = None,
    *,
    stopping: asyncio.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """Replay one source into Kafka as ``options`` ask (default: all of it, once, format
    detected) and return the reconciled counts.

    Raises ``SourceFormatError`` before touching Kafka when the input is unreadable, and
    ``KafkaUnavailableError`` when the brokers cannot be reached (with ``follow``: only once
    stopped while they were still unreachable; until then it retries).
    """
    options = options or ReplayOptions()
    follow = options.follow
    stopping = stopping or asyncio.Event()
    source = await asyncio.to_thread(
        open_source,
        path,
        options.fmt,
        options.columns,
        follow=follow,
        poll_interval_s=settings.poll_interval_s,
        csv_encoding=settings.csv_encoding,
    )
    on_checkpoint = None
    followed = None
    if follow and path != "-":
        state, key, file = state_dir(settings), f"follow:{Path(path).resolve()}", Path(path)
        followed = open_followed(source, file, settings.poll_interval_s, state.load(key))

        def on_checkpoint(mark: Mark) -> None:
            assert mark.file is not None
            state.save(key, file, mark.file, mark.cursor)

    publisher = KafkaPublisher(settings, retry=follow, stopping=stopping)
    lookup = _lookup(settings) if options.skip_existing else None
    # A large file is read in a child process on a spare core, which starts now, while Kafka is
    # connected; stdin, --follow and small files in a worker thread.
    reader = open_reader(
        source,
        chunk_size=settings.batch_size,
        process_min_bytes=settings.reader_process_min_bytes,
        processes=settings.reader_processes,
    )
    try:
        await publisher.start()
        log.info(
            "replay started",
            extra={"path": path, "format": source.format, "topic": settings.kafka.topics.raw,
                   "bootstrap": settings.kafka.bootstrap_servers},
        )
        run = Replay(
            reader,
            publisher,
            settings.kafka.topics,
            batch_size=settings.batch_size,
            limit=options.limit,
            rate=options.rate,
            stopping=stopping,
            on_progress=on_progress,
            on_checkpoint=on_checkpoint,
            indexed=lookup,
            sample_ratio=settings.telemetry.otel_traces_sampler_ratio,
        )
        freeze_long_lived()
        summary = await run.run()
        if followed is not None:
            summary.follow_events = followed.events
        return summary
    finally:
        await publisher.stop()
        if lookup is not None:
            await lookup.close()
        reader.close()
        source.close()
        if followed is not None:
            followed.close()


async def watch(
    directory: Path,
    settings: IngestorSettings,
    *,
    fmt: str | None = None,
    columns: str | None = None,
    skip_existing: bool = False,
    stopping: asyncio.Event | None = None,
    on_file: Callable[[ReplaySummary], None] | None = None,
) -> list[ReplaySummary]:
    """Replay every file that arrives in ``directory``, each exactly once across restarts, until
    ``stopping`` is set (see ``watch.DirectoryWatch``)."""
    stopping = stopping or asyncio.Event()
    if not directory.is_dir():
        raise SourceFormatError(f"cannot watch {directory}: not a directory")
    publisher = KafkaPublisher(settings, retry=True, stopping=stopping)
    lookup = _lookup(settings) if skip_existing else None
    try:
        watcher = DirectoryWatch(
            directory, settings, publisher, state_dir(settings), stopping,
            indexed=lookup, fmt=fmt, columns=columns, on_file=on_file,
        )
        log.info("watching", extra={"directory": str(directory), "finished_before": len(watcher.ledger)})
        await publisher.start()
        freeze_long_lived()
        return await watcher.run()
    finally:
        await publisher.stop()
        if lookup is not None:
            await lookup.close()


@functools.cache  # once a process
def freeze_long_lived() -> None:
    """Before the first replay: what is loaded by then (modules, the SDK, the clients, about
    100,000 objects) lives as long as the process, so the garbage collector stops walking it.
    Each full collection, one every 15,000 tweets or so, then costs about a millisecond instead
    of 50 (4 µs a tweet). Garbage is collected first: only live objects are frozen."""
    gc.collect()
    gc.freeze()


def _lookup(settings: IngestorSettings) -> ExistingIds:
    def unavailable(exc: TransientError) -> IndexUnavailableError:
        where = f"--skip-existing needs Elasticsearch at {settings.es_url} (INGESTOR_ES_URL / GATEWAY_ES_URL)"
        return IndexUnavailableError(f"{where}: {exc}")

    return ExistingIds(TweetStore(settings.es_url, max_retries=3), settings.index, unavailable)


def main() -> None:
    app(prog_name="python -m ingestor", obj=Runs(replay=replay, watch=watch))
