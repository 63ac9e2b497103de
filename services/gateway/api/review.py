"""The review page's pure logic: turning a reviewer's form into the stored ``review`` object,
and reviewed documents into gold-CSV rows (``id,text,emotion,stance,sentiment``, as the
``evaluate`` command reads them; an empty cell means no label)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from common.events import EMOTION_LABELS, STANCE_LABELS
from gateway.quality import POLARITIES

GOLD_HEADER = ("id", "text", "emotion", "stance", "sentiment")
SENTIMENT_LABELS = POLARITIES
Action = Literal["accept", "correct"]


class InvalidReview(ValueError):
    pass


@dataclass(frozen=True)
class ReviewForm:
    action: Action
    shown_emotion: str = ""  # the labels the reviewer saw: what "accept" confirms
    shown_stance: str = ""
    emotion: str = ""  # a correction; empty: no label
    stance: str = ""
    sentiment: str = ""
    reviewer: str = "anonymous"


def _checked(task: str, value: str, allowed: tuple[str, ...]) -> str | None:
    value = value.strip()
    if not value:
        return None
    if value not in allowed:
        raise InvalidReview(f"{task} {value!r} is not one of {', '.join(allowed)}")
    return value


def review_doc(form: ReviewForm, *, at: datetime) -> dict[str, Any]:
    """The ``review`` object: accepted labels are the ones shown; a correction replaces them."""
    accept = form.action == "accept"
    shown_emotion = _checked("emotion", form.shown_emotion, EMOTION_LABELS)
    shown_stance = _checked("stance", form.shown_stance, STANCE_LABELS)
    emotion = shown_emotion if accept else _checked("emotion", form.emotion, EMOTION_LABELS)
    stance = shown_stance if accept else _checked("stance", form.stance, STANCE_LABELS)
    corrected = not accept and (emotion, stance) != (shown_emotion, shown_stance)
    return {
        "status": "corrected" if corrected else "accepted",
        "emotion": emotion,
        "stance": stance,
        "sentiment": _checked("sentiment", form.sentiment, SENTIMENT_LABELS),
        "reviewer": form.reviewer.strip()[:100] or "anonymous",
        "at": at.isoformat(),
        "shown_emotion": shown_emotion,
        "shown_stance": shown_stance,
    }


def gold_row(source: Mapping[str, Any]) -> list[str]:
    review = source.get("review") or {}
    return [
        str(source["id"]),
        str(source.get("text") or ""),
        review.get("emotion") or "",
        review.get("stance") or "",
        review.get("sentiment") or "",
    ]


def csv_lines(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
