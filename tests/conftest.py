"""Fixtures shared by every test layer. Servers are the real ones `make test` starts."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from common.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATASET = REPO / "data" / "sample_tweets.json"
SHARED_DATASET = REPO.parent / "shared" / "data" / "tweets_dataset.json"


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic namespace per test, so tests never see each other's messages."""
    return f"test-{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka_settings(topic_prefix: str) -> KafkaSettings:
    return KafkaSettings(topic_prefix=topic_prefix, partitions=3)


@pytest.fixture
def es_url() -> str:
    return os.environ.get("GATEWAY_ES_URL", "http://127.0.0.1:9200")


@pytest.fixture
def index_name() -> str:
    return f"test-tweets-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def tiny_emotion_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_models import build_tiny_emotion_model

    return build_tiny_emotion_model(tmp_path_factory.mktemp("tiny-emotion-model"))


@pytest.fixture
def shared_dataset() -> Path:
    if not SHARED_DATASET.is_file():
        pytest.skip(f"{SHARED_DATASET} is absent (../shared is only beside the team's checkouts)")
    return SHARED_DATASET
