"""The benchmarks' official metrics and gold mappings, on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from evaluation.benchmarks import (
    BenchItem,
    Prediction,
    f1_per_class,
    items_from_rows,
    max_share_gap,
    official_score,
    score_benchmark,
)
from evaluation.public_data import PublicDataError


def _p(**probs: float) -> Prediction:
    return Prediction(max(probs, key=probs.__getitem__), probs)


def test_stance_f_avg_is_the_mean_f1_of_favor_and_against_and_ignores_none() -> None:
    gold = [("SUPPORT",), ("SUPPORT",), ("OPPOSE",), ("NEUTRAL",)]
    predicted = ["SUPPORT", "OPPOSE", "OPPOSE", "OPPOSE"]
    # SUPPORT: tp 1, fn 1 -> 2/3; OPPOSE: tp 1, fp 2 -> 1/2; NEUTRAL's F1 of 0 does not count
    assert math.isclose(official_score("tweeteval-stance", gold, predicted), (2 / 3 + 1 / 2) / 2)
    assert math.isclose(official_score("annotated-stance", gold, predicted), (2 / 3 + 1 / 2 + 0) / 3)


def test_tweeteval_emotion_counts_optimism_as_joy_and_predicts_among_its_own_classes() -> None:
    rows = [{"text": "a", "label": "optimism"}, {"text": "b", "label": "anger"}, {"text": "c", "label": "sadness"}]
    items = items_from_rows("tweeteval-emotion", rows)
    assert [i.gold for i in items] == [("joy",), ("anger",), ("sadness",)]
    # the model's top label is neutral, which the benchmark does not have: joy is its best own class
    predictions = [_p(neutral=0.6, joy=0.3, anger=0.1), _p(anger=0.9, joy=0.1), _p(fear=0.7, sadness=0.2, joy=0.1)]
    result = score_benchmark("tweeteval-emotion", items, predictions)
    assert result["score"] == 1.0
    assert result["per_class_f1"] == {"anger": 1.0, "joy": 1.0, "sadness": 1.0}


def test_goemotions_gold_is_a_label_set_and_any_of_its_labels_is_a_hit() -> None:
    items = items_from_rows("goemotions", [{"id": "x", "text": "t", "labels": "joy surprise"}])
    assert items[0].gold == ("joy", "surprise")
    scores = f1_per_class([("joy", "surprise"), ("anger",)], ["surprise", "joy"], ("anger", "joy", "surprise"))
    # surprise: tp; joy: one fn (row 1) and one fp (row 2); anger: one fn
    assert scores == {"anger": 0.0, "joy": 0.0, "surprise": 1.0}
    with pytest.raises(PublicDataError, match="not Ekman"):
        items_from_rows("goemotions", [{"id": "x", "text": "t", "labels": "admiration"}])


def test_sentiment_is_scored_by_macro_recall() -> None:
    gold = [("negative",), ("neutral",), ("neutral",), ("positive",)]
    predicted = ["negative", "neutral", "positive", "positive"]
    assert math.isclose(official_score("tweeteval-sentiment", gold, predicted), (1 + 0.5 + 1) / 3)


def test_stance_items_name_the_target_as_the_prompt_does() -> None:
    rows = [{"target": "hillary", "text": "t", "label": "against"}, {"target": "climate", "text": "u", "label": "none"}]
    items = items_from_rows("tweeteval-stance", rows)
    assert [(i.target, i.gold) for i in items] == [
        ("Hillary Clinton", ("OPPOSE",)),
        ("the concern that climate change is a real problem", ("NEUTRAL",)),
    ]


def test_a_subset_is_scored_on_its_own_and_share_gaps_are_in_points() -> None:
    items = [
        BenchItem("a", ("SUPPORT",), subset=frozenset({"stance!=tone"})),
        BenchItem("b", ("OPPOSE",)),
        BenchItem("c", ("NEUTRAL",), subset=frozenset({"stance!=tone"})),
    ]
    predictions = [_p(SUPPORT=0.8, OPPOSE=0.1, NEUTRAL=0.1), _p(SUPPORT=0.1, OPPOSE=0.8, NEUTRAL=0.1),
                   _p(SUPPORT=0.7, OPPOSE=0.2, NEUTRAL=0.1)]
    result = score_benchmark("annotated-stance", items, predictions)
    subset = result["subset:stance!=tone"]
    assert isinstance(subset, dict) and subset["n"] == 2
    assert subset["predicted_share"] == {"SUPPORT": 1.0, "OPPOSE": 0.0, "NEUTRAL": 0.0}
    assert max_share_gap(result) == pytest.approx(33.3, abs=0.2)  # SUPPORT predicted 2/3, gold 1/3
