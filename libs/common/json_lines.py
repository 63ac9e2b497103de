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
    parse (non-integers as ``Decimal``, integers whole), so its reason keeps every digit. A
    valid outcome is the same either way: no valid tweet takes a float from its record (ids,
    counts, dates and texts reject one), and the one way a float could still steer the mapping,
    a tiny number that rounds to a falsy 0.0 where its ``Decimal`` is truthy (``handle or
    username``), is never read by orjson (``_may_underflow``)."""
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
    if not exact and not _may_underflow(line):
        try:
            return SourceItem(position, raw, orjson.loads(line), approximate=True)
        except orjson.JSONDecodeError:
            pass  # decoded again below, so the error is the stdlib's
    try:
        value = EXACT_JSON.decode(text)
    except ValueError as exc:
        return SourceItem(position, raw, error=f"not valid JSON: {exc}")
    return SourceItem(position, raw, value)



def _may_underflow(line: bytes) -> bool:
    """Whether ``line`` may hold a number too small for a float (0.0 where its ``Decimal`` is
    not zero): one needs a negative exponent or over 300 zeros after its point. Text has such
    bytes too ("re-elect"): those lines, about 3 in 100, take the exact decoder, nothing else."""
    return b"e-" in line or b"E-" in line or b".0000000000" in line
