"""The quality rules as pure functions, and the lexicon."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.quality import RULES_VERSION, QualityThresholds, VaderLexicon, document_quality, has_label, polarity

T = QualityThresholds()


def source(
    *, compound: float | None = None, emotion: dict[str, Any] | None = None, stance: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "1", "text": "x"}
    if compound is not None:
        doc["lexicon"] = {"compound": compound, "model": "vader"}
    if emotion is not None:
        doc["emotion"] = emotion
    if stance is not None:
        doc["stance"] = stance
    return doc


def test_polarity_has_a_neutral_band() -> None:
    assert [polarity(v, 0.05) for v in (-0.5, -0.05, -0.01, 0.0, 0.049, 0.05, 0.9)] == [
        "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive",
    ]  # fmt: skip
    assert polarity(None, 0.05) is None


def test_opposite_lexicon_and_valence_polarities_are_flagged() -> None:
    quality = document_quality(source(compound=-0.7, emotion={"label": "joy", "score": 0.9, "valence": 0.8}), T)
    assert quality["flags"] == ["lexicon_disagrees"]
    assert (quality["lexicon_polarity"], quality["model_polarity"], quality["lexicon_agrees"]) == (
        "negative", "positive", False,
    )  # fmt: skip
    assert quality["rules"] == RULES_VERSION


def test_a_neutral_side_is_a_disagreement_but_not_a_flag() -> None:
    quality = document_quality(source(compound=0.0, emotion={"label": "joy", "score": 0.9, "valence": 0.8}), T)
    assert quality["flags"] == []
    assert quality["lexicon_agrees"] is False


def test_agreement_is_unknown_until_both_the_tweet_and_the_emotion_are_there() -> None:
    assert document_quality(source(compound=0.5), T)["lexicon_agrees"] is None
    assert document_quality(source(emotion={"label": "joy", "score": 0.9, "valence": 0.5}), T)["lexicon_agrees"] is None
    assert document_quality(source(), T) == {
        "rules": RULES_VERSION, "flags": [], "lexicon_polarity": None, "model_polarity": None, "lexicon_agrees": None,
    }  # fmt: skip


def test_low_confidence_is_a_score_below_each_tasks_threshold() -> None:
    t = QualityThresholds(emotion_min_score=0.6, stance_min_score=0.4)
    low = document_quality(
        source(emotion={"label": "fear", "score": 0.59}, stance={"label": "OPPOSE", "score": 0.39}), t
    )
    assert low["flags"] == ["low_confidence_emotion", "low_confidence_stance"]
    at_threshold = document_quality(
        source(emotion={"label": "fear", "score": 0.6}, stance={"label": "OPPOSE", "score": 0.4}), t
    )
    assert at_threshold["flags"] == []


@pytest.mark.parametrize(
    ("emotion", "stance", "conflict"),
    [("joy", "OPPOSE", True), ("anger", "SUPPORT", True), ("disgust", "SUPPORT", True),
     ("joy", "SUPPORT", False), ("anger", "OPPOSE", False), ("sadness", "SUPPORT", False), ("joy", "NEUTRAL", False)],
)  # fmt: skip
def test_emotion_stance_conflict_pairs(emotion: str, stance: str, conflict: bool) -> None:
    quality = document_quality(
        source(emotion={"label": emotion, "score": 0.9}, stance={"label": stance, "score": 0.9}), T
    )
    assert ("emotion_stance_conflict" in quality["flags"]) is conflict


def test_a_conflict_needs_both_labels_confident() -> None:
    doc = source(emotion={"label": "joy", "score": 0.3}, stance={"label": "OPPOSE", "score": 0.9})
    assert "emotion_stance_conflict" not in document_quality(doc, T)["flags"]


def test_vader_scores_polarity_of_plain_tweets() -> None:
    positive, negative, neutral = VaderLexicon().compounds(
        ["I love this, what a great day!", "This is awful and I hate it.", "The meeting is on Tuesday."]
    )
    assert positive > 0.5 and negative < -0.5 and neutral == 0.0


def test_only_a_labelled_document_is_judged() -> None:
    assert not has_label(source(compound=0.5))
    assert has_label(source(stance={"label": "NEUTRAL", "score": 0.9}))
    assert not has_label(source(emotion={"label": None}))
