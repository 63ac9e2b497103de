"""Events and stored documents for the gateway's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from common.events import Author, LabelEvent, Metrics, TweetRecord
from gateway.indexer import logic

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def tweet(tweet_id: str = "1790000000000000001", **overrides: Any) -> TweetRecord:
    fields: dict[str, Any] = {
        "id": tweet_id,
        "author": Author(handle="alice", username="Alice A", user_id="42", verified=True),
        "created_at": datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
        "text": "the budget vote is today",
        "hashtags": ["budget", "vote"],
        "metrics": Metrics(retweets=3, likes=10),
        "lang": "en",
        "source": "unit",
        "ingested_at": NOW,
    }
    return TweetRecord(**{**fields, **overrides})


def emotion(tweet_id: str = "1790000000000000001", **overrides: Any) -> LabelEvent:
    fields: dict[str, Any] = {
        "tweet_id": tweet_id,
        "task": "emotion",
        "label": "joy",
        "score": 0.8,
        "scores": {"joy": 0.8, "anger": 0.2},
        "model": "emo-model",
        "valence": 0.6,
        "produced_at": NOW,
    }
    return LabelEvent(**{**fields, **overrides})


def stance(tweet_id: str = "1790000000000000001", **overrides: Any) -> LabelEvent:
    fields: dict[str, Any] = {
        "tweet_id": tweet_id,
        "task": "stance",
        "label": "SUPPORT",
        "score": 0.7,
        "scores": {"SUPPORT": 0.7, "OPPOSE": 0.1, "NEUTRAL": 0.2},
        "model": "stance-model",
        "produced_at": NOW,
    }
    return LabelEvent(**{**fields, **overrides})


def stored(record: TweetRecord, *labels: LabelEvent, ingest_trace_id: str | None = None) -> dict[str, Any]:
    """The _source the indexer would have written for these events."""
    source = logic.tweet_doc(record, indexed_at=NOW, ingest_trace_id=ingest_trace_id, index_trace_id=None)
    for label in labels:
        source[label.task] = logic.label_doc(label)
    return source
