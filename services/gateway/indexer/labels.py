"""Newest label wins, per (tweet, task): which label writes a batch makes, and how. Pure.

Order is decided by the event's ``produced_at``, not by arrival: a DLQ re-drive republishes an
old event, and a re-label can be committed before the original. So a label is written only if
it is not older than the stored one of its task (of equal ones, the later to arrive wins, as
before: a replay of the stored event rewrites the same fields), and only if the document is still the one that
was compared: every label write is a compare-and-set on the version read (``if_seq_no`` and
``if_primary_term`` for an existing document, ``create`` for a missing one). A write that
loses a race answers 409 and is planned again from a fresh read; the stored ``produced_at``
of a task therefore never goes back, whatever runs concurrently.

A document takes at most one label write per batch, its tasks merged: two conditional writes
on one version would conflict with each other. Label writes go before the batch's tweet upserts
in the bulk (operations on one document apply in request order), so the version they were
planned on is still current when they apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.tweet_store import Versioned

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
