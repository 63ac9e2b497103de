"""The API's Kafka publisher: queues stored tweets again for one classifier (``POST /emotion``,
``POST /stance``) and publishes ingested records (``POST /ingest``).

The producer is started lazily and re-created after a failed start, so the API comes up
(and reports not-ready) while Kafka is down instead of refusing to start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common.errors import TransientError
from common.events import JOB_ID_HEADER, STANCE_TARGET_HEADER, TweetRecord
from common.kafka import OutgoingMessage, ensure_topics, make_producer, publish_all
from common.settings import KafkaSettings
from common.telemetry import inject_headers

log = logging.getLogger(__name__)
TASKS = ("emotion", "stance")


class RelabelPublisher:
    def __init__(self, settings: KafkaSettings, client_id: str = "gateway-api") -> None:
        self.settings = settings
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._ensured: set[str] = set()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = make_producer(self.settings, self.client_id)
                try:
                    await ensure_topics(self.settings, [self.settings.topics.requests(t) for t in TASKS])
                    await producer.start()
                except (KafkaError, OSError) as exc:
                    await producer.stop()
                    raise TransientError(f"kafka unreachable at {self.settings.bootstrap_servers}: {exc}") from exc
                self._producer = producer
            return self._producer

    async def start(self) -> None:
        """Best effort at startup; a failure is reported by readiness and retried on use."""
        try:
            await self._started()
        except TransientError as exc:
            log.warning("kafka not reachable at startup", extra={"error": str(exc)})

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ping(self) -> bool:
        try:
            producer = await self._started()
            async with asyncio.timeout(3):
                await producer.client.fetch_all_metadata()
        except (TransientError, KafkaError, OSError, TimeoutError):
            return False
        return True

    async def publish(
        self, task: str, tweets: Sequence[TweetRecord], job_id: str, *, target: str | None = None
    ) -> None:
        """Send every tweet keyed by id with a ``job-id`` header, and a ``stance-target`` header
        when a target is named; return once all are acknowledged."""
        producer = await self._started()
        topic = self.settings.topics.requests(task)
        headers = [(JOB_ID_HEADER, job_id.encode())]
        if target is not None:
            headers.append((STANCE_TARGET_HEADER, target.encode("utf-8")))
        headers += inject_headers()
        messages = [OutgoingMessage(topic, t.id, t.model_dump_json().encode(), headers) for t in tweets]
        try:
            await publish_all(producer, messages)
        except KafkaError as exc:
            raise TransientError(f"kafka did not acknowledge the {task} requests: {exc}") from exc

    async def publish_records(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish prepared messages (``POST /ingest``), creating their topics on first use."""
        producer = await self._started()
        missing = sorted({m.topic for m in messages} - self._ensured)
        try:
            if missing:
                await ensure_topics(self.settings, missing)
                self._ensured.update(missing)
            await publish_all(producer, messages)
        except (KafkaError, OSError) as exc:
            raise TransientError(f"kafka did not acknowledge the ingested records: {exc}") from exc
