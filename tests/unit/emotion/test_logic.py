from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.events import EMOTION_LABELS, Author, LabelEvent, TweetRecord
from emotion.logic import build_label_event, length_buckets, normalise_scores, valence


def _tweet(tweet_id: str = "1850000000000000001", text: str = "hello") -> TweetRecord:
    return TweetRecord(
        id=tweet_id,
        author=Author(handle="ana"),
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        text=text,
        source="unit",
    )


def test_valence_is_positive_minus_negative_mass() -> None:
    scores = {"joy": 0.6, "anger": 0.1, "sadness": 0.1, "neutral": 0.1, "surprise": 0.1}
    assert valence(scores) == pytest.approx(0.6 - 0.2)


@pytest.mark.parametrize(
    ("label", "expected"), [("joy", 1.0), ("anger", -1.0), ("fear", -1.0), ("neutral", 0.0), ("surprise", 0.0)]
)
def test_valence_bounds_for_certain_predictions(label: str, expected: float) -> None:
    assert valence({label: 1.0}) == expected


def test_normalise_scores_covers_all_labels_and_sums_to_one() -> None:
    probs = normalise_scores({"joy": 2.0, "anger": 2.0})
    assert list(probs) == list(EMOTION_LABELS)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["fear"] == 0.0


def test_build_label_event_picks_argmax_and_keeps_ids_exact() -> None:
    tweets = [_tweet("9223372036854775807"), _tweet("18014398509481985")]
    rows = [
        {label: (0.4 if label == "fear" else 0.1) for label in EMOTION_LABELS},
        {label: (0.7 if label == "joy" else 0.05) for label in EMOTION_LABELS},
    ]
    events = [
        build_label_event(tweet, row, model="m", revision="r", job_id=job, trace_id=None)
        for tweet, row, job in zip(tweets, rows, [None, "job-1"], strict=True)
    ]
    assert [e.tweet_id for e in events] == ["9223372036854775807", "18014398509481985"]
    assert [e.label for e in events] == ["fear", "joy"]
    assert events[1].job_id == "job-1"
    assert events[1].valence is not None and events[1].valence > 0
    roundtrip = LabelEvent.model_validate_json(events[0].model_dump_json())
    assert roundtrip == events[0]
    assert '"tweet_id":"9223372036854775807"' in events[0].model_dump_json()


def test_length_buckets_cover_every_index_once_sorted_by_length() -> None:
    lengths = [30, 5, 12, 5, 60, 7, 30, 9]
    buckets = length_buckets(lengths, max_rows=3, max_tokens=10_000)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 3 for b in buckets)
    flat = [lengths[i] for b in buckets for i in b]
    assert flat == sorted(lengths)


def test_length_buckets_respect_the_padded_token_budget() -> None:
    lengths = [10, 10, 10, 40, 40, 200]
    buckets = length_buckets(lengths, max_rows=64, max_tokens=80)
    for bucket in buckets:
        assert len(bucket) * max(lengths[i] for i in bucket) <= 80 or len(bucket) == 1
    assert [5] in buckets  # longer than the budget on its own: still classified, alone


def test_length_buckets_of_nothing_is_empty() -> None:
    assert length_buckets([], max_rows=8, max_tokens=100) == []
