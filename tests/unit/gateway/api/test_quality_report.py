"""The GET /quality report as pure functions: drift, agreement, rates; no server."""

from __future__ import annotations

import pytest

from gateway.api.quality_report import QualityCounts, build_report, js_divergence, label_agreement, model_drift
from gateway.quality import FLAGS, QualityThresholds

T = QualityThresholds()


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
