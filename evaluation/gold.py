"""The gold CSV (``id,text,emotion,stance,sentiment[,target]``), its tweet ids, and a replayable feed.

``target`` (optional) names what a row's stance label is toward ("Hillary Clinton"); an empty
cell or no column means the tweet's main subject, as the stance service labels by default.

Every label column is optional and an empty cell means "not labelled": the /review page's
export and hand-written sets read the same way. Labels are normalised (emotion and sentiment
lower case, stance upper case) and checked against the label sets, so a typo fails loudly
with its row number instead of silently counting as a wrong prediction.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.events import EMOTION_LABELS, MAX_TARGET_CHARS, MAX_TWEET_ID, STANCE_LABELS

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
TASKS: dict[str, tuple[str, ...]] = {"emotion": EMOTION_LABELS, "stance": STANCE_LABELS, "sentiment": SENTIMENT_LABELS}
REQUIRED_COLUMNS = ("id", "text")
_NUMERIC_ID = re.compile(r"^[0-9]{1,19}$")
FEED_DATE = "2025-01-01"  # the gold has no dates; one fixed date keeps the feed reproducible


class GoldFormatError(ValueError):
    pass


@dataclass(frozen=True)
class GoldItem:
    id: str
    text: str
    labels: dict[str, str]  # task -> gold label; a task without a label is absent
    target: str | None = None  # what the stance label is toward; None: the main subject

    @property
    def tweet_id(self) -> str:
        return tweet_id_for(self.id)


def _normalise(task: str, value: str) -> str:
    return value.strip().upper() if task == "stance" else value.strip().lower()


def read_gold(path: Path) -> list[GoldItem]:
    with path.open(newline="", encoding="utf-8") as handle:
        return parse_gold(handle, str(path))


def parse_gold(lines: Iterable[str], source: str = "gold") -> list[GoldItem]:
    reader = csv.DictReader(lines)
    columns = [c.strip().lower() for c in reader.fieldnames or ()]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise GoldFormatError(f"{source}: missing column(s) {', '.join(missing)} (header: {columns})")
    reader.fieldnames = columns
    items: list[GoldItem] = []
    seen: set[str] = set()
    for row_number, row in enumerate(reader, start=2):
        gold_id = (row.get("id") or "").strip()
        text = (row.get("text") or "").strip()
        if not gold_id or not text:
            raise GoldFormatError(f"{source} row {row_number}: id and text are required")
        if gold_id in seen:
            raise GoldFormatError(f"{source} row {row_number}: duplicate id {gold_id}")
        seen.add(gold_id)
        labels: dict[str, str] = {}
        for task, allowed in TASKS.items():
            cell = _normalise(task, row.get(task) or "")
            if not cell:
                continue
            if cell not in allowed:
                raise GoldFormatError(f"{source} row {row_number}: {task} {cell!r} is not one of {', '.join(allowed)}")
            labels[task] = cell
        target = (row.get("target") or "").strip() or None
        if target is not None and len(target) > MAX_TARGET_CHARS:
            raise GoldFormatError(f"{source} row {row_number}: target is longer than {MAX_TARGET_CHARS} characters")
        items.append(GoldItem(gold_id, text, labels, target))
    return items


def tweet_id_for(gold_id: str) -> str:
    """The tweet id a gold row is indexed under: a numeric id (a /review export) is itself;
    any other id ("t0001") maps to a stable id derived from it, inside 1..2^63-1."""
    if _NUMERIC_ID.match(gold_id) and 0 < int(gold_id) <= MAX_TWEET_ID:
        return str(int(gold_id))
    digest = int.from_bytes(hashlib.sha256(f"gold:{gold_id}".encode()).digest()[:8], "big")
    return str(digest % MAX_TWEET_ID + 1)


def feed_record(item: GoldItem) -> dict[str, Any]:
    """One record in the spec's nested layout, which ``ingestor replay --format jsonl`` reads."""
    return {
        "id": int(item.tweet_id),
        "user": {"username": "gold", "handle": "@gold", "verified": False},
        "meta": {"created_at": FEED_DATE, "hashtags": re.findall(r"(?<![\w&])#(\w+)", item.text)},
        "payload": {"tweet": {"content": item.text}},
    }


def write_feed(items: Sequence[GoldItem], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(feed_record(item), ensure_ascii=False) + "\n")
    return path


def sentiment_from_valence(valence: float, threshold: float) -> str:
    """positive above ``threshold``, negative below ``-threshold``, neutral in between."""
    if valence > threshold:
        return "positive"
    if valence < -threshold:
        return "negative"
    return "neutral"


def sentiment_probabilities(emotion_scores: dict[str, float]) -> dict[str, float]:
    """The emotion distribution folded onto polarity (surprise and neutral count as neutral);
    the probability of the predicted polarity is the confidence used for calibration."""
    positive = emotion_scores.get("joy", 0.0)
    negative = sum(emotion_scores.get(e, 0.0) for e in ("anger", "disgust", "fear", "sadness"))
    neutral = emotion_scores.get("neutral", 0.0) + emotion_scores.get("surprise", 0.0)
    total = positive + negative + neutral or 1.0
    return {"negative": negative / total, "neutral": neutral / total, "positive": positive / total}


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
