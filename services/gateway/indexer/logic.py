"""Pure functions of the indexer: the documents it writes, the bulk operations that write them
and the judging of each bulk item. No I/O here.

A document is keyed by tweet id and assembled from independent partial writes: the tweet
fields (with the lexicon score of the text) come from ``tweets.raw``, and each task's label
sub-object from ``tweets.labels``. Either may arrive first; neither overwrites the other. The
quality flags are not stored but judged where they are read (``gateway.quality``).

The newest label wins per (tweet, task), by the event's ``produced_at`` (``gateway.indexer.labels``
plans those writes). Tweet fields are idempotent upserts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from common.events import LabelEvent, TweetRecord
from common.tweet_store import systemic_reason
from gateway.documents import TWEET_FIELDS

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
    replaces the previous verdict entirely. Unconditional, for seeding an index (tests,
    benchmarks): the indexer writes labels newest-first through ``gateway.indexer.labels``.
    """
    header = {"update": {"_index": index, "_id": tweet_id, "retry_on_conflict": RETRY_ON_CONFLICT}}
    return [header, {"doc": {task: doc}, "doc_as_upsert": True}]


class Outcome(Enum):
    STORED = "stored"
    RETRY = "retry"  # the cluster is blocked, overloaded or failing: retry the whole batch later
    CONFLICT = "conflict"  # the document changed since it was read (or appeared, or vanished)
    REJECTED = "rejected"  # this document can never be stored as it is: dead-letter it


@dataclass(frozen=True)
class ItemResult:
    outcome: Outcome
    status: int
    reason: str = ""
    blocked: str = ""  # for RETRY: why every write is refused (common.tweet_store.systemic_reason)


def judge_bulk_item(item: dict[str, Any]) -> ItemResult:
    """Classify one entry of a bulk response's ``items``.

    Only an error about the document itself (a mapping error for its fields) is REJECTED; an
    error about the cluster or the index (auth, a write block, overload, failure) is RETRY, so
    a systemic error never dead-letters anything.
    """
    result = next(iter(item.values()))
    status = int(result.get("status", 500))
    error = result.get("error")
    if error is None and status < 300:
        return ItemResult(Outcome.STORED, status)
    reason = json.dumps(error, default=str)[:1000] if error is not None else f"status {status}"
    blocked = systemic_reason(status, error)
    if blocked is not None:
        return ItemResult(Outcome.RETRY, status, reason, blocked)
    kind = error.get("type") if isinstance(error, dict) else None
    # 409: a conditional write lost a race, or an upsert's retry_on_conflict ran out under contention;
    # document_missing: a conditional update's document was deleted after it was read.
    if status == 409 or kind == "document_missing_exception":
        return ItemResult(Outcome.CONFLICT, status, reason)
    if status == 404:  # the index vanished (or auto-creation is off): not this document's fault
        return ItemResult(Outcome.RETRY, status, reason, "index_missing")
    return ItemResult(Outcome.REJECTED, status, reason)
