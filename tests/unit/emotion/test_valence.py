"""The valence map: fixed weights (the default) and a fitted map, as the service and evaluation use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from emotion.head import load_valence_map, save_valence_map
from emotion.logic import (
    FIXED_VALENCE_MAP,
    SENTIMENT_LABELS,
    ClassifierSentiment,
    ValenceMap,
    valence,
)


def _peaked(label: str, top: float = 0.88) -> dict[str, float]:
    rest = (1 - top) / (len(EMOTION_LABELS) - 1)
    return {e: (top if e == label else rest) for e in EMOTION_LABELS}


def _fitted() -> ValenceMap:
    """Joy's log-score pushes positive, anger's negative, neutral's neutral."""
    coef = {e: (0.0, 0.0, 0.0) for e in EMOTION_LABELS}
    coef["joy"] = (-1.0, 0.0, 2.0)
    coef["anger"] = (2.0, 0.0, -1.0)
    coef["neutral"] = (-0.5, 2.0, -0.5)
    return ValenceMap(
        name="fitted:test", coef=tuple(coef[e] for e in EMOTION_LABELS), intercept=(0.0, 0.1, 0.0), meta={"model": "m"}
    )


@pytest.mark.parametrize("mapping", [FIXED_VALENCE_MAP, _fitted()], ids=["fixed", "fitted"])
@pytest.mark.parametrize("label", EMOTION_LABELS)
def test_valence_lies_in_bounds_and_band_is_a_sentiment(mapping: ValenceMap, label: str) -> None:
    scores = _peaked(label)
    value = mapping.valence(scores)
    band, probs = mapping.sentiment(scores)
    assert -1.0 <= value <= 1.0
    assert band in SENTIMENT_LABELS
    assert sorted(probs) == sorted(SENTIMENT_LABELS)
    assert sum(probs.values()) == pytest.approx(1.0)


def test_fitted_map_orders_obvious_cases() -> None:
    mapping = _fitted()
    assert mapping.sentiment(_peaked("joy"))[0] == "positive"
    assert mapping.sentiment(_peaked("anger"))[0] == "negative"
    assert mapping.sentiment(_peaked("neutral"))[0] == "neutral"
    assert mapping.valence(_peaked("joy")) > 0 > mapping.valence(_peaked("anger"))
    probs = mapping.probabilities(_peaked("joy"))
    assert mapping.valence(_peaked("joy")) == pytest.approx(probs["positive"] - probs["negative"], abs=1e-6)


def test_fixed_map_keeps_the_old_valence_and_its_band() -> None:
    scores = {"joy": 0.6, "anger": 0.1, "sadness": 0.1, "neutral": 0.1, "surprise": 0.1}
    assert FIXED_VALENCE_MAP.valence(scores) == valence(scores) == pytest.approx(0.4)
    assert FIXED_VALENCE_MAP.sentiment(scores)[0] == "positive"
    assert FIXED_VALENCE_MAP.sentiment({"neutral": 1.0})[0] == "neutral"
    assert FIXED_VALENCE_MAP.sentiment({"fear": 0.5, "neutral": 0.5})[0] == "negative"


def test_map_round_trips_through_its_dict_and_rejects_other_shapes() -> None:
    mapping = _fitted()
    again = ValenceMap.from_dict(json.loads(json.dumps(mapping.to_dict())))
    assert again == mapping and again.meta == mapping.meta
    with pytest.raises(ValueError):
        ValenceMap.from_dict({**mapping.to_dict(), "labels": ["joy", "anger"]})
    with pytest.raises(ValueError):
        ValenceMap(name="bad", coef=((1.0, 0.0, 0.0),))


def test_map_file_is_used_only_for_the_model_it_was_fitted_for(tmp_path: Path) -> None:
    path = tmp_path / "valence_transformers.json"
    save_valence_map(_fitted(), path)
    assert load_valence_map(path, "m") == _fitted()
    assert load_valence_map(path, "another/model") is None
    assert load_valence_map(tmp_path / "absent.json", "m") is None
    path.write_text("{not json")
    with pytest.raises(ModelUnavailableError, match="not a valid valence map"):
        load_valence_map(path, "m")


def test_classifier_sentiment_reads_the_rows_own_probabilities_not_the_scores() -> None:
    mapping = ClassifierSentiment(name="sentiment-block:m", meta={"cv_macro_recall": 0.64})
    row = {**_peaked("joy"), "sentiment:negative": 0.2, "sentiment:neutral": 0.5, "sentiment:positive": 0.3}
    assert mapping.fitted
    assert mapping.probabilities(row) == {"negative": 0.2, "neutral": 0.5, "positive": 0.3}
    assert mapping.valence(row) == pytest.approx(0.1)
    assert mapping.sentiment(row) == ("neutral", {"negative": 0.2, "neutral": 0.5, "positive": 0.3})


def test_classifier_sentiment_without_the_rows_probabilities_fails_naming_them() -> None:
    """Scores alone (another backend's, or normalised without the row) must not pass silently."""
    with pytest.raises(ValueError, match="sentiment:negative"):
        ClassifierSentiment(name="sentiment-block:m").valence(_peaked("joy"))
