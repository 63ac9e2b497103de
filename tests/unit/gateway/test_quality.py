"""The quality rules, drift and report as pure functions; the review form and gold rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.quality import (
    FLAGS,
    RULES_VERSION,
    QualityCounts,
    QualityThresholds,
    VaderLexicon,
    build_report,
    document_quality,
    js_divergence,
    label_agreement,
    model_drift,
    polarity,
)
from gateway.review import GOLD_HEADER, InvalidReview, ReviewForm, csv_lines, gold_row, review_doc

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


def test_js_divergence_is_zero_for_equal_one_for_disjoint_and_symmetric() -> None:
    p = {"a": 0.5, "b": 0.5, "c": 0.0}
    q = {"a": 0.1, "b": 0.2, "c": 0.7}
    assert js_divergence(p, p) == 0.0
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))
    assert 0 < js_divergence(p, q) < 1


def test_drift_judges_each_day_against_the_baseline_and_skips_small_days() -> None:
    labels = ("SUPPORT", "OPPOSE", "NEUTRAL")
    baseline = {"SUPPORT": 50, "OPPOSE": 30, "NEUTRAL": 20}
    days = {
        "2024-03-02": {"SUPPORT": 5, "OPPOSE": 3, "NEUTRAL": 2},  # same shape
        "2024-03-01": {"NEUTRAL": 40},  # all NEUTRAL: drifted
        "2024-03-03": {"OPPOSE": 2},  # too few to judge
    }
    drift = model_drift("stance", "m", labels, baseline, days, threshold=0.1, min_count=5)
    assert [d.day for d in drift.days] == ["2024-03-01", "2024-03-02", "2024-03-03"]  # in date order
    assert drift.baseline_count == 100 and drift.baseline == {"SUPPORT": 0.5, "OPPOSE": 0.3, "NEUTRAL": 0.2}
    first, second, third = drift.days
    assert first.drifted and first.jsd is not None and first.jsd > 0.1
    assert second.jsd == 0.0 and not second.drifted
    assert third.jsd is None and not third.drifted and third.count == 2


def test_label_agreement_compares_label_polarity_with_the_lexicon_and_skips_surprise() -> None:
    pairs = {("joy", "positive"): 3, ("joy", "negative"): 1, ("anger", "negative"): 2, ("surprise", "positive"): 9}
    assert label_agreement(pairs) == (5, 6)


def test_report_zero_fills_flags_and_computes_rates() -> None:
    counts = QualityCounts(
        documents=10,
        checked=9,
        flags={"lexicon_disagrees": 2},
        labelled={"emotion": {"m1": 8, "m2": 2}, "stance": {}},
        low={"emotion": {"m1": 2, "m2": 0}, "stance": {}},
        lexicon_agrees={True: 6, False: 2},
        label_vs_lexicon={("joy", "positive"): 4, ("anger", "positive"): 1},
        baseline={("emotion", "m1"): {"joy": 8}},
        days={("emotion", "m1"): {"2024-03-01": {"joy": 8}}},
        reviews={"corrected": 1},
    )
    report = build_report(counts, T, drift_threshold=0.1, min_count=5)
    assert report["flags"] == {flag: (2 if flag == "lexicon_disagrees" else 0) for flag in FLAGS}
    emotion = report["low_confidence"]["emotion"]
    assert (emotion["labelled"], emotion["low"], emotion["rate"]) == (10, 2, 0.2)
    assert emotion["by_model"]["m1"] == {"labelled": 8, "low": 2, "rate": 0.25}
    assert report["low_confidence"]["stance"]["rate"] is None  # nothing labelled: no rate
    assert (report["lexicon"]["agreement"], report["lexicon"]["label_agreement"]) == (0.75, 0.8)
    assert report["drift"][0]["days"][0]["jsd"] == 0.0
    assert report["reviews"] == {"corrected": 1}


def test_vader_scores_polarity_of_plain_tweets() -> None:
    positive, negative, neutral = VaderLexicon().compounds(
        ["I love this, what a great day!", "This is awful and I hate it.", "The meeting is on Tuesday."]
    )
    assert positive > 0.5 and negative < -0.5 and neutral == 0.0


AT = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_accept_confirms_the_labels_that_were_shown() -> None:
    form = ReviewForm("accept", shown_emotion="joy", shown_stance="SUPPORT", emotion="anger", reviewer=" ann ")
    doc = review_doc(form, at=AT)
    assert (doc["status"], doc["emotion"], doc["stance"], doc["reviewer"]) == ("accepted", "joy", "SUPPORT", "ann")
    assert doc["sentiment"] is None and doc["at"] == "2024-05-01T12:00:00+00:00"


def test_a_correction_replaces_the_labels_and_empty_means_no_label() -> None:
    form = ReviewForm("correct", "joy", "SUPPORT", emotion="anger", stance="", sentiment="negative")
    doc = review_doc(form, at=AT)
    assert (doc["status"], doc["emotion"], doc["stance"], doc["sentiment"]) == ("corrected", "anger", None, "negative")
    assert (doc["shown_emotion"], doc["shown_stance"], doc["reviewer"]) == ("joy", "SUPPORT", "anonymous")
    unchanged = review_doc(ReviewForm("correct", "joy", "SUPPORT", emotion="joy", stance="SUPPORT"), at=AT)
    assert unchanged["status"] == "accepted"


@pytest.mark.parametrize("field", ["emotion", "stance", "sentiment", "shown_emotion"])
def test_labels_outside_the_label_sets_are_refused(field: str) -> None:
    with pytest.raises(InvalidReview):
        review_doc(ReviewForm("correct", **{field: "SUPPORTIVE"}), at=AT)


def test_gold_rows_round_trip_through_csv_with_awkward_text() -> None:
    text = 'He said "no", then left,\nfor good'
    rows = [list(GOLD_HEADER)]
    rows.append(gold_row({"id": "9223372036854775807", "text": text, "review": {"emotion": "anger", "stance": None}}))
    parsed = list(csv.reader(io.StringIO(csv_lines(rows))))
    assert parsed == [list(GOLD_HEADER), ["9223372036854775807", text, "anger", "", ""]]
