"""CSV sources: Kaggle-style files with a header, and the headerless Sentiment140 file.

Header names are matched case-insensitively against :data:`DEFAULT_COLUMNS`; the first name
in each tuple that the header has wins. ``--columns text=body,id=tweet_key`` overrides any of
them. Without a ``hashtags`` column, hashtags are taken from the text. twarc-csv's flattened
Twitter v2 tweets (``twarc2 csv``: ``author.username``, ``public_metrics.like_count``,
``entities.hashtags`` as a JSON list of ``"#tag"``) map with the same table; its text has
newlines escaped as a literal ``\n``, which becomes a space like any other line break. Rows are numbered like
a spreadsheet: ``row N`` is the physical line the row starts on (the header is row 1).

Cells that are not valid UTF-8 (Sentiment140 is Latin-1/CP1252) arrive as surrogate escapes
from the reader and are decoded as CP1252 here, so one stray byte does not reject a tweet.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from common.records import RecordError, SourceItem, optional_id, prune, tweet_id
from common.timestamps import parse_datetime
from ingestor.errors import SourceFormatError
from ingestor.formats.fields import count, hashtags_from_cell, hashtags_from_text

DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("tweet_id", "id", "id_str"),
    "text": ("text", "content", "tweet", "full_text"),
    "created_at": ("created_at", "date", "tweet_created", "timestamp"),
    # Handle-like names first: a display name ("name") is only a fallback for the handle.
    "author": ("screen_name", "username", "user_name", "user", "author", "author.username", "name"),
    "user_id": ("user_id", "author_id", "author.id"),
    "likes": ("likes", "like_count", "favorite_count", "favorites", "public_metrics.like_count"),
    "retweets": ("retweets", "retweet_count", "public_metrics.retweet_count"),
    "hashtags": ("hashtags", "entities.hashtags"),
    "lang": ("lang", "language"),
}
REQUIRED_COLUMNS = ("id", "text", "created_at", "author")
SENTIMENT140_COLUMNS = ("target", "id", "date", "flag", "user", "text")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")

RowMapper = Callable[[Any], dict[str, Any]]


class ColumnError(SourceFormatError):
    """The header cannot supply a required field; the message says how to map it."""


def parse_column_overrides(spec: str | None) -> dict[str, str]:
    """``"text=body,id=tweet_key"`` → ``{"text": "body", "id": "tweet_key"}``."""
    overrides: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not column:
            raise ColumnError(f"--columns entry {part.strip()!r} is not FIELD=COLUMN")
        if field not in DEFAULT_COLUMNS:
            raise ColumnError(f"--columns names unknown field {field!r}; fields: {', '.join(DEFAULT_COLUMNS)}")
        overrides[field] = column
    return overrides


def resolve_columns(header: Sequence[str], overrides: Mapping[str, str] | None = None) -> dict[str, int]:
    """Map each field to its column index, or raise :class:`ColumnError` naming what is missing."""
    positions = {name.strip().lower(): index for index, name in enumerate(header)}
    resolved: dict[str, int] = {}
    for field, candidates in DEFAULT_COLUMNS.items():
        if overrides and field in overrides:
            wanted = overrides[field].strip().lower()
            if wanted not in positions:
                raise ColumnError(f"--columns maps {field} to {overrides[field]!r}, which is not in the header")
            resolved[field] = positions[wanted]
            continue
        found = next((positions[name] for name in candidates if name in positions), None)
        if found is not None:
            resolved[field] = found
    missing = [field for field in REQUIRED_COLUMNS if field not in resolved]
    if missing:
        raise ColumnError(
            f"no column for {', '.join(missing)} in header {list(header)}; "
            f"map them with --columns, e.g. --columns {missing[0]}=<header name>"
        )
    return resolved


def csv_row_mapper(header: Sequence[str], overrides: Mapping[str, str] | None = None) -> RowMapper:
    columns = resolve_columns(header, overrides)
    width = len(header)
    escaped_newlines = any(name.startswith("__twarc.") for name in header)  # twarc-csv writes \n

    def map_row(row: Any) -> dict[str, Any]:
        if len(row) != width:
            raise RecordError("malformed_row", f"expected {width} fields, got {len(row)}", loc="row")
        cells = {field: _decoded(row[index]) for field, index in columns.items()}
        if escaped_newlines and "text" in cells:
            cells["text"] = cells["text"].replace("\\n", " ")
        text = cells.get("text")
        hashtags = cells.get("hashtags")
        return _tweet(
            cells,
            hashtags_from_cell(hashtags) if hashtags else hashtags_from_text(text),
        )

    return map_row


def map_sentiment140(row: Any) -> dict[str, Any]:
    """``target,id,date,flag,user,text``; the sentiment target has no place in the record."""
    if len(row) != len(SENTIMENT140_COLUMNS):
        raise RecordError("malformed_row", f"expected 6 fields, got {len(row)}", loc="row")
    cells = dict(zip(SENTIMENT140_COLUMNS, map(_decoded, row), strict=True))
    cells["created_at"], cells["author"] = cells["date"], cells["user"]
    return _tweet(cells, hashtags_from_text(cells["text"]))


def _tweet(cells: Mapping[str, str], hashtags: list[str]) -> dict[str, Any]:
    return prune(
        {
            "id": tweet_id(cells["id"]),
            "author": prune(
                {
                    "handle": cells.get("author") or None,
                    "user_id": optional_id(cells.get("user_id"), "author.user_id"),
                }
            ),
            "created_at": parse_datetime(cells["created_at"]),
            "text": cells.get("text"),
            "hashtags": hashtags,
            "metrics": prune(
                {
                    "retweets": count(cells.get("retweets"), "metrics.retweets"),
                    "likes": count(cells.get("likes"), "metrics.likes"),
                }
            )
            or None,
            "lang": cells.get("lang") or None,
        }
    )


def _decoded(cell: str) -> str:
    if _ESCAPED_BYTES.search(cell) is None:
        return cell
    return cell.encode("utf-8", "surrogateescape").decode("cp1252", errors="replace")


def csv_items(reader: Any) -> Iterator[SourceItem]:
    """A ``csv.reader``'s rows as items, numbered like a spreadsheet (``row N``: the line the row
    starts on); an unreadable row is an item carrying its error."""
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield SourceItem(f"row {start}", "", error=f"unreadable CSV row: {exc}", reason="malformed_row")
        else:
            if row:
                yield SourceItem(f"row {start}", _csv_line(row), row)
        start = reader.line_num + 1


def _csv_line(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(row)
    return buffer.getvalue().rstrip("\r\n").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
