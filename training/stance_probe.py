"""Fitting and folding the stance probe head (``stance.head.StanceHead``): what the trainer and
the tests need, and the stance service never runs.

A folded head reads the logits of one decode at a set of token ids instead of the hidden state:
``logit_ids`` picks the ids, ``fit_logit_map`` regresses the logits on the hidden state over
calibration rows, ``fold_hidden`` rewrites a hidden-state head onto the logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.events import STANCE_LABELS
from common.linear_head import softmax_rows
from stance.head import StanceHead

Array = np.ndarray


def logit_ids(n_vocab: int, count: int) -> Array:
    """``count`` token ids spread evenly over the vocabulary: rows of the tied lm_head whose
    logits determine the hidden state (any ``count`` >= hidden size of them span it)."""
    return np.unique(np.linspace(0, n_vocab - 1, count).round().astype(np.int64))


def fit_logit_map(hidden: Array, logits: Array) -> Array:
    """``W_sub`` (ids x hidden size) with ``logits ≈ hidden @ W_sub.T``, by least squares over
    calibration rows; llama.cpp quantises the activations to 8 bits inside the matmul, so the
    fit is close, not exact."""
    solution, *_ = np.linalg.lstsq(np.asarray(hidden, np.float64), np.asarray(logits, np.float64), rcond=None)
    return np.asarray(solution.T)


def recover_hidden(logit_map: Array, logits: Array) -> Array:
    """Hidden states (rows) from logits at the map's ids: the least-squares inverse of the map."""
    return np.asarray(np.atleast_2d(logits) @ np.linalg.pinv(logit_map).T)


def fold_hidden(head: StanceHead, ids: Array, logit_map: Array, meta: dict[str, Any]) -> StanceHead:
    """The same head over [logits at ``ids``, the rest] instead of [hidden state, the rest].

    With ``h = P @ l`` (``P = pinv(logit_map)``) the standardised hidden block contributes
    ``((P l - mean_h) / scale_h) @ A = l @ (P.T @ (A / scale_h)) - (mean_h / scale_h) @ A``,
    so the folded head's logit columns carry no centring (mean 0, scale 1) and the constant
    moves into the bias. Exact algebra: it gives what the hidden-state head gives on ``P @ l``.
    """
    size = int(logit_map.shape[1])
    a = head.weights[:size] / head.scale[:size, None]
    weights = np.vstack([np.linalg.pinv(logit_map).T @ a, head.weights[size:]])
    bias = head.bias - (head.mean[:size] / head.scale[:size]) @ head.weights[:size]
    mean = np.concatenate([np.zeros(len(ids)), head.mean[size:]])
    scale = np.concatenate([np.ones(len(ids)), head.scale[size:]])
    return StanceHead(mean, scale, weights, bias, head.labels, meta, np.asarray(ids, np.int64))


def fit_softmax_regression(
    features: Array,
    labels: list[str],
    *,
    l2: float,
    steps: int = 500,
    learning_rate: float = 0.5,
    balanced: bool = True,
    meta: dict[str, Any] | None = None,
) -> StanceHead:
    """Full-batch gradient descent on the L2-regularised, optionally class-balanced log loss.

    Features are standardised first (the mean and scale are part of the head). Deterministic:
    the weights start at zero and the loss is convex, so the same data gives the same head.
    """
    x = np.asarray(features, dtype=np.float64)
    index = {label: i for i, label in enumerate(STANCE_LABELS)}
    y = np.zeros((len(labels), len(STANCE_LABELS)))
    y[np.arange(len(labels)), [index[label] for label in labels]] = 1.0
    counts = y.sum(axis=0)
    if balanced:
        sample_weight = (y @ (len(labels) / (len(STANCE_LABELS) * np.maximum(counts, 1.0))))[:, None]
    else:
        sample_weight = np.ones((len(labels), 1))
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    weights = np.zeros((x.shape[1], len(STANCE_LABELS)))
    bias = np.zeros(len(STANCE_LABELS))
    n = len(labels)
    for _ in range(steps):
        error = (softmax_rows(z @ weights + bias) - y) * sample_weight
        weights -= learning_rate * (z.T @ error / n + l2 * weights)
        bias -= learning_rate * error.mean(axis=0)
    return StanceHead(mean, scale, weights, bias, STANCE_LABELS, dict(meta or {}))
