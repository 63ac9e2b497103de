"""Quality rules on the labels: the lexicon heuristic and the per-document flags. No I/O here
(the VADER lexicon ships in its package). The ``GET /quality`` report is
``gateway.api.quality_report``.

A document is assembled from independent partial writes (the tweet, each label) that arrive in
any order and may be replayed, so its quality is a function of the *stored*, merged document,
never of one event alone. It is therefore judged where it is read, not stored: the indexer
writes only the lexicon score beside the tweet (one bulk write per batch), the review page
applies :func:`document_quality` to the documents it shows, and ``GET /quality`` and the review
strata ask Elasticsearch the same rules as queries (``gateway.api.search``, held to
:func:`document_quality` by the integration tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings

LEXICON_MODEL = f"vader-{version('vaderSentiment')}"
RULES_VERSION = "v1"  # bump when document_quality changes meaning
FLAGS = ("lexicon_disagrees", "low_confidence_emotion", "low_confidence_stance", "emotion_stance_conflict")
POLARITIES = ("negative", "neutral", "positive")
# (emotion, stance) pairs that contradict each other when both labels are confident
CONFLICTS = (("joy", "OPPOSE"), ("anger", "SUPPORT"), ("disgust", "SUPPORT"))


@dataclass(frozen=True)
class QualityThresholds:
    """``GATEWAY_QUALITY_*`` settings: what counts as low confidence, as a polarity, a conflict."""

    emotion_min_score: float = 0.5  # emotion top score below this: low_confidence_emotion
    stance_min_score: float = 0.5  # stance probability below this: low_confidence_stance
    lexicon_band: float = 0.05  # |VADER compound| below this is neutral (VADER's own convention)
    valence_band: float = 0.05  # |emotion valence| below this is neutral

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> QualityThresholds:
        return cls(
            emotion_min_score=settings.quality_emotion_min_score, stance_min_score=settings.quality_stance_min_score
        )


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
    if emotion_confident and stance_confident and (emotion.get("label"), stance.get("label")) in CONFLICTS:
        flags.append("emotion_stance_conflict")
    agrees = lexicon_polarity == model_polarity if lexicon_polarity and model_polarity else None
    return {
        "rules": RULES_VERSION,
        "flags": flags,
        "lexicon_polarity": lexicon_polarity,
        "model_polarity": model_polarity,
        "lexicon_agrees": agrees,
    }


def has_label(source: Mapping[str, Any]) -> bool:
    """Only a labelled document is judged: a tweet alone has nothing to flag."""
    return any(isinstance(source.get(task), dict) and source[task].get("label") for task in ("emotion", "stance"))


class VaderLexicon:
    """VADER's compound score in [-1, 1]; about 75 µs per tweet, so batches go to a thread."""

    model = LEXICON_MODEL

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def compounds(self, texts: Sequence[str]) -> list[float]:
        return [float(self._analyzer.polarity_scores(text)["compound"]) for text in texts]


def lexicon_doc(compound: float, model: str = LEXICON_MODEL) -> dict[str, Any]:
    return {"compound": round(compound, 4), "model": model}
