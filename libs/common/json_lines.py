"""JSON Lines bytes → :class:`common.records.SourceItem`: one parsed line, or the parse error it carries."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson

from common.records import EXACT_JSON, SourceItem, no_constants


def json_line_item(line: bytes, number: int) -> SourceItem:
    """One JSON Lines line as a :class:`SourceItem`; non-integers stay ``Decimal`` (exact ids)."""
    return parse_json_line(line, f"line {number}")


def parse_json_line(line: bytes, position: str, *, exact: bool = False) -> SourceItem:
    """``line`` parsed as JSON, or an item carrying the parse error: never raises.

    By orjson unless ``exact``, at a third of the stdlib decoder's cost. orjson reads a number
    with a fraction or an exponent, and an integer beyond 64 bits, as a float, so its items are
    marked ``approximate``: ``common.records.to_outcome`` judges a reject again on the exact
    parse (non-integers as ``Decimal``, integers whole), so its reason keeps every digit. No
    valid tweet takes a float from its record (ids, counts, dates and texts reject one), so a
    valid outcome is the same either way."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith("\ufeff"):
        # json.loads on the bytes: it detects a BOM or UTF-16/32, and reports bad UTF-8.
        raw = line.decode("utf-8", errors="replace").rstrip("\r\n")
        try:
            value = json.loads(line, parse_float=Decimal, parse_constant=no_constants)
        except (ValueError, UnicodeDecodeError) as exc:
            return SourceItem(position, raw, error=f"not valid JSON: {exc}")
        return SourceItem(position, raw, value)
    raw = text.rstrip("\r\n")
    if not exact:
        try:
            return SourceItem(position, raw, orjson.loads(line), approximate=True)
        except orjson.JSONDecodeError:
            pass  # decoded again below, so the error is the stdlib's
    try:
        value = EXACT_JSON.decode(text)
    except ValueError as exc:
        return SourceItem(position, raw, error=f"not valid JSON: {exc}")
    return SourceItem(position, raw, value)

