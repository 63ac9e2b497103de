"""Pure steps of a replay: source item → ``TweetRecord`` or ``RejectedRecord``, duplicate
detection, and the running summary whose counts reconcile (read = published + rejected)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, ValidationError, computed_field

from common.events import RejectedRecord, TweetRecord, ValidationIssue
from ingestor.formats.fields import RecordError

# Kafka's default message limit is 1 MB; a reject keeps enough of the raw record to find it.
MAX_RAW_CHARS = 100_000
DUPLICATE_ID = "duplicate_id"
NOT_JSON = "not_json"

Adapter = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One record as read: parsed ``value``, or ``error`` when the bytes could not be parsed."""

    position: str  # "record 3" (JSON array), "line 3" (JSON Lines), "row 3" (CSV)
    raw: str
    value: Any = None
    error: str | None = None
    reason: str = NOT_JSON  # the reject category when ``error`` is set


Outcome = TweetRecord | RejectedRecord


class ReplaySummary(BaseModel):
    source: str
    format: str | None = None
    read: int = 0
    valid: int = 0  # passed validation, duplicates included
    duplicates: int = 0
    published: int = 0  # distinct valid tweets acknowledged on tweets.raw
    rejected: int = 0  # invalid + duplicates, sent to tweets.rejected
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)  # stream-level problems, e.g. a truncated array
    elapsed_s: float = 0.0
    rate_per_s: float = 0.0  # records read per second
    topics: dict[str, str] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reconciles(self) -> bool:
        return self.read == self.published + self.rejected and self.valid - self.duplicates == self.published

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


def to_outcome(item: SourceItem, adapter: Adapter, source: str) -> Outcome:
    """Validate one source item against the strict model; never raises for bad data."""
    if item.error is not None:
        issue = ValidationIssue(loc="", msg=item.error, type=item.reason)
        return reject(item, source, item.reason, [issue])
    try:
        fields = adapter(item.value)
        return TweetRecord.model_validate({**fields, "source": source})
    except RecordError as exc:
        return reject(item, source, exc.reason, exc.issues)
    except ValidationError as exc:
        issues = [
            ValidationIssue(loc=_loc(error["loc"]), msg=error["msg"], type=error["type"])
            for error in exc.errors(include_url=False, include_input=False)
        ]
        return reject(item, source, reason_for(issues[0]), issues)
    except (TypeError, ValueError, AttributeError) as exc:
        # A shape no adapter rule anticipated is still one bad record, not a reason to stop.
        issue = ValidationIssue(loc="", msg=f"{type(exc).__name__}: {exc}", type="unmappable")
        return reject(item, source, "unmappable", [issue])


def reason_for(issue: ValidationIssue) -> str:
    """A short category for the first validation error, e.g. ``missing_field:text``."""
    kind = issue.type
    if kind == "missing":
        category = "missing_field"
    elif "datetime" in kind or "timezone" in kind or "date" in kind:
        category = "invalid_date"
    elif kind == "string_too_short" or kind == "too_short":
        category = "empty_field"
    elif kind in {"string_too_long", "too_long"}:
        category = "too_long"
    elif kind.endswith("_type") or kind in {"is_instance_of", "model_attributes_type"}:
        category = "invalid_type"
    else:
        category = "invalid_value"
    return f"{category}:{issue.loc}" if issue.loc else category


def duplicate(item: SourceItem, source: str, tweet: TweetRecord) -> RejectedRecord:
    issue = ValidationIssue(loc="id", msg=f"id {tweet.id} already appeared earlier in {source}", type=DUPLICATE_ID)
    return reject(item, source, DUPLICATE_ID, [issue])


def reject(item: SourceItem, source: str, reason: str, issues: list[ValidationIssue]) -> RejectedRecord:
    return RejectedRecord(
        source=source, position=item.position, reason=reason, errors=issues, raw=item.raw[:MAX_RAW_CHARS]
    )


def raw_json(value: Any) -> str:
    """Re-serialise a parsed record for ``RejectedRecord.raw``; non-integers keep their digits."""
    return json.dumps(value, ensure_ascii=False, default=_exact_number)


def _exact_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # a string rather than float(): the point of the reject may be those digits
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _loc(parts: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in parts)
