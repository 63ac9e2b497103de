"""Metrics on cases small enough to compute by hand."""

from __future__ import annotations

import pytest

from evaluation.metrics import (
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_scores,
    reliability_bins,
    task_report,
)

LABELS = ["SUPPORT", "OPPOSE", "NEUTRAL"]
GOLD = ["SUPPORT", "SUPPORT", "OPPOSE", "OPPOSE", "OPPOSE", "NEUTRAL"]
PRED = ["SUPPORT", "NEUTRAL", "OPPOSE", "OPPOSE", "SUPPORT", "NEUTRAL"]


def test_confusion_matrix_rows_are_gold_and_columns_predictions() -> None:
    assert confusion_matrix(GOLD, PRED, LABELS) == [
        [1, 0, 1],  # gold SUPPORT: 1 right, 1 called NEUTRAL
        [1, 2, 0],  # gold OPPOSE: 1 called SUPPORT, 2 right
        [0, 0, 1],
    ]


def test_accuracy_and_per_class_scores_match_hand_computation() -> None:
    assert accuracy(GOLD, PRED) == pytest.approx(4 / 6)
    scores = per_class_scores(confusion_matrix(GOLD, PRED, LABELS), LABELS)
    # SUPPORT: tp 1, predicted 2, gold 2 -> P 0.5, R 0.5; OPPOSE: P 2/2, R 2/3; NEUTRAL: P 1/2, R 1/1
    assert (scores["SUPPORT"].precision, scores["SUPPORT"].recall, scores["SUPPORT"].f1) == (0.5, 0.5, 0.5)
    assert scores["OPPOSE"].f1 == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert scores["NEUTRAL"].f1 == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert scores["OPPOSE"].support == 3


def test_macro_f1_counts_a_never_predicted_class_as_zero() -> None:
    gold = ["SUPPORT", "OPPOSE", "NEUTRAL", "NEUTRAL"]
    pred = ["NEUTRAL"] * 4
    matrix = confusion_matrix(gold, pred, LABELS)
    # NEUTRAL: P 2/4, R 1 -> F1 2/3; SUPPORT and OPPOSE: 0
    assert macro_f1(matrix, LABELS) == pytest.approx((2 / 3) / 3)


def test_perfect_predictions_score_one() -> None:
    matrix = confusion_matrix(GOLD, GOLD, LABELS)
    assert macro_f1(matrix, LABELS) == 1.0
    assert accuracy(GOLD, GOLD) == 1.0


def test_unknown_label_is_an_error_not_a_silent_miss() -> None:
    with pytest.raises(ValueError, match="FAVOR"):
        confusion_matrix(["FAVOR"], ["SUPPORT"], LABELS)
    with pytest.raises(ValueError, match="length"):
        accuracy(["SUPPORT"], [])


def test_ece_on_a_hand_computed_case() -> None:
    # bin [0.6, 0.7): confidences 0.6, 0.6, 0.6, 0.6 -> mean 0.6, 2 of 4 right -> gap 0.1
    # bin [0.9, 1.0]: confidences 0.9, 1.0 -> mean 0.95, both right -> gap 0.05
    confidence = [0.6, 0.6, 0.6, 0.6, 0.9, 1.0]
    correct = [True, True, False, False, True, True]
    bins = reliability_bins(confidence, correct, n_bins=10)
    assert [b.count for b in bins] == [0, 0, 0, 0, 0, 0, 4, 0, 0, 2]
    assert bins[6].accuracy == 0.5 and bins[6].confidence == pytest.approx(0.6)
    assert bins[9].confidence == pytest.approx(0.95)  # 1.0 falls in the last bin
    assert expected_calibration_error(bins) == pytest.approx(4 / 6 * 0.1 + 2 / 6 * 0.05)


def test_ece_is_zero_when_confidence_equals_accuracy_in_every_bin() -> None:
    bins = reliability_bins([0.75] * 4, [True, True, True, False], n_bins=4)
    assert expected_calibration_error(bins) == pytest.approx(0.0)


def test_ece_of_a_confidently_wrong_model_is_its_confidence() -> None:
    bins = reliability_bins([0.9, 0.9], [False, False], n_bins=10)
    assert expected_calibration_error(bins) == pytest.approx(0.9)


def test_confidence_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        reliability_bins([1.2], [True])


def test_task_report_bundles_figures_and_distributions() -> None:
    report = task_report("stance", "m · v1", LABELS, GOLD, PRED, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], n_bins=5)
    assert report.n == 6
    assert report.gold_distribution == {"SUPPORT": 2, "OPPOSE": 3, "NEUTRAL": 1}
    assert report.predicted_distribution == {"SUPPORT": 2, "OPPOSE": 2, "NEUTRAL": 2}
    assert report.ece is not None and len(report.reliability) == 5
    assert report.to_json()["per_class"]["OPPOSE"]["support"] == 3
    assert task_report("stance", "no confidences", LABELS, GOLD, PRED).ece is None
