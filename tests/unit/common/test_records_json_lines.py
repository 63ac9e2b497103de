"""``parse_json_line``: jiter for UTF-8 lines (non-integers as ``Decimal``), the stdlib decoder for
what jiter refuses, ``json.loads`` on the bytes for the rest: the stdlib's values and errors,
and so the same outcome for every record."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.events import RejectedRecord, TweetRecord
from common.json_lines import parse_json_line
from common.records import SourceItem, map_nested, to_outcome

# What the ingestor parsed every JSON Lines line with before jiter: the values to match.
STDLIB = json.JSONDecoder(parse_float=Decimal, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))

EXACT = [
    (b'{"id": 1921567810453299200, "x": 1.5}\n', {"id": 1921567810453299200, "x": Decimal("1.5")}),
    (b'{"id": 12345678901234567890123}\r\n', {"id": 12345678901234567890123}),  # beyond 64 bits: exact
    (b"[1e400]", [Decimal("1E+400")]),  # never a float, never inf
    (b"[18446744073709551615, -9223372036854775808]", [2**64 - 1, -(2**63)]),
    ('{"text": "caf\u00e9 \\u00e9 \\ud83d\\ude00"}\n'.encode(), {"text": "caf\u00e9 \u00e9 \U0001f600"}),
    (b'{"text": "\\ud800"}', {"text": "\ud800"}),  # a lone surrogate: jiter refuses it, the stdlib keeps it
    (b'{"a": 1, "a": 2}', {"a": 2}),  # the last of repeated keys, as json.loads
    (b'\xef\xbb\xbf{"id": 1}\n', {"id": 1}),  # a BOM, as json.loads accepts it on bytes
    ('{"id": 2}'.encode("utf-16"), {"id": 2}),  # detected like json.loads does
]


@pytest.mark.parametrize(("line", "value"), EXACT)
def test_values_are_exact(line: bytes, value: object) -> None:
    item = parse_json_line(line, "line 1")
    assert item.error is None and item.value == value and item.position == "line 1"
    assert json.dumps(item.value, default=repr) == json.dumps(value, default=repr)  # Decimal stays Decimal, int int
    assert item.raw == line.decode("utf-8", errors="replace").rstrip("\r\n")


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": 1921567810453299200, "n": [1, -2, 0, -0.0, 1.50, 2E+3, 1e-400], "t": true, "f": null}\n',
        b'{"s": "a.1e5 \\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9"}',
        '{"text": "caf\u00e9 \U0001f600", "nested": {"deep": [[{}], []]}, "": 0}'.encode(),
        b'  [ 1 , 2 ]  \r\n',
    ],
)
def test_values_are_the_stdlib_decoders(line: bytes) -> None:
    value = parse_json_line(line, "line 1").value
    expected = STDLIB.decode(line.decode())
    assert value == expected and json.dumps(value, default=repr) == json.dumps(expected, default=repr)


NUMBER = "@number@"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False).map(lambda number: f"{NUMBER}{number}{NUMBER}"),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES, st.booleans())
def test_any_json_document_parses_to_the_stdlib_decoders_values(value: object, ascii_only: bool) -> None:
    """Generated documents (big integers, Decimals in every notation, any text, escaped or not):
    the same values, of the same types, as the decoder the ingestor used before jiter."""
    # A Decimal is generated as a marked string and written as the bare number it holds.
    line = re.sub(f'"{NUMBER}(.*?){NUMBER}"', r"\1", json.dumps(value, ensure_ascii=ascii_only)).encode() + b"\n"
    text = line.decode()
    try:
        expected = STDLIB.decode(text)
    except (ValueError, RecursionError):
        return  # not JSON the stdlib takes (nothing to compare): errors are compared above
    item = parse_json_line(line, "line 1")
    assert item.error is None
    assert item.value == expected and json.dumps(item.value, default=repr) == json.dumps(expected, default=repr)


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


def _line(**changes: Any) -> bytes:
    record = {
        "id": 1921567810453299200,
        "user": {"username": "A", "handle": "@a", "verified": False},
        "meta": {"created_at": "2025-02-19T10:00:00Z", "hashtags": ["#x"]},
        "payload": {"tweet": {"content": "hello"}},
        "metrics": {"retweets": 1, "likes": 2},
    }
    text = json.dumps(record)
    for placeholder, literal in changes.items():
        text = text.replace(f'"{placeholder}"', literal)
    return text.encode()


@pytest.mark.parametrize(
    "line",
    [
        _line(),
        _line().replace(b'"2025-02-19T10:00:00Z"', b"1739959200.123456"),  # an epoch with a fraction: valid
        _line().replace(b"1921567810453299200", b"1921567810453299200.0"),
        _line().replace(b"1921567810453299200", b"1.9215678104532992e18"),
        _line().replace(b"1921567810453299200", b"19215678104532992001234"),  # beyond 64 bits
        _line().replace(b'"likes": 2', b'"likes": 2.0'),
        _line().replace(b'"verified": false', b'"verified": 0.0'),
        _line().replace(b'"hello"', b"1.5"),
        _line().replace(b'"#x"', b"1e3"),
        _line().replace(b'"2025-02-19T10:00:00Z"', b"1e400"),  # beyond a float: an exact Decimal, a rejected date
        # Numbers a float would round to a falsy 0.0: the Decimal is truthy, so the handle is the
        # number (a reject), not the username; and the record language is not the meta one.
        _line().replace(b'"@a"', b"1e-400"),
        _line().replace(b'"@a"', b"0." + b"0" * 330 + b"1"),
        _line().replace(b'"@a"', b"-1E-400"),
        _line().replace(b'"hello"', b'"hello", "lang": 1e-400').replace(b'"hashtags"', b'"lang": "en", "hashtags"'),
        _line().replace(b'"@a"', b"0.0"),  # a real zero: falsy either way, the username is the handle
    ],
)
def test_every_outcome_is_the_stdlib_parse_s(line: bytes) -> None:
    """Valid or rejected, a record is judged as from the stdlib's parse: the same tweet, or the
    same reason and message with every digit the file had."""
    fast = to_outcome(parse_json_line(line, "line 7"), map_nested, "s.jsonl")
    exact = to_outcome(SourceItem("line 7", line.decode(), STDLIB.decode(line.decode())), map_nested, "s.jsonl")
    assert type(fast) is type(exact)
    if isinstance(fast, TweetRecord):
        assert fast.model_dump(exclude={"ingested_at"}) == exact.model_dump(exclude={"ingested_at"})
    else:
        assert isinstance(fast, RejectedRecord) and isinstance(exact, RejectedRecord)
        assert fast.model_dump(exclude={"rejected_at"}) == exact.model_dump(exclude={"rejected_at"})


def test_a_float_id_is_rejected_with_the_digits_the_file_had() -> None:
    line = _line().replace(b"1921567810453299200", b"1921567810453299201.0")
    outcome = to_outcome(parse_json_line(line, "line 2"), map_nested, "s.jsonl")
    assert isinstance(outcome, RejectedRecord) and outcome.reason == "invalid_type:id"
    assert "1921567810453299201.0" in outcome.errors[0].msg  # a float would print 1.9215678104532992e+18


def test_an_epoch_with_a_fraction_keeps_its_microseconds() -> None:
    line = _line().replace(b'"2025-02-19T10:00:00Z"', b"1739959200.123456")
    outcome = to_outcome(parse_json_line(line, "line 2"), map_nested, "s.jsonl")
    assert isinstance(outcome, TweetRecord) and outcome.created_at.microsecond == 123456


def test_a_line_nested_too_deeply_is_one_bad_record_not_a_crash() -> None:
    item = parse_json_line(b'{"x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}\n", "line 9")
    assert item.value is None and item.error is not None and item.error.startswith("not valid JSON: maximum recursion")
