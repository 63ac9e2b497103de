"""JSON Lines bytes → :class:`common.records.SourceItem`: one parsed line, or the parse error it carries."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import jiter

from common.records import SourceItem


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
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return SourceItem(position, raw, error=f"not valid JSON: {exc}")
        return SourceItem(position, raw, value)
    raw = text.rstrip("\r\n")
    try:
        # The common case, UTF-8 without BOM: jiter (pydantic's JSON parser), non-integers as
        # Decimal and integers whole as the stdlib decoder gives them, at half its cost.
        return SourceItem(position, raw, jiter.from_json(line, float_mode="decimal", allow_inf_nan=False))
    except ValueError:
        pass  # decoded again below, so the error text (and a lone surrogate, which jiter refuses) is the stdlib's
    try:
        # One decoder for every line (json.loads with keyword arguments builds a new decoder per call).
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:  # nested deeper than the stdlib decoder goes: one bad record
        return SourceItem(position, raw, error=f"not valid JSON: {exc}")
    return SourceItem(position, raw, value)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants)
