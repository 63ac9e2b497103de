"""Pure numpy pieces of the trainers: softmax regression, temperature scaling, the metrics.

No I/O, no randomness beyond an explicit seed: the same data gives the same fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.linear_head import LinearHead, softmax_rows

Array = np.ndarray


def fit_softmax(
    features: Array,
    targets: Array,
    *,
    l2: float,
    sample_weight: Array | None = None,
    penalty: Array | None = None,
    steps: int = 400,
    seed: int = 0,
) -> LinearHead:
    """Multinomial logistic regression with soft targets (rows of ``targets`` sum to 1).

    Minimises ``Σ w_i · CE(softmax(z_i W + b), t_i) / Σ w + l2/2 · |W|²`` on standardised
    features ``z`` by Nesterov-accelerated gradient descent with step 1/L, where L bounds the
    loss's curvature (half the top eigenvalue of the weighted covariance of [z, 1], by power
    iteration, plus l2). Convex, started at zero: deterministic. ``penalty`` (one factor per
    feature, default 1) multiplies l2 feature by feature: a block with factor 4 is regularised
    like that block scaled by 1/2 after standardising.
    """
    x = np.asarray(features, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or t.ndim != 2 or len(x) != len(t) or not len(x):
        raise ValueError(f"features {x.shape} and targets {t.shape} must be non-empty matrices with equal rows")
    w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w = w / w.sum()
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = ((x - mean) / scale).astype(np.float32)
    del x
    l2_per_feature = l2 * (np.ones(z.shape[1]) if penalty is None else np.asarray(penalty, np.float64))[:, None]
    lipschitz = 0.5 * _top_eigenvalue(z, w, seed) + float(l2_per_feature.max())
    step = 1.0 / lipschitz
    k = t.shape[1]
    weights = np.zeros((z.shape[1], k))
    bias = np.zeros(k)
    look_w, look_b, momentum = weights.copy(), bias.copy(), 1.0
    wt = w[:, None]
    for _ in range(steps):
        error = (softmax_rows(z @ look_w.astype(np.float32) + look_b) - t) * wt
        grad_w = (z.T @ error.astype(np.float32)).astype(np.float64) + l2_per_feature * look_w
        new_w = look_w - step * grad_w
        new_b = look_b - step * error.sum(axis=0)
        next_momentum = (1 + np.sqrt(1 + 4 * momentum**2)) / 2
        blend = (momentum - 1) / next_momentum
        look_w = new_w + blend * (new_w - weights)
        look_b = new_b + blend * (new_b - bias)
        weights, bias, momentum = new_w, new_b, next_momentum
    return LinearHead(mean, scale, weights, bias)


def _top_eigenvalue(z: Array, w: Array, seed: int, rounds: int = 30) -> float:
    """Largest eigenvalue of ``Σ w_i [z_i, 1][z_i, 1]ᵀ``."""
    v = np.random.default_rng(seed).standard_normal(z.shape[1] + 1)
    value = 1.0
    for _ in range(rounds):
        v /= np.linalg.norm(v)
        zv = z @ v[:-1].astype(np.float32) + v[-1]
        weighted = w * zv
        nv = np.concatenate([(z.T @ weighted.astype(np.float32)).astype(np.float64), [weighted.sum()]])
        value = float(np.linalg.norm(nv))
        v = nv
    return value * 1.05  # power iteration approaches from below


def fit_temperature(logits: Array, gold: Array) -> float:
    """The T > 0 maximising the mean log-probability that ``softmax(logits / T)`` gives to each
    row's gold label set (``gold``: rows by classes, bool). For one gold label per row this is
    the cross-entropy; for several it is the likelihood of "the label is one of these", the event
    whose frequency top-label calibration is measured against."""
    mask = np.asarray(gold, dtype=bool)
    z = np.asarray(logits, np.float64)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 601))
    losses = [-np.log(np.maximum((softmax_rows(z / t) * mask).sum(axis=1), 1e-300)).mean() for t in grid]
    return float(grid[int(np.argmin(losses))])


def cross_entropy(logits: Array, targets: Array) -> float:
    z = np.asarray(logits, np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return float(-(np.asarray(targets) * log_p).sum(axis=1).mean())


def multilabel_f1(predicted: Array, gold: Array) -> Array:
    """Per-class F1 of boolean matrices (rows by classes): TP predicted and gold, FP predicted
    and not gold, FN gold and not predicted; F1 = 2TP / (2TP + FP + FN), 0 without TP."""
    p = np.asarray(predicted, bool)
    g = np.asarray(gold, bool)
    tp = (p & g).sum(axis=0)
    fp = (p & ~g).sum(axis=0)
    fn = (~p & g).sum(axis=0)
    denominator = 2 * tp + fp + fn
    return np.where(tp > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def one_hot(indices: Sequence[int] | Array, k: int) -> Array:
    out = np.zeros((len(indices), k), dtype=bool)
    out[np.arange(len(indices)), np.asarray(indices, int)] = True
    return out


def recall_per_class(predicted: Array, gold: Array, k: int) -> Array:
    p = np.asarray(predicted, int)
    g = np.asarray(gold, int)
    return np.array([float(np.mean(p[g == c] == c)) if np.any(g == c) else 0.0 for c in range(k)])


def expected_calibration_error(confidence: Array, correct: Array, n_bins: int = 10) -> float:
    """Σ_b (n_b / N) · |accuracy_b - confidence_b| over equal-width bins (1.0 in the last bin),
    as ``evaluation.metrics`` computes it."""
    c = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, np.float64)
    bins = np.minimum((c * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            total += members.sum() / len(c) * abs(ok[members].mean() - c[members].mean())
    return float(total)


def stratified_folds(labels: Sequence[int] | Array, k: int, seed: int = 0) -> list[Array]:
    """``k`` disjoint index arrays covering every row, each class spread evenly over them."""
    y = np.asarray(labels, int)
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        for n, i in enumerate(members):
            folds[(n + offset) % k].append(int(i))
        offset += len(members)
    return [np.array(sorted(f), dtype=int) for f in folds]
