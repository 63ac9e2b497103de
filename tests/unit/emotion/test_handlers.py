from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from common.events import EMOTION_LABELS, Author, DeadLetter, LabelEvent, TweetRecord
from emotion.handlers import EmotionHandler


class FakeClassifier:
    model_id = "fake/emotion"
    revision = "abc"

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.calls.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("boom")
        return [{label: (0.94 if label == "joy" else 0.01) for label in EMOTION_LABELS} for _ in texts]


def _record(offset: int, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord:
    return ConsumerRecord(
        topic="t.tweets.raw",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=headers or [],
    )


def _tweet_bytes(tweet_id: str, text: str = "great news") -> bytes:
    tweet = TweetRecord(
        id=tweet_id, author=Author(handle="a"), created_at=datetime(2024, 1, 1, tzinfo=UTC), text=text, source="s"
    )
    return tweet.model_dump_json().encode()


async def test_batch_is_classified_once_and_bad_messages_dead_lettered() -> None:
    classifier = FakeClassifier()
    handler = EmotionHandler(classifier, "t.tweets.labels")
    batch = [
        _record(0, _tweet_bytes("11")),
        _record(1, b"not json"),
        _record(2, _tweet_bytes("12"), headers=[("job-id", b"job-7")]),
    ]
    out = await handler(batch)
    assert len(classifier.calls) == 1 and len(classifier.calls[0]) == 2
    labels = [LabelEvent.model_validate_json(m.value) for m in out if m.topic == "t.tweets.labels"]
    assert [(e.tweet_id, e.label, e.job_id) for e in labels] == [("11", "joy", None), ("12", "joy", "job-7")]
    assert [m.key for m in out if m.topic == "t.tweets.labels"] == ["11", "12"]
    [dlq] = [m for m in out if m.topic == "t.tweets.raw.dlq"]
    letter = DeadLetter.model_validate_json(dlq.value)
    assert (letter.offset, letter.service, letter.reason) == (1, "emotion", "invalid_tweet:message")


async def test_failing_tweet_is_isolated_and_dead_lettered() -> None:
    handler = EmotionHandler(FakeClassifier(fail_on="poison"), "labels")
    out = await handler([_record(0, _tweet_bytes("1")), _record(1, _tweet_bytes("2", "poison"))])
    assert [m.key for m in out if m.topic == "labels"] == ["1"]
    [dlq] = [m for m in out if m.topic.endswith(".dlq")]
    assert json.loads(dlq.value)["reason"] == "inference_error"
