"""Field helpers the format adapters share: exact ids, counts, hashtags, nested objects.

Adapters raise :class:`RecordError` for what they can judge better than the model (an id that
arrived as a JSON float, a date no parser understands), so the reject carries a precise
reason. Everything else is left to ``TweetRecord``'s strict validation.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from common.events import MAX_TWEET_ID, ValidationIssue

_DIGITS = re.compile(r"[0-9]+")
_HASHTAG_IN_TEXT = re.compile(r"(?<![\w&])#(\w+)")
_HASHTAG_SPLIT = re.compile(r"[\s,;|]+")


class RecordError(Exception):
    """A source record that cannot become a ``TweetRecord``; ``reason`` is the reject category."""

    def __init__(self, reason: str, msg: str, loc: str = "", type_: str = "adapter_error") -> None:
        super().__init__(f"{reason}: {msg}")
        self.reason = reason
        self.issues = [ValidationIssue(loc=loc or reason.partition(":")[2], msg=msg, type=type_)]


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


def count(value: Any, field: str) -> Any:
    """A CSV cell as an int; JSON values pass through so the strict model judges their type."""
    if not isinstance(value, str):
        return value
    cell = value.strip()
    if cell == "":
        return None
    if not _DIGITS.fullmatch(cell):
        raise RecordError(f"invalid_type:{field}", f"expected a whole number, got {cell[:40]!r}")
    return int(cell)


def hashtags_from_cell(cell: str) -> list[str]:
    """Kaggle spellings: ``['#a', '#b']``, ``a,b``, ``#a #b``, ``[]``."""
    inner = cell.strip().removeprefix("[").removesuffix("]")
    tags = (part.strip().strip("'\"").lstrip("#") for part in _HASHTAG_SPLIT.split(inner))
    return [tag for tag in tags if tag]


def hashtags_from_text(text: Any) -> list[str]:
    return _HASHTAG_IN_TEXT.findall(text) if isinstance(text, str) else []


def entity_tags(entities: Any, key: str, source: str) -> list[Any]:
    """``entities.hashtags[].<key>`` (``text`` in API v1.1, ``tag`` in v2)."""
    tags = obj(entities, source).get("hashtags") or []
    if not isinstance(tags, list):
        raise RecordError("invalid_type:hashtags", f"{source}.hashtags is not a list")
    return [obj(tag, "hashtags").get(key) for tag in tags]


def prune(record: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values so the model's defaults and 'missing' errors apply."""
    return {key: value for key, value in record.items() if value is not None}
