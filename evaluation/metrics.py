"""Pure classification metrics: accuracy, per-class and macro F1, the confusion matrix,
calibration (expected calibration error and the reliability-diagram bins). No I/O here.

Conventions: confusion-matrix rows are the gold labels and columns the predictions, both in
the order of ``labels``. Macro-F1 averages the F1 of every label in ``labels``, so a class the
model never predicts counts as 0 instead of disappearing from the average.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int  # gold count


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    confidence: float  # mean confidence of the predictions in the bin (0 when empty)
    accuracy: float  # fraction of them that are right (0 when empty)


@dataclass(frozen=True)
class TaskReport:
    """Every figure for one task and one model/prompt/method, ready to serialise."""

    task: str
    run: str
    labels: list[str]
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    gold_distribution: dict[str, int]
    predicted_distribution: dict[str, int]
    ece: float | None = None
    reliability: list[CalibrationBin] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    _same_length(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0


def confusion_matrix(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """``m[i][j]`` = tweets whose gold is ``labels[i]`` and prediction ``labels[j]``."""
    _same_length(gold, predicted)
    index = {label: i for i, label in enumerate(labels)}
    unknown = {x for x in (*gold, *predicted) if x not in index}
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not in {list(labels)}")
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g]][index[p]] += 1
    return matrix


def per_class_scores(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> dict[str, ClassScores]:
    scores = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[label] = ClassScores(precision, recall, f1, support)
    return scores


def macro_f1(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> float:
    scores = per_class_scores(matrix, labels)
    return sum(s.f1 for s in scores.values()) / len(labels) if labels else 0.0


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[CalibrationBin]:
    """Equal-width bins over [0, 1]; a confidence of exactly 1.0 falls in the last bin."""
    if n_bins < 1:
        raise ValueError("n_bins must be positive")
    _same_length(confidence, correct)
    members: list[list[int]] = [[] for _ in range(n_bins)]
    for i, c in enumerate(confidence):
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"confidence {c} is outside [0, 1]")
        members[min(int(c * n_bins), n_bins - 1)].append(i)
    bins = []
    for b, idx in enumerate(members):
        count = len(idx)
        bins.append(
            CalibrationBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=count,
                confidence=sum(confidence[i] for i in idx) / count if count else 0.0,
                accuracy=sum(correct[i] for i in idx) / count if count else 0.0,
            )
        )
    return bins


def expected_calibration_error(bins: Sequence[CalibrationBin]) -> float:
    """ECE = Σ_b (n_b / N) · |accuracy_b - confidence_b|."""
    total = sum(b.count for b in bins)
    if not total:
        return 0.0
    return sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins)


def distribution(values: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    counts = Counter(values)
    return {label: counts.get(label, 0) for label in labels}


def task_report(
    task: str,
    run: str,
    labels: Sequence[str],
    gold: Sequence[str],
    predicted: Sequence[str],
    confidence: Sequence[float] | None = None,
    *,
    n_bins: int = 10,
    meta: dict[str, Any] | None = None,
) -> TaskReport:
    """Accuracy, macro-F1, confusion matrix and, given per-prediction confidence, calibration."""
    matrix = confusion_matrix(gold, predicted, labels)
    bins: list[CalibrationBin] = []
    ece = None
    if confidence is not None:
        bins = reliability_bins(confidence, [g == p for g, p in zip(gold, predicted, strict=True)], n_bins)
        ece = expected_calibration_error(bins)
    return TaskReport(
        task=task,
        run=run,
        labels=list(labels),
        n=len(gold),
        accuracy=accuracy(gold, predicted),
        macro_f1=macro_f1(matrix, labels),
        per_class=per_class_scores(matrix, labels),
        confusion=matrix,
        gold_distribution=distribution(gold, labels),
        predicted_distribution=distribution(predicted, labels),
        ece=ece,
        reliability=bins,
        meta=dict(meta or {}),
    )


def _same_length(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} vs {len(b)}")
