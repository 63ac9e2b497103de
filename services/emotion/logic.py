"""Pure functions: decode a Kafka value, score valence, build label events. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from common.events import EMOTION_LABELS, LabelEvent, TweetRecord, decode_event

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


def decode_tweet(value: bytes | None) -> TweetRecord:
    return decode_event(TweetRecord, value, "tweet")


def valence(scores: Mapping[str, float]) -> float:
    raw = sum(VALENCE_WEIGHTS[label] * p for label, p in scores.items())
    return max(-1.0, min(1.0, round(raw, 6)))


def normalise_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Exactly the seven labels, rounded, summing to 1 (float noise removed)."""
    total = sum(scores.get(label, 0.0) for label in EMOTION_LABELS) or 1.0
    return {label: round(scores.get(label, 0.0) / total, 6) for label in EMOTION_LABELS}


def build_label_events(
    tweets: Sequence[TweetRecord],
    scores: Sequence[Mapping[str, float]],
    *,
    model: str,
    revision: str | None,
    job_ids: Sequence[str | None],
    trace_ids: Sequence[str | None],
) -> list[LabelEvent]:
    if not len(tweets) == len(scores) == len(job_ids) == len(trace_ids):
        raise ValueError("one score set, job id and trace id per tweet")
    events = []
    for tweet, raw, job_id, trace_id in zip(tweets, scores, job_ids, trace_ids, strict=True):
        probs = normalise_scores(raw)
        label = max(probs, key=probs.__getitem__)
        events.append(
            LabelEvent(
                tweet_id=tweet.id,
                task="emotion",
                label=label,
                score=probs[label],
                scores=probs,
                model=model,
                model_revision=revision,
                valence=valence(probs),
                job_id=job_id,
                trace_id=trace_id,
            )
        )
    return events


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
