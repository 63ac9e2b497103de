"""The trained head's pure numpy parts: fitting, probabilities, the saved file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.events import STANCE_LABELS
from stance.head import LinearHead, fit_softmax_regression


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
    loaded = LinearHead.load(path)
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
    LinearHead(head.mean, head.scale, head.weights, head.bias, ("A", "B", "C")).save(path)
    with pytest.raises(ValueError, match="labels"):
        LinearHead.load(path)
