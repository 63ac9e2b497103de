"""The trained head's pure numpy parts: fitting, probabilities, the saved file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.events import STANCE_LABELS
from stance.head import StanceHead
from training.stance_probe import fit_logit_map, fit_softmax_regression, fold_hidden, logit_ids, recover_hidden


def separable(n_per_label: int = 20) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    centres = np.eye(3, 8) * 4.0
    rows = [centres[i] + rng.normal(0, 0.5, size=8) for i in range(3) for _ in range(n_per_label)]
    labels = [label for label in STANCE_LABELS for _ in range(n_per_label)]
    return np.array(rows), labels


def test_a_fitted_head_separates_separable_classes_with_distributions_summing_to_one() -> None:
    features, labels = separable()
    head = fit_softmax_regression(features, labels, l2=0.01, meta={"version": "t"})
    probs = head.probabilities(features)
    assert probs.shape == (60, 3)
    assert np.allclose(probs.sum(axis=1), 1.0)
    predicted = [head.labels[i] for i in probs.argmax(axis=1)]
    assert predicted == labels


def test_balanced_weighting_keeps_a_minority_label_predicted() -> None:
    features, labels = separable()
    keep = [i for i, label in enumerate(labels) if label != "NEUTRAL" or i % 10 == 0]  # 2 NEUTRAL of 42
    head = fit_softmax_regression(features[keep], [labels[i] for i in keep], l2=0.1, steps=300)
    neutral_rows = features[[i for i, label in enumerate(labels) if label == "NEUTRAL"]]
    predicted = [head.labels[i] for i in head.probabilities(neutral_rows).argmax(axis=1)]
    assert predicted.count("NEUTRAL") == len(predicted)


def test_saved_head_loads_with_the_same_probabilities_and_meta(tmp_path: Path) -> None:
    features, labels = separable()
    head = fit_softmax_regression(features, labels, l2=0.01, meta={"version": "t", "model": "m.gguf"})
    path = tmp_path / "head.npz"
    head.save(path)
    loaded = StanceHead.load(path)
    assert loaded.meta == {"version": "t", "model": "m.gguf"}
    assert np.allclose(loaded.probabilities(features), head.probabilities(features), atol=1e-5)


def test_wrong_feature_count_is_refused() -> None:
    features, labels = separable()
    head = fit_softmax_regression(features, labels, l2=0.01)
    with pytest.raises(ValueError, match="expects 8 features"):
        head.probabilities(features[:, :5])


def test_a_head_for_other_labels_is_refused(tmp_path: Path) -> None:
    features, labels = separable()
    head = fit_softmax_regression(features, labels, l2=0.01)
    path = tmp_path / "other.npz"
    StanceHead(head.mean, head.scale, head.weights, head.bias, ("A", "B", "C")).save(path)
    with pytest.raises(ValueError, match="labels"):
        StanceHead.load(path)


def test_a_folded_head_gives_on_logits_what_the_head_gives_on_the_recovered_hidden_state(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    hidden_size, ids = 8, logit_ids(n_vocab=1000, count=12)
    logit_map = rng.normal(size=(len(ids), hidden_size))  # the tied lm_head's rows at ``ids``
    hidden = rng.normal(size=(40, hidden_size)) * 3.0 + 1.0
    extra = rng.normal(size=(40, 3))  # the label log-probs ride along unchanged
    labels = [STANCE_LABELS[i % 3] for i in range(40)]
    head = fit_softmax_regression(np.hstack([hidden, extra]), labels, l2=0.01, meta={"version": "t"})
    folded = fold_hidden(head, ids, logit_map, {"version": "t2"})
    logits = hidden @ logit_map.T
    assert np.allclose(recover_hidden(logit_map, logits), hidden)
    expected = head.probabilities(np.hstack([hidden, extra]))
    assert np.allclose(folded.probabilities(np.hstack([logits, extra])), expected, atol=1e-9)
    folded.save(tmp_path / "folded.npz")
    loaded = StanceHead.load(tmp_path / "folded.npz")
    assert loaded.logit_ids is not None and loaded.logit_ids.tolist() == ids.tolist()
    assert np.allclose(loaded.probabilities(np.hstack([logits, extra])), expected, atol=1e-4)


def test_the_logit_map_is_recovered_from_calibration_rows_despite_rounding() -> None:
    rng = np.random.default_rng(5)
    true_map = rng.normal(size=(20, 6))
    hidden = rng.normal(size=(200, 6))
    logits = np.round(hidden, 2) @ true_map.T  # llama.cpp rounds the activations (8 bits) in the matmul
    assert np.allclose(fit_logit_map(hidden, logits), true_map, atol=0.01)


def test_logit_ids_are_distinct_and_in_the_vocabulary() -> None:
    ids = logit_ids(n_vocab=262_144, count=1024)
    assert len(ids) == 1024 == len(set(ids.tolist())) and ids.min() == 0 and ids.max() == 262_143
