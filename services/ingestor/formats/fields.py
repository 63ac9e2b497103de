"""Field helpers the format adapters share: exact ids, counts, hashtags, nested objects.

Adapters raise :class:`RecordError` for what they can judge better than the model (an id that
arrived as a JSON float, a date no parser understands), so the reject carries a precise
reason. Everything else is left to ``TweetRecord``'s strict validation. The helpers every entry
point needs are part of the contract: import ids, objects and :class:`RecordError` from
``common.records``, dates from ``common.timestamps``.
"""

from __future__ import annotations

import re
from typing import Any

from common.records import RecordError, obj

_DIGITS = re.compile(r"[0-9]+")
_HASHTAG_IN_TEXT = re.compile(r"(?<![\w&])#(\w+)")
_HASHTAG_SPLIT = re.compile(r"[\s,;|]+")


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

