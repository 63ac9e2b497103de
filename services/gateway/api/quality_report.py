"""The ``GET /quality`` report as pure functions: low-confidence rates, lexicon agreement and
each model's label drift, from the aggregated counts of the quality checks (``api.search``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from common.events import TASK_LABELS
from gateway.quality import FLAGS, LEXICON_MODEL, QualityThresholds

# What each emotion label says about polarity; surprise can go either way.
EMOTION_POLARITY: dict[str, str] = {
    "joy": "positive",
    "anger": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
    "neutral": "neutral",
}


# ---- drift ------------------------------------------------------------------------------


def distribution(counts: Mapping[str, int], labels: Sequence[str]) -> dict[str, float]:
    total = sum(counts.get(label, 0) for label in labels)
    return {label: (counts.get(label, 0) / total if total else 0.0) for label in labels}


def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence in bits: 0 for identical distributions, 1 for disjoint ones."""

    def kl(a: Mapping[str, float], m: Mapping[str, float]) -> float:
        return sum(a[k] * math.log2(a[k] / m[k]) for k in a if a[k] > 0)

    keys = set(p) | set(q)
    pp = {k: p.get(k, 0.0) for k in keys}
    qq = {k: q.get(k, 0.0) for k in keys}
    m = {k: (pp[k] + qq[k]) / 2 for k in keys}
    return max(0.0, min(1.0, (kl(pp, m) + kl(qq, m)) / 2))


@dataclass(frozen=True)
class DayDrift:
    day: str
    count: int
    distribution: dict[str, float]
    jsd: float | None  # None: fewer documents than min_count that day, not judged
    drifted: bool


@dataclass(frozen=True)
class ModelDrift:
    task: str
    model: str
    baseline_count: int
    baseline: dict[str, float]
    days: list[DayDrift]


def model_drift(
    task: str,
    model: str,
    labels: Sequence[str],
    baseline_counts: Mapping[str, int],
    day_counts: Mapping[str, Mapping[str, int]],
    *,
    threshold: float,
    min_count: int,
) -> ModelDrift:
    """Each day's label distribution against the baseline's, judged by the JS divergence."""
    baseline = distribution(baseline_counts, labels)
    baseline_total = sum(baseline_counts.values())
    days: list[DayDrift] = []
    for day in sorted(day_counts):
        counts = day_counts[day]
        total = sum(counts.values())
        dist = distribution(counts, labels)
        jsd = round(js_divergence(dist, baseline), 4) if total >= min_count and baseline_total else None
        days.append(DayDrift(day, total, dist, jsd, jsd is not None and jsd > threshold))
    return ModelDrift(task, model, baseline_total, baseline, days)


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def label_agreement(pairs: Mapping[tuple[str, str], int]) -> tuple[int, int]:
    """(agreeing, compared) between emotion labels and lexicon polarities; surprise is skipped."""
    agree = compared = 0
    for (label, lexicon_polarity), count in pairs.items():
        expected = EMOTION_POLARITY.get(label)
        if expected is None:
            continue
        compared += count
        agree += count if expected == lexicon_polarity else 0
    return agree, compared


# ---- the GET /quality report ------------------------------------------------------------


def rates(labelled: Mapping[str, int], low: Mapping[str, int], threshold: float) -> dict[str, Any]:
    """Low-confidence rate of one task, overall and per model."""
    total, below = sum(labelled.values()), sum(low.values())
    by_model = {m: {"labelled": n, "low": low.get(m, 0), "rate": ratio(low.get(m, 0), n)} for m, n in labelled.items()}
    return {"threshold": threshold, "labelled": total, "low": below, "rate": ratio(below, total), "by_model": by_model}


@dataclass
class QualityCounts:
    """What ``GET /quality`` is computed from: plain counts, no Elasticsearch shapes."""

    documents: int = 0
    checked: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    labelled: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> model -> labelled
    low: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> model -> below threshold
    lexicon_agrees: dict[bool, int] = field(default_factory=dict)
    label_vs_lexicon: dict[tuple[str, str], int] = field(default_factory=dict)
    baseline: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (task, model) -> label counts
    days: dict[tuple[str, str], dict[str, dict[str, int]]] = field(default_factory=dict)  # -> day -> label counts
    reviews: dict[str, int] = field(default_factory=dict)


def build_report(
    counts: QualityCounts, t: QualityThresholds, *, drift_threshold: float, min_count: int
) -> dict[str, Any]:
    """The ``GET /quality`` body (see ``schemas.QualityPublic``) from the aggregated counts."""
    agree, compared = counts.lexicon_agrees.get(True, 0), sum(counts.lexicon_agrees.values())
    label_agree, label_compared = label_agreement(counts.label_vs_lexicon)
    drift = [
        model_drift(
            task, model, TASK_LABELS[task], counts.baseline.get((task, model), {}), days,
            threshold=drift_threshold, min_count=min_count,
        )
        for (task, model), days in sorted(counts.days.items())
    ]  # fmt: skip
    return {
        "documents": counts.documents,
        "checked": counts.checked,
        "flags": {flag: counts.flags.get(flag, 0) for flag in FLAGS},
        "low_confidence": {
            "emotion": rates(counts.labelled.get("emotion", {}), counts.low.get("emotion", {}), t.emotion_min_score),
            "stance": rates(counts.labelled.get("stance", {}), counts.low.get("stance", {}), t.stance_min_score),
        },
        "lexicon": {
            "model": LEXICON_MODEL,
            "compared": compared,
            "agreeing": agree,
            "agreement": ratio(agree, compared),
            "label_compared": label_compared,
            "label_agreeing": label_agree,
            "label_agreement": ratio(label_agree, label_compared),
        },
        "drift_threshold": drift_threshold,
        "drift_min_count": min_count,
        "drift": [asdict(d) for d in drift],
        "reviews": counts.reviews,
    }
