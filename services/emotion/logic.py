"""Pure functions: normalise scores, score valence, bucket texts by length. No I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.events import EMOTION_LABELS

# Valence weight of each emotion. The score is the expected valence under the model's
# distribution: sum(p(e) * w(e)), which lies in [-1, 1]. Joy is the only clearly pleasant
# class; anger, disgust, fear and sadness are unpleasant; neutral carries no valence, and
# surprise is weighted 0 because it is pleasant or unpleasant depending on context (its
# sign is not recoverable from the label alone). Equal magnitudes keep the score a plain
# "probability of positive minus probability of negative" that readers can verify by hand.
VALENCE_WEIGHTS: Mapping[str, float] = {
    "anger": -1.0,
    "disgust": -1.0,
    "fear": -1.0,
    "joy": 1.0,
    "neutral": 0.0,
    "sadness": -1.0,
    "surprise": 0.0,
}


SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Where a classifier that predicts sentiment itself (the MiniLM head's sentiment block) puts its
# three probabilities in each row it returns, beside the seven emotion scores.
SENTIMENT_KEYS = tuple(f"sentiment:{label}" for label in SENTIMENT_LABELS)
FIXED_BAND = 0.2  # the fixed map's neutral band: |valence| <= 0.2
LOG_FLOOR = 1e-6  # scores are rounded to 6 decimals; log(0) is floored here


@dataclass(frozen=True)
class ValenceMap:
    """The seven emotion scores → sentiment (negative / neutral / positive) and a valence in [-1, 1].

    Fitted (``coef`` set): multinomial logistic regression on the log-scores,
    ``softmax(log(p) @ coef + intercept)``; valence = P(positive) - P(negative), band = argmax.
    Fixed (``coef`` None): valence = Σ p(e)·weight(e) (``VALENCE_WEIGHTS``), band = its sign
    outside ±``band``, probabilities = the emotion mass folded onto polarity (joy positive;
    anger, disgust, fear, sadness negative; neutral and surprise neutral).
    """

    name: str
    coef: tuple[tuple[float, float, float], ...] | None = None  # one row per EMOTION_LABELS entry
    intercept: tuple[float, float, float] = (0.0, 0.0, 0.0)
    band: float = FIXED_BAND
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.coef is not None and (
            len(self.coef) != len(EMOTION_LABELS) or any(len(row) != len(SENTIMENT_LABELS) for row in self.coef)
        ):
            raise ValueError(f"valence map {self.name!r}: coef must be {len(EMOTION_LABELS)} rows of 3")

    @property
    def fitted(self) -> bool:
        return self.coef is not None

    def probabilities(self, scores: Mapping[str, float]) -> dict[str, float]:
        if self.coef is None:
            folded = {
                "negative": sum(scores.get(e, 0.0) for e in EMOTION_LABELS if VALENCE_WEIGHTS[e] < 0),
                "neutral": sum(scores.get(e, 0.0) for e in EMOTION_LABELS if VALENCE_WEIGHTS[e] == 0),
                "positive": sum(scores.get(e, 0.0) for e in EMOTION_LABELS if VALENCE_WEIGHTS[e] > 0),
            }
            total = sum(folded.values()) or 1.0
            return {label: p / total for label, p in folded.items()}
        x = log_scores(scores)
        logits = [
            self.intercept[c] + sum(x[e] * self.coef[e][c] for e in range(len(x))) for c in range(len(SENTIMENT_LABELS))
        ]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        total = sum(weights)
        return {label: w / total for label, w in zip(SENTIMENT_LABELS, weights, strict=True)}

    def valence(self, scores: Mapping[str, float]) -> float:
        if self.coef is None:
            raw = sum(VALENCE_WEIGHTS[label] * p for label, p in scores.items() if label in VALENCE_WEIGHTS)
        else:
            probs = self.probabilities(scores)
            raw = probs["positive"] - probs["negative"]
        return max(-1.0, min(1.0, round(raw, 6)))

    def sentiment(self, scores: Mapping[str, float]) -> tuple[str, dict[str, float]]:
        """The band (negative / neutral / positive) and the three probabilities."""
        probs = self.probabilities(scores)
        if self.coef is not None:
            return max(SENTIMENT_LABELS, key=probs.__getitem__), probs
        value = self.valence(scores)
        band = "positive" if value > self.band else "negative" if value < -self.band else "neutral"
        return band, probs

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": list(EMOTION_LABELS),
            "sentiments": list(SENTIMENT_LABELS),
            "coef": [list(row) for row in self.coef] if self.coef is not None else None,
            "intercept": list(self.intercept),
            "band": self.band,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValenceMap:
        """The inverse of ``to_dict``; raises ``ValueError`` on a map for other labels or shapes."""
        if list(data.get("labels", EMOTION_LABELS)) != list(EMOTION_LABELS):
            raise ValueError(f"valence map rows {data.get('labels')} are not {list(EMOTION_LABELS)}")
        if list(data.get("sentiments", SENTIMENT_LABELS)) != list(SENTIMENT_LABELS):
            raise ValueError(f"valence map classes {data.get('sentiments')} are not {list(SENTIMENT_LABELS)}")
        coef = data.get("coef")
        intercept = tuple(float(v) for v in data.get("intercept", (0.0, 0.0, 0.0)))
        if len(intercept) != len(SENTIMENT_LABELS):
            raise ValueError("valence map intercept must have 3 values")
        return cls(
            name=str(data["name"]),
            coef=tuple((float(r[0]), float(r[1]), float(r[2])) for r in coef) if coef is not None else None,
            intercept=(intercept[0], intercept[1], intercept[2]),
            band=float(data.get("band", FIXED_BAND)),
            meta=dict(data.get("meta") or {}),
        )


FIXED_VALENCE_MAP = ValenceMap(name="fixed-weights")


@dataclass(frozen=True)
class ClassifierSentiment(ValenceMap):
    """Sentiment the classifier predicted itself, read from a row's ``SENTIMENT_KEYS``:
    valence = P(positive) - P(negative), band = argmax. The emotion scores are not used, so a
    classifier whose features carry more sentiment than its seven scores passes all of it on."""

    @property
    def fitted(self) -> bool:
        return True

    def probabilities(self, scores: Mapping[str, float]) -> dict[str, float]:
        missing = [key for key in SENTIMENT_KEYS if key not in scores]
        if missing:
            raise ValueError(f"{self.name}: the classifier's row lacks {missing}")
        return {label: float(scores[key]) for label, key in zip(SENTIMENT_LABELS, SENTIMENT_KEYS, strict=True)}

    def valence(self, scores: Mapping[str, float]) -> float:
        probs = self.probabilities(scores)
        return max(-1.0, min(1.0, round(probs["positive"] - probs["negative"], 6)))

    def sentiment(self, scores: Mapping[str, float]) -> tuple[str, dict[str, float]]:
        probs = self.probabilities(scores)
        return max(SENTIMENT_LABELS, key=probs.__getitem__), probs


def log_scores(scores: Mapping[str, float]) -> list[float]:
    """The fitted map's features: log of each emotion score (EMOTION_LABELS order), floored."""
    return [math.log(max(float(scores.get(label, 0.0)), LOG_FLOOR)) for label in EMOTION_LABELS]


