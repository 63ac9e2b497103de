"""Fixtures shared by every test layer. Servers are the real ones `make test` starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from common.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATASET = REPO / "data" / "sample_tweets.json"
SHARED_DATASET = REPO.parent / "shared" / "data" / "tweets_dataset.json"


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
