"""Wiring only: open the source, create the topics, start the producer, run the replay (one file,
a followed file with its checkpoint, or every file a watched directory receives)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from common.kafka import OutgoingMessage, ensure_topics, make_producer, send_all
from common.settings import KafkaSettings
from common.telemetry import configured_tracer
from ingestor.checkpoint import Ledger, Mark, StateDir, read_identity
from ingestor.errors import KafkaUnavailableError, SourceFormatError
from ingestor.handlers import SERVICE, IndexedIds, ProgressCallback, Replay
from ingestor.index_lookup import IndexLookup
from ingestor.logic import ReplaySummary
from ingestor.settings import IngestorSettings
from ingestor.source import Source, open_source
from ingestor.tail import open_followed
from ingestor.watch import ReadyFiles

log = logging.getLogger("ingestor")


class KafkaOut:
    """The producer (idempotent, acks=all). With ``retry`` (continuous modes) an unreachable
    broker is retried with capped exponential backoff until it comes back or the run stops.

    A message is never dropped and never handed to Kafka twice: once the producer holds it,
    the idempotent producer retries it until the broker acknowledges it (aiokafka never expires
    such a batch), so we keep waiting on its future instead of sending it again. Only a message
    whose send failed before it left (no metadata, no leader) is sent again.

    Several ``publish`` calls may wait for acknowledgements at once (the replay keeps the next
    batch going while one is acknowledged); handing messages to the producer is serialised, so
    batches enter it in the order they were published.
    """

    def __init__(self, settings: IngestorSettings, *, retry: bool, stopping: asyncio.Event) -> None:
        self.kafka: KafkaSettings = settings.kafka
        self._client_id = settings.client_id
        self._max_backoff_s = settings.max_backoff_s
        self._retry = retry
        self._stopping = stopping
        self._producer: AIOKafkaProducer | None = None
        self._traced = configured_tracer(SERVICE) is not None
        self._handing = asyncio.Lock()
        self.retries = 0

    async def start(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._connect()
                return
            except (KafkaError, OSError) as exc:
                backoff = await self._wait_or_fail("connect", exc, backoff)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        assert self._producer is not None, "start() first"
        futures: list[asyncio.Future[Any] | None] = [None] * len(messages)
        backoff = 0.5
        while True:
            failure: BaseException | None = None
            try:
                async with self._handing:
                    for index, message in enumerate(messages):
                        if futures[index] is None:
                            futures[index] = await self._send(self._producer, message)
            except KafkaError as exc:
                failure = exc  # this message (and those after it) never reached the producer
            pending = [future for future in futures if future is not None and not future.done()]
            if pending:  # healthy brokers answer in milliseconds; a silent one is waited out in rounds
                await asyncio.wait(pending, timeout=self.kafka.request_timeout_ms / 1000 if self._retry else None)
            for index, future in enumerate(futures):
                error = future.exception() if future is not None and future.done() else None
                if error is not None:
                    permanent = isinstance(error, KafkaError) and not error.retriable
                    if permanent and not isinstance(error, KafkaTimeoutError):  # e.g. a message too large
                        raise KafkaUnavailableError(self._explain("publish", error)) from error
                    failure, futures[index] = error, None  # it never left the producer: send it again
            if all(future is not None and future.done() for future in futures):
                return
            backoff = await self._wait_or_fail("publish", failure or TimeoutError("no acknowledgement yet"), backoff)

    async def _send(self, producer: AIOKafkaProducer, message: OutgoingMessage) -> asyncio.Future[Any]:
        if self._traced and not message.headers:
            return (await send_all(producer, [message]))[0]  # a reject: its producer span roots its trace
        # A tweet's headers already carry its trace (the replay's ``ingestor.publish`` span is the
        # publish, sampled or not), and with tracing off there is none: no second span per tweet.
        key = message.key.encode() if message.key is not None else None
        future: asyncio.Future[Any] = await producer.send(
            message.topic, value=message.value, key=key, headers=message.headers or None
        )
        return future

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), self.kafka.request_timeout_ms / 1000)

    async def _connect(self) -> None:
        await ensure_topics(self.kafka, self.kafka.topics.all())
        producer = make_producer(self.kafka, client_id=self._client_id)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def _wait_or_fail(self, what: str, failure: BaseException, backoff: float) -> float:
        """Back off before the next attempt, or raise when not retrying (or asked to stop)."""
        if not self._retry or self._stopping.is_set():
            raise KafkaUnavailableError(self._explain(what, failure)) from None
        self.retries += 1
        log.warning(
            "Kafka unavailable, retrying", extra={"during": what, "error": repr(failure), "retry_in_s": backoff}
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), backoff)
        return min(backoff * 2, self._max_backoff_s)

    def _explain(self, what: str, exc: BaseException) -> str:
        if what == "connect":
            return (
                f"cannot reach Kafka at {self.kafka.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}. "
                "Start it with `make up` (or `bash deploy/local/infra.sh up kafka`)."
            )
        return f"publishing to Kafka at {self.kafka.bootstrap_servers} failed: {exc!r}"


def state_dir(settings: IngestorSettings) -> StateDir:
    kafka = settings.kafka
    return StateDir(settings.state_dir, scope=f"{kafka.bootstrap_servers}|{kafka.topic_prefix}")


async def replay(
    path: str,
    settings: IngestorSettings,
    *,
    fmt: str | None = None,
    columns: str | None = None,
    limit: int | None = None,
    rate: float | None = None,
    follow: bool = False,
    skip_existing: bool = False,
    stopping: asyncio.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """Replay one source into Kafka and return the reconciled counts.

    Raises ``SourceFormatError`` before touching Kafka when the input is unreadable, and
    ``KafkaUnavailableError`` when the brokers cannot be reached (with ``follow``: only once
    stopped while they were still unreachable; until then it retries).
    """
    stopping = stopping or asyncio.Event()
    source = await asyncio.to_thread(
        open_source,
        path,
        fmt,
        columns,
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

    out = KafkaOut(settings, retry=follow, stopping=stopping)
    lookup = _lookup(settings) if skip_existing else None
    try:
        await out.start()
        log.info(
            "replay started",
            extra={"path": path, "format": source.format, "topic": settings.kafka.topics.raw,
                   "bootstrap": settings.kafka.bootstrap_servers},
        )
        run = _replay(source, out, settings, lookup, stopping, limit=limit, rate=rate, on_progress=on_progress)
        run.on_checkpoint = on_checkpoint
        summary = await run.run()
        if followed is not None:
            summary.follow_events = followed.events
        return summary
    finally:
        await out.stop()
        if lookup is not None:
            await lookup.close()
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
    ``stopping`` is set: a ledger of finished files (by identity) in the state directory, and a
    checkpoint (records already sent) for the file in progress."""
    stopping = stopping or asyncio.Event()
    if not directory.is_dir():
        raise SourceFormatError(f"cannot watch {directory}: not a directory")
    state = state_dir(settings)
    ledger = Ledger(state.ledger_file(directory))
    ready = ReadyFiles(directory, settings.watch_settle_s)
    out = KafkaOut(settings, retry=True, stopping=stopping)
    lookup = _lookup(settings) if skip_existing else None
    summaries: list[ReplaySummary] = []
    log.info("watching", extra={"directory": str(directory), "finished_before": len(ledger)})
    try:
        await out.start()
        while not stopping.is_set():
            for path in await asyncio.to_thread(ready.scan):
                if stopping.is_set():
                    break
                summary = await _watched_file(path, settings, out, state, ledger, lookup, stopping, fmt, columns)
                if summary is not None:
                    summaries.append(summary)
                    if on_file is not None:
                        on_file(summary)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), settings.poll_interval_s)
        return summaries
    finally:
        await out.stop()
        if lookup is not None:
            await lookup.close()


