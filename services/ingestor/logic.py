"""Pure steps of a replay: duplicate detection, the reject's raw text, and the running summary
whose counts reconcile (read = published + rejected). Validating one item (source item →
``TweetRecord`` or ``RejectedRecord``) is part of the contract, shared with ``POST /ingest``:
``common.records.to_outcome``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, computed_field

from common.events import RejectedRecord, TweetRecord, ValidationIssue
from common.records import SourceItem, reject

DUPLICATE_ID = "duplicate_id"


class ReplaySummary(BaseModel):
    source: str
    format: str | None = None
    read: int = 0
    valid: int = 0  # passed validation, duplicates included
    duplicates: int = 0
    published: int = 0  # distinct valid tweets acknowledged on tweets.raw
    rejected: int = 0  # invalid + duplicates, sent to tweets.rejected
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    already_indexed: int = 0  # --skip-existing: valid tweets found in Elasticsearch, not published
    skipped_on_resume: int = 0  # published by an earlier run of the same input (checkpoint)
    follow_events: list[str] = Field(default_factory=list)  # --follow: resumed, rotated, truncated
    errors: list[str] = Field(default_factory=list)  # stream-level problems, e.g. a truncated array
    elapsed_s: float = 0.0
    rate_per_s: float = 0.0  # records read per second
    topics: dict[str, str] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reconciles(self) -> bool:
        published = self.published + self.already_indexed
        return self.read == published + self.rejected and self.valid - self.duplicates == published

    def count_reject(self, reason: str) -> None:
        self.rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1


class SeenIds:
    """Ids already published from this source, to reject repeats as ``duplicate_id``.

    Memory: ids are kept as Python ints in a set, about 60-70 bytes per distinct id (a 32-byte
    int object plus the set's hash slot at its load factor), so roughly 70 MB per million
    tweets: fine for Kaggle-sized files (Sentiment140's 1.6 M rows ≈ 110 MB). Strings would
    cost about twice that.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, tweet_id: str) -> bool:
        """Record ``tweet_id``; ``False`` if it was seen before."""
        key = int(tweet_id)
        if key in self._ids:
            return False
        self._ids.add(key)
        return True


def duplicate(item: SourceItem, source: str, tweet: TweetRecord) -> RejectedRecord:
    issue = ValidationIssue(loc="id", msg=f"id {tweet.id} already appeared earlier in {source}", type=DUPLICATE_ID)
    return reject(item, source, DUPLICATE_ID, [issue])


def raw_json(value: Any) -> str:
    """Re-serialise a parsed record for ``RejectedRecord.raw``; non-integers keep their digits."""
    return json.dumps(value, ensure_ascii=False, default=_exact_number)


def _exact_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # a string rather than float(): the point of the reject may be those digits
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

