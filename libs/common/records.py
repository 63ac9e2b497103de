"""Source records → ``TweetRecord``: the part of the contract every entry point shares.

The ingestor's replay and the gateway's ``POST /ingest`` judge a record the same way: the
spec's nested layout is mapped with :func:`map_nested`, timestamps with :func:`parse_datetime`,
and :func:`to_outcome` returns either a valid ``TweetRecord`` or a ``RejectedRecord`` whose
reason names the first bad field (``missing_field:text``, ``invalid_date:created_at``...).

Adapters raise :class:`RecordError` for what they can judge better than the model (an id that
arrived as a JSON float, a date no parser understands), so the reject carries a precise reason.

Timestamps accepted, in this order:

* epoch numbers (JSON integers, or strings of 9+ digits): seconds, or milliseconds when the
  value is 10**11 or more (10**11 seconds is the year 5138, so the split is unambiguous);
* ISO 8601 (``2024-05-01T12:00:00Z``, ``2024-05-01 12:00:00``, ``2024-05-01``: midnight);
* Twitter API v1.1: ``Wed Oct 10 20:19:24 +0000 2018``;
* Sentiment140: ``Mon Apr 06 22:19:45 PDT 2009`` (the zone abbreviations below, nothing else).

A timestamp without a zone is taken as **UTC**: dataset exports almost always write UTC, and
guessing the exporter's local zone would be worse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from common.events import MAX_TWEET_ID, RejectedRecord, TweetRecord, ValidationIssue

# Kafka's default message limit is 1 MB; a reject keeps enough of the raw record to find it.
MAX_RAW_CHARS = 100_000
NOT_JSON = "not_json"

Adapter = Callable[[Any], dict[str, Any]]
_DIGITS = re.compile(r"[0-9]+")


class RecordError(Exception):
    """A source record that cannot become a ``TweetRecord``; ``reason`` is the reject category."""

    def __init__(self, reason: str, msg: str, loc: str = "", type_: str = "adapter_error") -> None:
        super().__init__(f"{reason}: {msg}")
        self.reason = reason
        self.issues = [ValidationIssue(loc=loc or reason.partition(":")[2], msg=msg, type=type_)]


# --- fields ---------------------------------------------------------------------------------


def obj(value: Any, name: str) -> dict[str, Any]:
    """``value`` as a JSON object; absent means empty (the model then reports what is missing)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"invalid_type:{name}", f"expected an object, got {type(value).__name__}")
    return value


def tweet_id(value: Any, field: str = "id") -> str:
    """An exact decimal id string; rejects floats/Decimals (ids above 2**53 lose digits there)."""
    if isinstance(value, bool):
        raise RecordError(f"invalid_type:{field}", "expected an integer or a string of digits, got a boolean")
    if isinstance(value, int):
        digits = str(value)
    elif isinstance(value, str):
        digits = value.strip()
        if not _DIGITS.fullmatch(digits):
            raise RecordError(f"invalid_type:{field}", f"expected a string of digits, got {value[:40]!r}")
    elif isinstance(value, Decimal | float):
        raise RecordError(
            f"invalid_type:{field}",
            f"got the non-integer number {value}: ids must be JSON integers or strings of digits "
            "(a float cannot hold a 64-bit id exactly)",
        )
    elif value is None:
        raise RecordError(f"missing_field:{field}", "field required", type_="missing")
    else:
        raise RecordError(f"invalid_type:{field}", f"expected an integer or a string, got {type(value).__name__}")
    if not 0 < int(digits) <= MAX_TWEET_ID:
        raise RecordError(f"out_of_range:{field}", f"{digits} is outside 1..{MAX_TWEET_ID} (signed 64-bit)")
    return str(int(digits))


def optional_id(value: Any, field: str) -> str | None:
    return None if value is None or value == "" else tweet_id(value, field)