async def _watched_file(
    path: Path,
    settings: IngestorSettings,
    out: KafkaOut,
    state: StateDir,
    ledger: Ledger,
    lookup: IndexedIds | None,
    stopping: asyncio.Event,
    fmt: str | None,
    columns: str | None,
) -> ReplaySummary | None:
    try:
        file = await asyncio.to_thread(read_identity, path)
    except OSError:
        return None  # gone between the scan and now
    if ledger.has(file):
        return None
    key = f"watch:{file.device}:{file.inode}:{file.fingerprint}"
    resume = state.load(key)
    skip = resume.skip if resume is not None else 0
    try:
        source = await asyncio.to_thread(
            open_source, str(path), fmt, columns, csv_encoding=settings.csv_encoding
        )
    except SourceFormatError as exc:
        log.error("watched file skipped: unreadable", extra={"path": str(path), "error": str(exc)})
        ledger.add(path, file, published=0, error=str(exc))
        return None
    source.items = itertools.islice(source.items, skip, None)
    try:
        run = _replay(source, out, settings, lookup, stopping)
        run.count_items, run.skipped = True, skip
        run.on_checkpoint = lambda mark: state.save(key, path, file, mark.cursor)
        summary = await run.run()
    finally:
        source.close()
    summary.skipped_on_resume = skip
    if stopping.is_set():
        return summary  # interrupted: the checkpoint resumes it after a restart
    ledger.add(path, file, published=summary.published)
    state.forget(key)
    log.info("watched file done", extra={"path": str(path), "summary": summary.model_dump(mode="json")})
    return summary


def _replay(
    source: Source,
    out: KafkaOut,
    settings: IngestorSettings,
    lookup: IndexedIds | None,
    stopping: asyncio.Event,
    *,
    limit: int | None = None,
    rate: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> Replay:
    return Replay(
        source=source,
        publish=out.publish,
        topics=settings.kafka.topics,
        batch_size=settings.batch_size,
        limit=limit,
        rate=rate,
        stopping=stopping,
        on_progress=on_progress,
        indexed=lookup,
    )


def _lookup(settings: IngestorSettings) -> IndexLookup:
    return IndexLookup(settings.es_url, settings.index)
