"""The annotated stance set: real tweets labelled for stance toward their main subject.

``data/labelled/annotated_stance.csv`` holds no text (the tweets come from TweetEval, which
is not copied into the repository): each row points at a row of a public file (``source``,
``row``) and pins its text by a SHA-1 prefix; ``read_annotated`` joins the texts back and
refuses a row whose text changed. Both annotation passes are kept beside the adjudicated
labels, so the agreement figures can be recomputed from the file:

    python -m training.annotations     # sizes, Cohen's kappa, the stance != tone subset
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.events import MAIN_SUBJECT, STANCE_LABELS
from evaluation.benchmarks import BenchItem
from evaluation.public_data import PublicDataError, read_rows

ROOT = Path(__file__).resolve().parent.parent
ANNOTATED = ROOT / "data" / "labelled" / "annotated_stance.csv"
TONES = ("negative", "neutral", "positive")
STANCE_TONE_SUBSET = "stance!=tone"
TONE_AS_STANCE = {"positive": "SUPPORT", "negative": "OPPOSE", "neutral": "NEUTRAL"}


@dataclass(frozen=True)
class AnnotatedTweet:
    item: str
    text: str
    subject: str
    stance: str  # adjudicated
    tone: str  # adjudicated
    passes: tuple[tuple[str, str], tuple[str, str]]  # (stance, tone) of pass A and pass B
    split: str  # train | dev

    @property
    def stance_differs_from_tone(self) -> bool:
        """The tone alone would suggest another stance (guideline section 4)."""
        return TONE_AS_STANCE[self.tone] != self.stance


def text_sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def read_annotated(path: Path = ANNOTATED) -> list[AnnotatedTweet]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    sources: dict[str, list[dict[str, str]]] = {}
    tweets = []
    for row in rows:
        source = sources.setdefault(row["source"], read_rows(row["source"]))
        text = source[int(row["row"])]["text"]
        if text_sha1(text) != row["text_sha1"]:
            raise PublicDataError(f"{path}: item {row['item']} no longer matches {row['source']} row {row['row']}")
        if row["stance"] not in STANCE_LABELS or row["tone"] not in TONES:
            raise ValueError(f"{path}: item {row['item']} has labels {row['stance']!r}/{row['tone']!r}")
        passes = ((row["stance_a"], row["tone_a"]), (row["stance_b"], row["tone_b"]))
        tweets.append(
            AnnotatedTweet(row["item"], text, row["subject"], row["stance"], row["tone"], passes, row["split"])
        )
    return tweets


def bench_items(tweets: Sequence[AnnotatedTweet], split: str) -> list[BenchItem]:
    """One split as benchmark items: stance toward the main subject, and the stance != tone subset."""
    return [
        BenchItem(
            t.text,
            (t.stance,),
            MAIN_SUBJECT,
            frozenset({STANCE_TONE_SUBSET}) if t.stance_differs_from_tone else frozenset(),
        )
        for t in tweets
        if t.split == split
    ]


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Agreement of two annotators beyond chance: (p_o - p_e) / (1 - p_e)."""
    if len(first) != len(second) or not first:
        raise ValueError("two equally long, non-empty label sequences")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


def agreement(tweets: Sequence[AnnotatedTweet]) -> dict[str, object]:
    stance_a = [t.passes[0][0] for t in tweets]
    stance_b = [t.passes[1][0] for t in tweets]
    tone_a = [t.passes[0][1] for t in tweets]
    tone_b = [t.passes[1][1] for t in tweets]
    return {
        "tweets": len(tweets),
        "splits": dict(Counter(t.split for t in tweets)),
        "stance_kappa": round(cohen_kappa(stance_a, stance_b), 3),
        "stance_raw_agreement": round(sum(a == b for a, b in zip(stance_a, stance_b, strict=True)) / len(tweets), 3),
        "tone_kappa": round(cohen_kappa(tone_a, tone_b), 3),
        "adjudicated": sum(t.passes[0] != t.passes[1] for t in tweets),
        "stance_differs_from_tone": sum(t.stance_differs_from_tone for t in tweets),
        "stance_shares": {k: round(v / len(tweets), 3) for k, v in Counter(t.stance for t in tweets).items()},
    }


def main() -> None:
    print(json.dumps(agreement(read_annotated()), indent=2))


if __name__ == "__main__":
    main()
