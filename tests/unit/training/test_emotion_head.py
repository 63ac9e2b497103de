"""The trainer's pure pieces: the fit, the temperature, the benchmark metrics, the valence map fit."""

from __future__ import annotations

import numpy as np
import pytest

from common.events import EMOTION_LABELS
from common.linear_head import softmax_rows
from training.emotion_head import (
    SENTIMENT_BLOCK_L2,
    Split,
    fit_sentiment_block,
    fit_valence_map,
    goemotions_report,
    sentiment_figures,
    tweeteval_report,
)
from training.linear import (
    expected_calibration_error,
    fit_softmax,
    fit_temperature,
    multilabel_f1,
    one_hot,
    stratified_folds,
)

IDX = {label: i for i, label in enumerate(EMOTION_LABELS)}


def _clusters(n_per: int = 40, k: int = 3, d: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (k, d))
    labels = np.repeat(np.arange(k), n_per)
    return centres[labels] + rng.normal(0, 0.5, (len(labels), d)), labels


def test_fit_recovers_a_separable_labelling() -> None:
    x, y = _clusters()
    fit = fit_softmax(x, one_hot(y, 3).astype(float), l2=1e-3, steps=300)
    assert (fit.probabilities(x).argmax(axis=1) == y).all()
    assert fit.weights.shape == (5, 3)


def test_fit_with_soft_targets_and_weights_is_deterministic() -> None:
    x, y = _clusters(k=2)
    soft = one_hot(y, 2).astype(float) * 0.8 + 0.1
    weight = np.where(y == 0, 3.0, 1.0)
    a = fit_softmax(x, soft, l2=1e-2, sample_weight=weight, steps=100)
    b = fit_softmax(x, soft, l2=1e-2, sample_weight=weight, steps=100)
    assert np.array_equal(a.weights, b.weights)
    assert (a.probabilities(x).argmax(axis=1) == y).all()
    # soft targets of 0.9 keep the probabilities away from certainty
    assert a.probabilities(x).max() < 0.99


def test_fit_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError):
        fit_softmax(np.zeros((3, 2)), np.zeros((4, 2)), l2=0.1)


def test_temperature_recovers_the_scale_the_labels_were_drawn_at() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    drawn = [rng.choice(7, p=p) for p in softmax_rows(logits / 2.0)]
    assert fit_temperature(logits, one_hot(drawn, 7)) == pytest.approx(2.0, rel=0.1)


def test_temperature_counts_any_gold_label_of_a_row_as_right() -> None:
    logits = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    both = np.array([[True, True, False], [True, True, False]])
    # every row's top label is gold: the fit sharpens rather than flattens
    assert fit_temperature(logits, both) < 0.1


def test_multilabel_f1_counts_tp_fp_fn_per_class() -> None:
    predicted = one_hot([0, 1, 1], 3)
    gold = np.array([[1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=bool)
    # class 0: TP 1; class 1: TP 1, FP 1, FN 1; class 2: FN 1
    assert multilabel_f1(predicted, gold) == pytest.approx([1.0, 0.5, 0.0])


def _split(labels: list[list[str]]) -> Split:
    gold = np.array([[e in row for e in EMOTION_LABELS] for row in labels], dtype=bool)
    return Split("t", ["x"] * len(labels), gold / gold.sum(axis=1, keepdims=True), gold)


def _probs(tops: list[str]) -> np.ndarray:
    out = np.full((len(tops), 7), 0.05)
    for n, label in enumerate(tops):
        out[n, IDX[label]] = 0.7
    return out


def test_goemotions_report_scores_argmax_against_the_label_set() -> None:
    split = _split([["joy", "surprise"], ["anger"], ["neutral"]])
    report = goemotions_report(_probs(["surprise", "anger", "joy"]), split)
    assert report["f1"]["surprise"] == 1.0 and report["f1"]["anger"] == 1.0
    assert report["f1"]["joy"] == 0.0 and report["f1"]["neutral"] == 0.0
    assert report["macro_f1"] == pytest.approx(2 / 7, abs=1e-4)
    assert report["gold_share"]["joy"] == pytest.approx(1 / 6, abs=1e-3)


def test_tweeteval_report_restricts_the_argmax_to_three_classes() -> None:
    split = _split([["anger"], ["joy"], ["sadness"]])
    probs = _probs(["neutral", "joy", "sadness"])
    probs[0, IDX["anger"]] = 0.2  # neutral wins overall, anger wins among the three
    report = tweeteval_report(probs, split)
    assert report["macro_f1"] == 1.0
    assert set(report["f1"]) == {"anger", "joy", "sadness"}


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    assert expected_calibration_error(np.array([0.75] * 4), np.array([1, 1, 1, 0])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([0, 0])) == pytest.approx(1.0)


def test_stratified_folds_partition_the_rows() -> None:
    labels = [0] * 10 + [1] * 5 + [2] * 7
    folds = stratified_folds(labels, 5)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(labels)))
    assert all(len(f) >= 4 for f in folds)


def _sentiment_rows(seed: int = 0) -> tuple[list[dict[str, float]], np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = np.repeat([0, 1, 2], 30)
    top = {0: "anger", 1: "neutral", 2: "joy"}
    rows = []
    for g in gold:
        p = rng.dirichlet(np.ones(7)) * 0.3
        p[IDX[top[int(g)]]] += 0.7
        rows.append({e: float(v) for e, v in zip(EMOTION_LABELS, p / p.sum(), strict=True)})
    return rows, gold


def test_valence_map_fit_recovers_a_separable_sentiment() -> None:
    rows, gold = _sentiment_rows()
    mapping = fit_valence_map(rows, gold, name="t", meta={"model": "m"})
    assert [("negative", "neutral", "positive").index(mapping.sentiment(r)[0]) for r in rows] == gold.tolist()
    assert all(-1 <= mapping.valence(r) <= 1 for r in rows)
    mapping_again, figures = sentiment_figures(rows, gold, "m", folds=3)
    assert figures["fitted_cv"]["macro_recall"] > 0.9
    assert mapping_again.meta["model"] == "m"


def test_sentiment_block_is_scored_by_nested_cv_and_shipped_refitted_on_every_row() -> None:
    x, gold = _clusters(n_per=30, k=3, d=6)
    block, figures = fit_sentiment_block(x, gold, {"model": "m"}, folds=3)
    nested = figures["nested_cv"]
    assert nested["macro_recall"] > 0.9 and nested["folds"] == 3
    assert min(nested["f1"].values()) > 0.9 and 0 <= nested["ece"] < 0.2  # separable: held out, right and sure
    assert len(nested["l2_chosen_per_fold"]) == 3
    assert set(nested["l2_chosen_per_fold"]) <= set(SENTIMENT_BLOCK_L2)
    assert block.labels == ("negative", "neutral", "positive") and block.weights.shape == (6, 3)
    assert (block.probabilities(x).argmax(axis=1) == gold).all()
    assert block.meta["model"] == "m" and block.meta["cv_macro_recall"] == nested["macro_recall"]
    assert block.meta["l2"] == figures["l2"] in SENTIMENT_BLOCK_L2


def test_sentiment_block_nested_figure_is_chance_on_labels_unrelated_to_the_features() -> None:
    """The nested figure must not be able to pick its way to a good score on noise."""
    rng = np.random.default_rng(3)
    x, gold = rng.normal(size=(300, 8)), np.repeat(np.arange(3), 100)
    _, figures = fit_sentiment_block(x, rng.permutation(gold), {}, folds=3)
    assert figures["nested_cv"]["macro_recall"] < 0.45
