"""Fixtures shared by every test layer. Servers are the real ones `make test` starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from common.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATASET = REPO / "data" / "sample_tweets.json"
SHARED_DATASET = REPO.parent / "shared" / "data" / "tweets_dataset.json"


@pytest.hookimpl(hookwrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Generator[None, None, None]:
    """A timed-out async test shows where each of its asyncio tasks waits, not only the event
    loop's select() that pytest-timeout's thread stacks would show."""
    yield
    timed_out = signal.getsignal(signal.SIGALRM)
    if not callable(timed_out):
        return

    def dump_tasks_then_fail(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # a sync test: no running loop, no tasks
            for task in asyncio.all_tasks(asyncio.get_running_loop()):
                print(f"--- asyncio task {task.get_name()} of {item.nodeid}", file=sys.stderr)
                task.print_stack(file=sys.stderr)
        timed_out(signum, frame)

    signal.signal(signal.SIGALRM, dump_tasks_then_fail)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    # Its own thread and loop: the tests' session event loop must stay untouched.
    worker = threading.Thread(target=asyncio.run, args=(delete(),))
    worker.start()
    worker.join(60)


@pytest.fixture
def topic_prefix() -> Iterator[str]:
    """A unique topic namespace per test, so tests never see each other's messages.

    The topics are deleted afterwards, so repeated runs don't pile up thousands of them."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    yield prefix
    with contextlib.suppress(Exception):  # a test that never reached Kafka leaves nothing behind
        _delete_topics(KafkaSettings().bootstrap_servers, prefix)


@pytest.fixture
def kafka_settings(topic_prefix: str) -> KafkaSettings:
    return KafkaSettings(topic_prefix=topic_prefix, partitions=3)


@pytest.fixture
def es_url() -> str:
    return os.environ.get("GATEWAY_ES_URL", "http://127.0.0.1:9200")


@pytest.fixture
def index_name(es_url: str) -> Iterator[str]:
    name = f"test-tweets-{uuid.uuid4().hex[:10]}"
    yield name
    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(f"{es_url}/{name},{name}-jobs", params={"ignore_unavailable": "true"}, timeout=30)


@pytest.fixture(scope="session")
def tiny_emotion_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_models import build_tiny_emotion_model

    return build_tiny_emotion_model(tmp_path_factory.mktemp("tiny-emotion-model"))


@pytest.fixture
def shared_dataset() -> Path:
    if not SHARED_DATASET.is_file():
        pytest.skip(f"{SHARED_DATASET} is absent (../shared is only beside the team's checkouts)")
    return SHARED_DATASET
