"""A small rig for testing the delivery loop on the real broker: a source topic, an output
topic, recording handlers, and loops run as tasks (several of them form one consumer group)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord

from common.delivery import BatchLoop, Subscription, group_loop
from common.errors import TransientError
from common.kafka import OutgoingMessage, ensure_topics
from common.settings import KafkaSettings
from tests.support.kafka_probe import committed_and_ends, read_all

T = TypeVar("T")


@dataclass
class Rig:
    kafka: KafkaSettings
    group: str = "delivery-test"

    @property
    def source(self) -> str:
        return f"{self.kafka.topic_prefix}source"

    @property
    def output(self) -> str:
        return f"{self.kafka.topic_prefix}output"

    @property
    def dlq(self) -> str:
        return f"{self.source}.dlq"

    async def create_topics(self) -> None:
        await ensure_topics(self.kafka, [self.source, self.output, self.dlq])

    async def produce(self, keys: list[str]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap_servers, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(self.source, key.encode(), key=key.encode()) for key in keys]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    def loop(self, handler: Recorder, *, replica: str, transactional: bool = True, batch_size: int = 20) -> BatchLoop:
        group = self.kafka.group(self.group)
        subscription = Subscription("delivery-test", group, [self.source], batch_size, 100, transactional=transactional)
        return group_loop(
            self.kafka.model_copy(update={"replica_id": replica}), subscription, handler, max_backoff_s=1.0
        )

    async def output_keys(self) -> Counter[str]:
        """How many committed output messages each key has."""
        return Counter((key or b"").decode() for key, _ in await read_all(self.kafka, self.output))

    async def dead_letters(self) -> list[tuple[bytes | None, bytes]]:
        return await read_all(self.kafka, self.dlq)

    async def all_committed(self) -> bool:
        committed, ends = await committed_and_ends(self.kafka, self.kafka.group(self.group), [self.source])
        return committed == ends and sum(ends.values()) > 0

    async def committed_total(self) -> int:
        committed, _ = await committed_and_ends(self.kafka, self.kafka.group(self.group), [self.source])
        return sum(committed.values())


@dataclass
class Recorder:
    """A handler: one output message per record (key → output topic), recording what it saw.

    ``down`` makes it raise TransientError (a dependency outage); ``gate``, when set, makes it
    wait before answering; ``poison`` values make it raise ValueError for the whole batch."""

    output: str
    down: bool = False
    gate: asyncio.Event | None = None
    poison: set[bytes] = field(default_factory=set)
    delay: float = 0.0  # seconds per batch, so that work is in flight when the group changes
    seen: list[ConsumerRecord] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        self.calls += 1
        self.started.set()
        if self.down:
            raise TransientError("dependency down")
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if any(r.value in self.poison for r in batch):
            raise ValueError("cannot handle this record")
        self.seen.extend(batch)
        return [OutgoingMessage(self.output, (r.key or b"").decode(), r.value or b"") for r in batch]


@contextlib.asynccontextmanager
async def running(loop: BatchLoop) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``loop`` as a task; stop it gracefully on exit (raising whatever it raised)."""

    async def serve() -> None:
        async with loop:
            await loop.run()

    task = asyncio.create_task(serve())
    try:
        yield task
    finally:
        loop.stopping.set()
        await asyncio.wait_for(task, 60)


def now(value: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """Turn a plain getter into a probe for ``wait_until``."""

    async def probe() -> T:
        return value()

    return probe
