"""Wiring only: open the source, create the topics, start the producer, run the replay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from common.kafka import OutgoingMessage, ensure_topics, make_producer, publish_all
from ingestor.errors import KafkaUnavailableError
from ingestor.handlers import ProgressCallback, Replay
from ingestor.logic import ReplaySummary
from ingestor.settings import IngestorSettings
from ingestor.source import open_source

log = logging.getLogger("ingestor")


async def replay(
    path: str,
    settings: IngestorSettings,
    *,
    fmt: str | None = None,
    columns: str | None = None,
    limit: int | None = None,
    rate: float | None = None,
    follow: bool = False,
    stopping: asyncio.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """Replay one source into Kafka and return the reconciled counts.

    Raises ``SourceFormatError`` before touching Kafka when the input is unreadable, and
    ``KafkaUnavailableError`` when the brokers cannot be reached.
    """
    source = await asyncio.to_thread(
        open_source,
        path,
        fmt,
        columns,
        follow=follow,
        poll_interval_s=settings.poll_interval_s,
        csv_encoding=settings.csv_encoding,
    )
    kafka = settings.kafka
    producer = make_producer(kafka, client_id=settings.client_id)
    try:
        try:
            await ensure_topics(kafka, kafka.topics.all())
            await producer.start()
        except (KafkaError, OSError) as exc:
            raise KafkaUnavailableError(
                f"cannot reach Kafka at {kafka.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}. "
                "Start it with `make up` (or `bash deploy/local/infra.sh up kafka`)."
            ) from None

        async def publish(messages: Sequence[OutgoingMessage]) -> None:
            try:
                await publish_all(producer, messages)
            except KafkaError as exc:
                raise KafkaUnavailableError(
                    f"publishing to Kafka at {kafka.bootstrap_servers} failed: {exc!r}"
                ) from exc

        log.info(
            "replay started",
            extra={
                "path": path,
                "format": source.format,
                "topic": kafka.topics.raw,
                "bootstrap": kafka.bootstrap_servers,
            },
        )
        run = Replay(
            source=source,
            publish=publish,
            topics=kafka.topics,
            batch_size=settings.batch_size,
            limit=limit,
            rate=rate,
            stopping=stopping or asyncio.Event(),
            on_progress=on_progress,
        )
        return await run.run()
    finally:
        await producer.stop()
        source.close()
