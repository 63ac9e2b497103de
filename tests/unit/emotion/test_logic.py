from __future__ import annotations

import pytest

from common.events import EMOTION_LABELS
from emotion.logic import length_buckets, normalise_scores, valence


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
