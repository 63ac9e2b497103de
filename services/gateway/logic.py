"""Pure functions of the gateway: decoding events, building Elasticsearch bulk operations,
judging bulk results and turning stored documents back into records. No I/O here.

A document is keyed by tweet id and assembled from independent partial writes: the tweet
fields come from ``tweets.raw``, and each task's label sub-object from ``tweets.labels``.
Either may arrive first; neither overwrites the other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from opentelemetry import trace

from common.events import LabelEvent, TweetRecord, decode_event
from common.telemetry import extract_context

TWEET_FIELDS = ("id", "author", "created_at", "text", "hashtags", "metrics", "lang", "source", "ingested_at")
PUBLIC_LABEL_FIELDS = ("label", "score", "scores", "model")
LABEL_FIELDS = (
    "label",
    "score",
    "scores",
    "model",
    "model_revision",
    "provider",
    "prompt_version",
    "method",
    "target",
    "valence",
    "produced_at",
    "job_id",
    "trace_id",
)
RETRY_ON_CONFLICT = 5


def decode_tweet(value: bytes | None) -> TweetRecord:
    return decode_event(TweetRecord, value, "tweet")


def decode_label(value: bytes | None) -> LabelEvent:
    return decode_event(LabelEvent, value, "label")


def span_context_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> trace.SpanContext:
    """The W3C span context a producer propagated in the message headers (invalid if none)."""
    return trace.get_current_span(extract_context(headers)).get_span_context()


def trace_id_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The W3C trace id a producer propagated in the message headers, if any."""
    span_context = span_context_from_headers(headers)
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def tweet_doc(
    tweet: TweetRecord, *, indexed_at: datetime, ingest_trace_id: str | None, index_trace_id: str | None
) -> dict[str, Any]:
    doc = tweet.model_dump(mode="json", include=set(TWEET_FIELDS))
    doc["indexed_at"] = indexed_at.isoformat()
    doc["trace"] = {"ingest": ingest_trace_id, "index": index_trace_id}
    return doc


def label_doc(event: LabelEvent, *, header_trace_id: str | None = None) -> dict[str, Any]:
    doc = event.model_dump(mode="json", include=set(LABEL_FIELDS))
    # A partial-doc update merges objects key by key but replaces arrays: stored as a list,
    # a new verdict's scores replace the old ones instead of keeping stale labels.
    doc["scores"] = [{"label": label, "score": score} for label, score in sorted(event.scores.items())]
    doc["trace_id"] = event.trace_id or header_trace_id
    if event.task == "stance":
        doc.pop("valence")  # only emotion has a numeric sentiment
    else:
        doc.pop("target")  # only stance is toward a target
    return doc


def tweet_operations(index: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Partial upsert: label sub-objects already stored for this id are kept."""
    header = {"update": {"_index": index, "_id": doc["id"], "retry_on_conflict": RETRY_ON_CONFLICT}}
    return [header, {"doc": doc, "doc_as_upsert": True}]


def label_operations(index: str, tweet_id: str, task: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Write one task's sub-object, creating a label-only document if the tweet is not here yet.

    Every field of the sub-object is sent (absent ones as null), so the partial update
    replaces the previous verdict entirely.
    """
    header = {"update": {"_index": index, "_id": tweet_id, "retry_on_conflict": RETRY_ON_CONFLICT}}
    return [header, {"doc": {task: doc}, "doc_as_upsert": True}]


def scores_from_stored(stored: Any) -> dict[str, float]:
    """Inverse of the list form :func:`label_doc` stores ``scores`` in."""
    if isinstance(stored, dict):
        return {str(k): float(v) for k, v in stored.items()}
    return {str(p["label"]): float(p["score"]) for p in stored or () if isinstance(p, dict)}


class Outcome(Enum):
    STORED = "stored"
    RETRY = "retry"  # the cluster is overloaded or failing: retry the whole batch later
    REJECTED = "rejected"  # this document can never be stored as it is: dead-letter it


@dataclass(frozen=True)
class ItemResult:
    outcome: Outcome
    status: int
    reason: str = ""


def judge_bulk_item(item: dict[str, Any]) -> ItemResult:
    """Classify one entry of a bulk response's ``items``."""
    result = next(iter(item.values()))
    status = int(result.get("status", 500))
    error = result.get("error")
    if error is None and status < 300:
        return ItemResult(Outcome.STORED, status)
    reason = json.dumps(error, default=str)[:1000] if error is not None else f"status {status}"
    # 409 survives retry_on_conflict only under heavy contention; 404 means the index vanished.
    if status in (404, 408, 409, 429) or status >= 500:
        return ItemResult(Outcome.RETRY, status, reason)
    return ItemResult(Outcome.REJECTED, status, reason)


def tweet_record_from_source(source: dict[str, Any]) -> TweetRecord:
    """Rebuild the record a stored tweet came from, to queue it again for a classifier."""
    fields = {name: source[name] for name in TWEET_FIELDS if source.get(name) is not None}
    return TweetRecord.model_validate_json(json.dumps(fields))
