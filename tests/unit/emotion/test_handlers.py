from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from common.events import EMOTION_LABELS, Author, DeadLetter, LabelEvent, TweetRecord
from common.poison import UNHANDLED, FailurePolicy
from emotion.handlers import emotion_handler
from emotion.logic import FIXED_VALENCE_MAP, ClassifierSentiment, ValenceMap


class FakeClassifier:
    model_id = "fake/emotion"
    revision = "abc"

    def __init__(self, fail_on: str | None = None, rows: Sequence[dict[str, float]] = ()) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        self.rows = list(rows)  # the scores of the tweets in turn; default: joy, peaked

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.calls.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("boom")
        if self.rows:
            return [self.rows.pop(0) for _ in texts]
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
    handler = emotion_handler(classifier, "t.tweets.labels")
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


async def test_an_inference_failure_propagates_to_the_delivery_loop() -> None:
    """No per-tweet fallback in the handler: the loop decides between bisecting and retrying."""
    classifier = FakeClassifier(fail_on="poison")
    handler = emotion_handler(classifier, "labels")
    with pytest.raises(RuntimeError, match="boom"):
        await handler([_record(0, _tweet_bytes("1")), _record(1, _tweet_bytes("2", "poison"))])
    assert len(classifier.calls) == 1  # one batched call, no tweet-by-tweet retry here


async def test_the_loops_bisection_dead_letters_only_the_tweet_inference_fails_on() -> None:
    handler = emotion_handler(FakeClassifier(fail_on="poison"), "labels")
    batch = [_record(i, _tweet_bytes(str(i + 1), "poison" if i == 5 else "great news")) for i in range(8)]
    batch.append(_record(8, b"not json"))
    with pytest.raises(RuntimeError):
        await handler(batch)
    outgoing = await FailurePolicy(handler, "emotion").outputs(batch)
    labelled = sorted(m.key for m in outgoing if m.topic == "labels")
    assert labelled == sorted(str(i + 1) for i in range(8) if i != 5)
    letters = sorted(
        (DeadLetter.model_validate_json(m.value) for m in outgoing if m.topic.endswith(".dlq")),
        key=lambda letter: letter.offset,
    )
    assert [(d.offset, d.reason) for d in letters] == [(5, UNHANDLED), (8, "invalid_tweet:message")]  # once each
    assert "boom" in letters[0].detail


async def test_each_event_names_the_top_emotion_of_normalised_scores_and_keeps_64_bit_ids_exact() -> None:
    rows = [
        {label: (0.4 if label == "fear" else 0.1) for label in EMOTION_LABELS},  # sums to 1.0
        {"joy": 3.0, "anger": 1.0},  # unnormalised, five labels missing
    ]
    handler = emotion_handler(FakeClassifier(rows=rows), "labels")
    out = await handler([
        _record(0, _tweet_bytes("9223372036854775807")),
        _record(1, _tweet_bytes("18014398509481985"), headers=[("job-id", b"job-1")]),
    ])
    fear, joy = (LabelEvent.model_validate_json(m.value) for m in out)
    assert [(e.tweet_id, e.task, e.label, e.job_id) for e in (fear, joy)] == [
        ("9223372036854775807", "emotion", "fear", None), ("18014398509481985", "emotion", "joy", "job-1")
    ]
    assert list(joy.scores) == list(EMOTION_LABELS) and joy.scores["joy"] == 0.75 and joy.scores["fear"] == 0.0
    assert (joy.score, joy.model, joy.model_revision) == (0.75, "fake/emotion", "abc")
    assert joy.valence == FIXED_VALENCE_MAP.valence(joy.scores) == 0.5
    assert '"tweet_id":"9223372036854775807"' in out[0].value.decode()


async def test_events_carry_the_valence_of_the_classifiers_own_map() -> None:
    coef = tuple((0.0, 0.0, 1.0) if label == "joy" else (1.0, 0.0, 0.0) for label in EMOTION_LABELS)
    classifier = FakeClassifier()
    classifier.valence_map = ValenceMap(name="fitted", coef=coef)  # type: ignore[attr-defined]
    [message] = await emotion_handler(classifier, "labels")([_record(0, _tweet_bytes("1"))])
    event = LabelEvent.model_validate_json(message.value)
    assert event.valence == classifier.valence_map.valence(event.scores)  # type: ignore[attr-defined]
    assert event.valence != FIXED_VALENCE_MAP.valence(event.scores)


async def test_events_carry_the_valence_the_classifier_predicted_itself_not_one_from_the_scores() -> None:
    """A classifier with a sentiment block puts its own three probabilities in each row; the
    event's valence is P(positive) - P(negative) from them, even where the scores say joy."""
    row = {label: (0.94 if label == "joy" else 0.01) for label in EMOTION_LABELS}
    row |= {"sentiment:negative": 0.7, "sentiment:neutral": 0.2, "sentiment:positive": 0.1}
    classifier = FakeClassifier(rows=[row])
    classifier.valence_map = ClassifierSentiment(name="sentiment-block:fake")  # type: ignore[attr-defined]
    [message] = await emotion_handler(classifier, "labels")([_record(0, _tweet_bytes("1"))])
    event = LabelEvent.model_validate_json(message.value)
    assert event.label == "joy" and list(event.scores) == list(EMOTION_LABELS)  # the sentiment keys stay out
    assert event.valence == pytest.approx(-0.6)
