"""``parse_json_line``: one shared decoder for UTF-8 lines, ``json.loads`` on the bytes for the rest,
the same values and the same errors either way."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from common.json_lines import parse_json_line


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b'{"id": 1921567810453299200, "x": 1.5}\n', {"id": 1921567810453299200, "x": Decimal("1.5")}),
        (b'{"id": 12345678901234567890123}\r\n', {"id": 12345678901234567890123}),  # beyond 64 bits: exact
        (b'[1e400]', [Decimal("1E+400")]),  # never a float, never inf
        ('{"text": "caf\u00e9"}\n'.encode(), {"text": "caf\u00e9"}),
        (b'\xef\xbb\xbf{"id": 1}\n', {"id": 1}),  # a BOM, as json.loads accepts it on bytes
        ('{"id": 2}'.encode("utf-16"), {"id": 2}),  # detected like json.loads does
    ],
)
def test_values_are_exact(line: bytes, value: object) -> None:
    item = parse_json_line(line, "line 1")
    assert item.error is None and item.value == value and item.position == "line 1"
    assert item.raw == line.decode("utf-8", errors="replace").rstrip("\r\n")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"a": NaN}\n', "NaN is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a":', "Expecting value: line 1 column 6 (char 5)"),
        (b'"x" "y"', "Extra data: line 1 column 5 (char 4)"),
        (b'{"a": "\xff"}', "'utf-8' codec can't decode byte 0xff in position 7: invalid start byte"),
    ],
)
def test_errors_read_as_json_loads_reports_them(line: bytes, error: str) -> None:
    item = parse_json_line(line, "line 3")
    assert item.value is None and item.error == f"not valid JSON: {error}"
    assert item.raw == line.decode("utf-8", errors="replace").rstrip("\r\n")
    with pytest.raises((ValueError, UnicodeDecodeError)):
        json.loads(line, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