def prune(record: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values so the model's defaults and 'missing' errors apply."""
    return {key: value for key, value in record.items() if value is not None}


# --- timestamps -----------------------------------------------------------------------------

# Abbreviations are ambiguous in general (IST, CST); these are the North-American and European
# ones tweet dumps use, mapped explicitly instead of trusting the platform's zone database.
ZONE_ABBREVIATIONS: dict[str, timedelta] = {
    "UTC": timedelta(0),
    "GMT": timedelta(0),
    "Z": timedelta(0),
    "PST": timedelta(hours=-8),
    "PDT": timedelta(hours=-7),
    "MST": timedelta(hours=-7),
    "MDT": timedelta(hours=-6),
    "CST": timedelta(hours=-6),
    "CDT": timedelta(hours=-5),
    "EST": timedelta(hours=-5),
    "EDT": timedelta(hours=-4),
    "AKST": timedelta(hours=-9),
    "AKDT": timedelta(hours=-8),
    "HST": timedelta(hours=-10),
    "BST": timedelta(hours=1),
    "CET": timedelta(hours=1),
    "CEST": timedelta(hours=2),
}
_MILLIS_THRESHOLD = 10**11
_ABBREVIATED = re.compile(r"^(\w{3} \w{3} \d{1,2} \d{2}:\d{2}:\d{2}) ([A-Z]{1,5}) (\d{4})$")


def parse_datetime(value: Any, field: str = "created_at") -> datetime:
    reason = f"invalid_date:{field}"
    if value is None or value == "":
        raise RecordError(f"missing_field:{field}", "field required", type_="missing")
    if isinstance(value, bool):
        raise RecordError(reason, "expected a timestamp, got a boolean")
    if isinstance(value, int | Decimal):
        return _from_epoch(value, reason)
    if not isinstance(value, str):
        raise RecordError(reason, f"expected a timestamp, got {type(value).__name__}")
    text = value.strip()
    if text.isdigit() and len(text) >= 9:
        return _from_epoch(int(text), reason)
    for parse in (_iso, _twitter_v1, _abbreviated_zone):
        parsed = parse(text)
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise RecordError(reason, f"unrecognised timestamp {text[:60]!r}")


def _from_epoch(value: int | Decimal, reason: str) -> datetime:
    seconds = Decimal(value)
    if abs(seconds) >= _MILLIS_THRESHOLD:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(float(seconds), UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise RecordError(reason, f"epoch {value} is out of range: {exc}") from None


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _twitter_v1(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        return None


def _abbreviated_zone(text: str) -> datetime | None:
    match = _ABBREVIATED.match(text)
    if match is None or match.group(2) not in ZONE_ABBREVIATIONS:
        return None
    stamp, zone, year = match.groups()
    try:
        naive = datetime.strptime(f"{stamp} {year}", "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None
    return naive.replace(tzinfo=timezone(ZONE_ABBREVIATIONS[zone]))


# --- the spec's nested layout ---------------------------------------------------------------


def map_nested(record: Any) -> dict[str, Any]:
    """The spec's nested shape (``created_at`` may be a bare date: midnight UTC)::

    {"id": 1, "user": {"username": "...", "handle": "@...", "verified": false},
     "meta": {"created_at": "2025-02-19", "hashtags": ["#Tag"]},
     "payload": {"tweet": {"content": "..."}},
     "metrics": {"retweets": 4066, "likes": 9543}}
    """
    record = obj(record, "record")
    user = obj(record.get("user"), "user")
    meta = obj(record.get("meta"), "meta")
    tweet = obj(obj(record.get("payload"), "payload").get("tweet"), "payload.tweet")
    metrics = record.get("metrics")
    if metrics is not None:
        metrics = obj(metrics, "metrics")
        metrics = prune({"retweets": metrics.get("retweets"), "likes": metrics.get("likes")})
    if "id" not in record:
        raise RecordError("missing_field:id", "field required", type_="missing")
    return prune(
        {
            "id": tweet_id(record["id"]),
            "author": prune(
                {
                    "handle": user.get("handle") or user.get("username"),
                    "username": user.get("username"),
                    "user_id": optional_id(user.get("user_id"), "author.user_id"),
                    "verified": user.get("verified"),
                }
            ),
            "created_at": parse_datetime(meta.get("created_at")),
            "text": tweet.get("content"),
            "hashtags": meta.get("hashtags"),
            "metrics": metrics,
            "lang": record.get("lang") or meta.get("lang"),
        }
    )


# --- validation outcome ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One record as read: parsed ``value``, or ``error`` when the bytes could not be parsed."""

    position: str  # "record 3" (JSON array), "line 3" (JSON Lines), "row 3" (CSV)
    raw: str
    value: Any = None
    error: str | None = None
    reason: str = NOT_JSON  # the reject category when ``error`` is set


Outcome = TweetRecord | RejectedRecord


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


def reject(item: SourceItem, source: str, reason: str, issues: list[ValidationIssue]) -> RejectedRecord:
    return RejectedRecord(
        source=source, position=item.position, reason=reason, errors=issues, raw=item.raw[:MAX_RAW_CHARS]
    )


def json_line_item(line: bytes, number: int) -> SourceItem:
    """One JSON Lines line as a :class:`SourceItem`; non-integers stay ``Decimal`` (exact ids)."""
    return parse_json_line(line, f"line {number}")


def parse_json_line(line: bytes, position: str) -> SourceItem:
    """``line`` parsed as JSON, or an item carrying the parse error: never raises."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith("\ufeff"):
        # json.loads on the bytes: it detects a BOM or UTF-16/32, and reports bad UTF-8.
        raw = line.decode("utf-8", errors="replace").rstrip("\r\n")
        try:
            value = json.loads(line, parse_float=Decimal, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError) as exc:
            return SourceItem(position, raw, error=f"not valid JSON: {exc}")
        return SourceItem(position, raw, value)
    raw = text.rstrip("\r\n")
    try:
        # The common case, UTF-8 without BOM: one decoder for every line (json.loads with
        # keyword arguments builds a new decoder per call, a third of the parse time).
        value = _DECODER.decode(text)
    except ValueError as exc:
        return SourceItem(position, raw, error=f"not valid JSON: {exc}")
    return SourceItem(position, raw, value)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants)


def _loc(parts: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in parts)