def valence_map_for(classifier: object) -> ValenceMap:
    """The classifier's own map (``valence_map`` attribute), else the fixed weights."""
    found = getattr(classifier, "valence_map", None)
    return found if isinstance(found, ValenceMap) else FIXED_VALENCE_MAP


def valence(scores: Mapping[str, float], mapping: ValenceMap = FIXED_VALENCE_MAP) -> float:
    return mapping.valence(scores)


def normalise_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Exactly the seven labels, rounded, summing to 1 (float noise removed)."""
    total = sum(scores.get(label, 0.0) for label in EMOTION_LABELS) or 1.0
    return {label: round(scores.get(label, 0.0) / total, 6) for label in EMOTION_LABELS}


def length_buckets(lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """Group indices into padded batches: sorted by length, each bucket at most ``max_rows`` rows
    and ``rows * longest`` ≤ ``max_tokens`` padded tokens (a text longer than the token budget
    still gets a bucket of its own). Every index appears exactly once."""
    if max_rows < 1 or max_tokens < 1:
        raise ValueError("max_rows and max_tokens must be positive")
    buckets: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        # ascending order: lengths[i] is the longest row of the bucket once added
        if current and (len(current) >= max_rows or (len(current) + 1) * lengths[i] > max_tokens):
            buckets.append(current)
            current = []
        current.append(i)
    if current:
        buckets.append(current)
    return buckets
