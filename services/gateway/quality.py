"""Quality checks on the labels, as pure functions: the lexicon heuristic, the per-document
flags and the label-distribution drift. No I/O here (the VADER lexicon ships in its package).

A document is assembled from independent partial writes (the tweet, each label) that arrive in
any order and may be replayed, so its ``quality`` object is a function of the *stored*
document: after each bulk write the indexer reads the documents it touched and writes
:func:`document_quality` back, conditional on the version it read (see
``quality_search.QualitySearch.refresh``). Never computed from one event alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from common.events import TASK_LABELS

LEXICON_MODEL = f"vader-{version('vaderSentiment')}"
RULES_VERSION = "v1"  # bump when document_quality changes meaning
FLAGS = ("lexicon_disagrees", "low_confidence_emotion", "low_confidence_stance", "emotion_stance_conflict")
POLARITIES = ("negative", "neutral", "positive")
# What each emotion label says about polarity; surprise can go either way.
EMOTION_POLARITY: dict[str, str] = {
    "joy": "positive",
    "anger": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
    "neutral": "neutral",
}


@dataclass(frozen=True)
class QualityThresholds:
    """``GATEWAY_QUALITY_*`` settings: what counts as low confidence, as a polarity, a conflict."""

    emotion_min_score: float = 0.5  # emotion top score below this: low_confidence_emotion
    stance_min_score: float = 0.5  # stance probability below this: low_confidence_stance
    lexicon_band: float = 0.05  # |VADER compound| below this is neutral (VADER's own convention)
    valence_band: float = 0.05  # |emotion valence| below this is neutral

    def params(self) -> dict[str, float]:
        return asdict(self)


def polarity(value: float | None, band: float) -> str | None:
    if value is None:
        return None
    if value >= band:
        return "positive"
    if value <= -band:
        return "negative"
    return "neutral"


def document_quality(source: Mapping[str, Any], t: QualityThresholds) -> dict[str, Any]:
    """The ``quality`` object of a stored document.

    - ``lexicon_disagrees``: the lexicon and the emotion valence have opposite polarities;
    - ``low_confidence_emotion`` / ``low_confidence_stance``: a score below its threshold;
    - ``emotion_stance_conflict``: confident joy with OPPOSE, or confident anger/disgust with
      SUPPORT. A heuristic for what deserves a look, not proof of an error.
    """
    emotion = source.get("emotion") or {}
    stance = source.get("stance") or {}
    lexicon = source.get("lexicon") or {}
    lexicon_polarity = polarity(lexicon.get("compound"), t.lexicon_band)
    model_polarity = polarity(emotion.get("valence"), t.valence_band)
    flags: list[str] = []
    if lexicon_polarity and model_polarity and {lexicon_polarity, model_polarity} == {"positive", "negative"}:
        flags.append("lexicon_disagrees")
    emotion_confident = emotion.get("score") is not None and emotion["score"] >= t.emotion_min_score
    stance_confident = stance.get("score") is not None and stance["score"] >= t.stance_min_score
    if emotion.get("score") is not None and not emotion_confident:
        flags.append("low_confidence_emotion")
    if stance.get("score") is not None and not stance_confident:
        flags.append("low_confidence_stance")
    if emotion_confident and stance_confident:
        pair = (emotion.get("label"), stance.get("label"))
        if pair in {("joy", "OPPOSE"), ("anger", "SUPPORT"), ("disgust", "SUPPORT")}:
            flags.append("emotion_stance_conflict")
    agrees = lexicon_polarity == model_polarity if lexicon_polarity and model_polarity else None
    return {
        "rules": RULES_VERSION,
        "flags": flags,
        "lexicon_polarity": lexicon_polarity,
        "model_polarity": model_polarity,
        "lexicon_agrees": agrees,
    }


class VaderLexicon:
    """VADER's compound score in [-1, 1]; about 75 µs per tweet, so batches go to a thread."""

    model = LEXICON_MODEL

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def compounds(self, texts: Sequence[str]) -> list[float]:
        return [float(self._analyzer.polarity_scores(text)["compound"]) for text in texts]


def lexicon_doc(compound: float, model: str = LEXICON_MODEL) -> dict[str, Any]:
    return {"compound": round(compound, 4), "model": model}


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
