"""The emotion service against the real Kafka broker, with a tiny model built at test time."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from common.events import Author, DeadLetter, LabelEvent, TweetRecord
from common.kafka import ensure_topics
from common.settings import KafkaSettings
from emotion.main import run
from emotion.settings import EmotionSettings
from tests.support.kafka_probe import committed_and_ends, read_all
from tests.support.polling import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.model]


def _tweets(n: int) -> list[TweetRecord]:
    return [
        TweetRecord(
            id=str(2**62 + i),
            author=Author(handle=f"user{i}"),
            created_at=datetime(2024, 3, 1, tzinfo=UTC),
            text=f"tweet number {i} about the budget vote",
            source="integration",
        )
        for i in range(n)
    ]


async def test_every_tweet_gets_one_label_and_garbage_is_dead_lettered(
    kafka_settings: KafkaSettings, tiny_emotion_model: Path
) -> None:
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings, topics.all())
    tweets = _tweets(25)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await producer.start()
    for tweet in tweets:
        await producer.send_and_wait(topics.raw, tweet.model_dump_json().encode(), key=tweet.id.encode())
    await producer.send_and_wait(topics.raw, b"{broken", key=b"poison")
    await producer.stop()

    settings = EmotionSettings(model=str(tiny_emotion_model), kafka=kafka_settings, batch_size=8)
    stopping = asyncio.Event()
    service = asyncio.create_task(run(settings, stopping))

    async def labels() -> list[LabelEvent]:
        return [LabelEvent.model_validate_json(v) for _, v in await read_all(kafka_settings, topics.labels)]

    events = await wait_until(labels, lambda e: len(e) >= len(tweets), what="25 label events")
    stopping.set()
    await asyncio.wait_for(service, 30)

    assert Counter(e.tweet_id for e in events) == Counter(t.id for t in tweets)
    assert all(e.task == "emotion" and e.model == str(tiny_emotion_model) for e in events)
    [(key, value)] = await read_all(kafka_settings, topics.dlq(topics.raw))
    letter = DeadLetter.model_validate_json(value)
    assert key == b"poison" and letter.reason == "invalid_tweet:message" and letter.value == "{broken"

    # Offsets were committed for everything, including the dead-lettered message.
    committed, ends = await committed_and_ends(kafka_settings, kafka_settings.group("emotion"), [topics.raw])
    assert committed == ends
