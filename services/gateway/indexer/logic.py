"""Pure functions of the indexer: the documents it writes, the bulk operations that write them
and the judging of each bulk item. No I/O here.

A document is keyed by tweet id and assembled from independent partial writes: the tweet
fields (with the lexicon score of the text) come from ``tweets.raw``, and each task's label
sub-object from ``tweets.labels``. Either may arrive first; neither overwrites the other. The
quality flags are not stored but judged where they are read (``gateway.quality``).

Tweet fields are idempotent upserts. Labels: the newest wins per (tweet, task), by the event's
``produced_at``, not by arrival (a DLQ re-drive republishes an old event, and a re-label can be
committed before the original). :func:`plan` writes a label only if it is not older than the
stored one of its task (of equal ones, the later to arrive wins: a replay of the stored event
rewrites the same fields), and only if the document is still the one compared: every label
write is a compare-and-set on the version read (``if_seq_no``/``if_primary_term`` for an
existing document, ``create`` for a missing one). A write that loses a race answers 409 and is
planned again from a fresh read, so a task's stored ``produced_at`` never goes back.

A document takes at most one label write per batch, its tasks merged (two conditional writes on
one version would conflict with each other). Label writes go before the batch's tweet upserts in
the bulk (operations on one document apply in request order), so the version they were planned
on is still current when they apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from common.events import LabelEvent, TweetRecord
from common.tweet_store import Versioned, systemic_reason
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
    benchmarks): the indexer writes labels newest-first through :func:`plan`.
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


# --- newest label wins ---------------------------------------------------------------------

TASKS = ("emotion", "stance")
# The only fields the read before a label write needs (``TweetStore.versions``).
VERSION_FIELDS = tuple(f"{task}.produced_at" for task in TASKS)


@dataclass(frozen=True)
class LabelWrite:
    """One label event, ready to write: ``doc`` is its task's sub-object, ``source`` says where
    the event sits in the batch (its position), for dead letters and for ties."""

    tweet_id: str
    task: str
    produced_at: datetime
    doc: dict[str, Any]
    source: int


@dataclass
class DocWrite:
    """The one label write of a document: the bulk action and body, and the events behind it."""

    tweet_id: str
    operations: list[dict[str, Any]]
    writes: list[LabelWrite] = field(default_factory=list)


def newest_per_task(writes: Iterable[LabelWrite]) -> tuple[list[LabelWrite], list[LabelWrite]]:
    """(the newest event per (tweet, task), the others). Of equal ``produced_at``, the later in the batch."""
    newest: dict[tuple[str, str], LabelWrite] = {}
    older: list[LabelWrite] = []
    for write in writes:
        key = (write.tweet_id, write.task)
        kept = newest.get(key)
        if kept is None or (write.produced_at, write.source) >= (kept.produced_at, kept.source):
            newest[key] = write
            if kept is not None:
                older.append(kept)
        else:
            older.append(write)
    return list(newest.values()), older


def stored_produced_at(source: Mapping[str, Any], task: str) -> datetime | None:
    """The ``produced_at`` of the stored label of ``task``, None if there is none (or it is unreadable)."""
    label = source.get(task)
    value = label.get("produced_at") if isinstance(label, dict) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def plan(
    index: str, writes: Iterable[LabelWrite], stored: Mapping[str, Versioned]
) -> tuple[list[DocWrite], list[LabelWrite]]:
    """(one write per document, the events dropped as older than the stored label).

    ``writes`` hold at most one event per (tweet, task) (:func:`newest_per_task`); ``stored``
    is what ``TweetStore.versions`` read for their documents (a missing id: no document yet).
    """
    docs: dict[str, DocWrite] = {}
    stale: list[LabelWrite] = []
    for write in writes:
        current = stored.get(write.tweet_id)
        stored_at = stored_produced_at(current.source, write.task) if current is not None else None
        if stored_at is not None and write.produced_at < stored_at:
            stale.append(write)
            continue
        docs.setdefault(write.tweet_id, DocWrite(write.tweet_id, [])).writes.append(write)
    for doc in docs.values():
        body = {w.task: w.doc for w in doc.writes}
        current = stored.get(doc.tweet_id)
        if current is None:  # fails with 409 if anyone created it since the read: then re-read
            doc.operations = [{"create": {"_index": index, "_id": doc.tweet_id}}, body]
        else:  # a partial update, refused with 409 if the document changed since the read
            header: dict[str, Any] = {"_index": index, "_id": doc.tweet_id}
            header |= {"if_seq_no": current.seq_no, "if_primary_term": current.primary_term}
            doc.operations = [{"update": header}, {"doc": body}]
    return list(docs.values()), stale
