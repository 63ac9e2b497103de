"""Source formats: their names, and the detection that picks one from a file's name and first
bytes (``--format`` overrides it). The adapters that map one record to ``TweetRecord`` fields
live beside it (``tabular``, ``twitter_api``; the nested shape in ``common.records``), and
``ingestor.source`` picks one by format name.

The container (JSON array, JSON Lines, one JSON object, CSV) is always read from the first
bytes; the format name picks the adapter. So ``nested`` and ``jsonl`` share an adapter, and
``twitter-v1`` may be an array or JSON Lines. Detection reads only a file's head (or its first
line), never a record past it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from typing import IO, Any, Literal

import ijson

from ingestor.errors import SourceFormatError
from ingestor.formats.tabular import DEFAULT_COLUMNS, REQUIRED_COLUMNS
from ingestor.pages import flattened

Container = Literal["json-array", "json-lines", "json-object", "csv"]

FORMATS: dict[str, str] = {
    "nested": "the spec's nested JSON array (id, user, meta, payload.tweet.content, metrics)",
    "jsonl": "JSON Lines of the nested shape",
    "twitter-v1": "Twitter API v1.1 tweet objects, as a JSON array or JSON Lines",
    "twitter-v2": "Twitter API v2 response pages (data[] + includes.users[]): one per line (twarc2), "
    "a JSON array of them, or one or more objects",
    "csv": "CSV with a header (Kaggle-style or twarc-csv; columns mapped by name, see --columns)",
    "sentiment140": "headerless CSV: target,id,date,flag,user,text",
}
_SENTIMENT140_DATE = re.compile(r"^\w{3} \w{3} \d{1,2} \d{2}:\d{2}:\d{2} [A-Z]{1,5} \d{4}$")
_BOM = b"\xef\xbb\xbf"
MAX_FIRST_LINE = 64 * 1024 * 1024  # a first line longer than this is not a JSON Lines record


def supported() -> str:
    return ", ".join(FORMATS)


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise SourceFormatError(f"unknown format {name!r}; supported formats: {supported()}")
    return name


def json_container(head: bytes) -> Container:
    """``[`` → array; ``{`` whose first line is a whole object → JSON Lines; else one object."""
    text = head.removeprefix(_BOM).lstrip()
    if text.startswith(b"["):
        return "json-array"
    if text.startswith(b"{"):
        return "json-lines" if _first_line_object(text) is not None else "json-object"
    return "csv"


def file_container(handle: IO[bytes], head: bytes) -> Container:
    """The container, reading the whole first line when it is longer than the head: a
    response page of 100 tweets easily exceeds 64 KB, and its file is still JSON Lines."""
    container = json_container(head)
    if container == "json-object" and b"\n" not in head.rstrip(b"\r\n"):
        first = handle.readline(MAX_FIRST_LINE)
        handle.seek(0)
        if _first_line_object(first) is not None:
            container = "json-lines"
    return container


def detect(name: str, head: bytes) -> str:
    """The format of a source from its name and first bytes, or a :class:`SourceFormatError`."""
    text = head.removeprefix(_BOM).lstrip()
    if not text:
        raise SourceFormatError(f"{name} is empty; supported formats: {supported()}")
    container = json_container(text)
    shape: str | None = None
    if container == "json-array":
        shape = _array_shape(text)
        shape = "nested" if shape == "jsonl" else shape
    elif container == "json-lines":
        shape = _shape(_first_line_object(text))
    elif container == "json-object":
        shape = "twitter-v2" if _top_level_keys(text) & {"data", "includes"} else None
    else:
        shape = _csv_shape(text)
    if shape is None:
        looks = "neither JSON nor a CSV with a known header" if container == "csv" else container
        raise SourceFormatError(
            f"cannot tell the format of {name} (looks like {looks}); " f"pass --format with one of: {supported()}"
        )
    return shape


def _shape(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("data"), list | dict) or flattened(value):
        return "twitter-v2"  # before "meta": v2 responses carry one too
    if "payload" in value or "meta" in value:
        return "jsonl"
    user = value.get("user")
    if {"id_str", "full_text", "extended_tweet"} & value.keys() or (isinstance(user, dict) and "screen_name" in user):
        return "twitter-v1"
    return None


def _first_line_object(text: bytes) -> Any:
    try:
        value = json.loads(text.split(b"\n", 1)[0], parse_float=Decimal)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _array_shape(text: bytes) -> str | None:
    try:
        first = next(ijson.items(io.BytesIO(text), "item"), None)
    except ijson.JSONError:
        # The first element is longer than the peeked head (a page of v2 responses), or broken.
        return "twitter-v2" if _top_level_keys(text, "item") & {"data", "includes"} else None
    return _shape(first)


def _top_level_keys(text: bytes, container: str = "") -> set[str]:
    """Keys of the top-level object (or of the first array element, ``container="item"``)."""
    keys: set[str] = set()
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(text)):
            if prefix == container and event == "map_key":
                keys.add(value)
    except ijson.JSONError:
        pass  # the head is cut mid-document; the keys seen so far are enough
    return keys


def _csv_shape(text: bytes) -> str | None:
    first_line = text.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        row = next(csv.reader([first_line]), [])
    except csv.Error:
        return None
    if (
        len(row) == 6
        and row[0].strip() in {"0", "2", "4"}
        and row[1].strip().isdigit()
        and _SENTIMENT140_DATE.match(row[2].strip())
    ):
        return "sentiment140"
    header = {cell.strip().lower() for cell in row}
    known = sum(1 for field in REQUIRED_COLUMNS if header & set(DEFAULT_COLUMNS[field]))
    return "csv" if known >= 2 else None
