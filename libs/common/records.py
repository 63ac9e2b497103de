"""Source records → ``TweetRecord``: the part of the contract every entry point shares.

The ingestor's replay and the gateway's ``POST /ingest`` judge a record the same way: the
spec's nested layout is mapped by :func:`map_nested`, timestamps are read by
:mod:`common.timestamps`, JSON Lines bytes by :mod:`common.json_lines`, and :func:`to_outcome`
returns either a valid ``TweetRecord`` or a ``RejectedRecord`` whose reason names the first bad
field (``missing_field:text``, ``invalid_date:created_at``...).

Adapters raise :class:`RecordError` for what they can judge better than the model (an id that
arrived as a JSON float, a date no parser understands), so the reject carries a precise reason.

Every ingested tweet passes through here, so the common case is kept short: an id that is
already a canonical digit string is taken as is, the nested layout is mapped without building
intermediate dicts, and a record's raw text is made only when it is rejected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from common.events import MAX_TWEET_ID, RejectedRecord, TweetRecord, ValidationIssue
from common.timestamps import parse_datetime

# Kafka's default message limit is 1 MB; a reject keeps enough of the raw record to find it.
MAX_RAW_CHARS = 100_000
NOT_JSON = "not_json"

Adapter = Callable[[Any], dict[str, Any]]
_DIGITS = re.compile(r"[0-9]+")
_MAX_ID_DIGITS = str(MAX_TWEET_ID)


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
    if (
        type(value) is str
        and value.isascii()
        and value.isdigit()
        and value[0] != "0"
        and (len(value) < 19 or (len(value) == 19 and value <= _MAX_ID_DIGITS))
    ):
        # The common case: canonical digits. Up to 18 are always within range; today's ids have
        # 19, within range when not above the maximum (equal lengths compare as numbers).
        return value
    if type(value) is int and 0 < value <= MAX_TWEET_ID:
        return str(value)  # a JSON integer (the spec's own layout): one conversion, not three
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


# --- the spec's nested layout -----------------------------------------------------------------


def map_nested(record: Any) -> dict[str, Any]:
    """The spec's nested shape → the flat fields of a ``TweetRecord`` (``created_at`` may be a
    bare date: midnight UTC)::

    {"id": 1, "user": {"username": "...", "handle": "@...", "verified": false},
     "meta": {"created_at": "2025-02-19", "hashtags": ["#Tag"]},
     "payload": {"tweet": {"content": "..."}},
     "metrics": {"retweets": 4066, "likes": 9543}}

    Read by the ingestor's default format and by the gateway's ``POST /ingest``; what it cannot
    map raises :class:`RecordError` with the reason that names the field.
    """
    # ``type(...) is dict`` first: the objects are dicts in all but a bad record, so ``obj`` (its
    # None and error cases) is called only then.
    if type(record) is not dict:
        record = obj(record, "record")
    user, meta, payload = record.get("user"), record.get("meta"), record.get("payload")
    user = user if type(user) is dict else obj(user, "user")
    meta = meta if type(meta) is dict else obj(meta, "meta")
    tweet = (payload if type(payload) is dict else obj(payload, "payload")).get("tweet")
    tweet = tweet if type(tweet) is dict else obj(tweet, "payload.tweet")
    metrics = record.get("metrics")
    if metrics is not None:
        metrics = metrics if type(metrics) is dict else obj(metrics, "metrics")
        metrics = {"retweets": metrics.get("retweets"), "likes": metrics.get("likes")}
    if "id" not in record:
        raise RecordError("missing_field:id", "field required", type_="missing")
    id_ = tweet_id(record["id"])  # in this order, so the first bad field is the one reported
    user_id = optional_id(user.get("user_id"), "author.user_id")
    created_at = parse_datetime(meta.get("created_at"))
    # An optional field given as None validates as an absent one (its default is None); a
    # required one is left out when absent, so the model reports it missing. No dict is copied.
    author = {"username": user.get("username"), "user_id": user_id, "verified": user.get("verified")}
    fields = {"id": id_, "author": author, "created_at": created_at, "metrics": metrics,
              "lang": record.get("lang") or meta.get("lang")}
    handle, text, hashtags = user.get("handle") or user.get("username"), tweet.get("content"), meta.get("hashtags")
    if handle is not None:
        author["handle"] = handle
    if text is not None:
        fields["text"] = text
    if hashtags is not None:
        fields["hashtags"] = hashtags
    return fields


# --- validation outcome ---------------------------------------------------------------------


@dataclass(slots=True)
class SourceItem:
    """One record as read: parsed ``value``, or ``error`` when the bytes could not be parsed.

    ``raw`` is the record's text, which a reject keeps (:meth:`raw_text`); ``None`` for a record
    with no text of its own (one of a JSON array): ``value`` re-serialised, made only if rejected.
    """

    position: str  # "record 3" (JSON array), "line 3" (JSON Lines), "row 3" (CSV)
    raw: str | None
    value: Any = None
    error: str | None = None
    reason: str = NOT_JSON  # the reject category when ``error`` is set

    def raw_text(self) -> str:
        return raw_json(self.value) if self.raw is None else self.raw


Outcome = TweetRecord | RejectedRecord
_validate = TweetRecord.__pydantic_validator__.validate_python  # model_validate, minus its wrapper


def to_outcome(item: SourceItem, adapter: Adapter, source: str) -> Outcome:
    """Validate one source item against the strict model; never raises for bad data."""
    if item.error is not None:
        issue = ValidationIssue(loc="", msg=item.error, type=item.reason)
        return reject(item, source, item.reason, [issue])
    try:
        fields = adapter(item.value)
        tweet: TweetRecord = _validate({**fields, "source": source})
        return tweet
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
        source=source, position=item.position, reason=reason, errors=issues, raw=item.raw_text()[:MAX_RAW_CHARS]
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
