from __future__ import annotations

from pathlib import Path

import pytest

from ingestor.errors import SourceFormatError
from ingestor.formats import check_format, detect, json_container

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = Path(__file__).parents[3] / "data" / "sample_tweets.json"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (SAMPLE, "nested"),
        (FIXTURES / "truncated.json", "nested"),
        (FIXTURES / "nested.jsonl", "jsonl"),
        (FIXTURES / "v1_statuses.json", "twitter-v1"),
        (FIXTURES / "v1_statuses.jsonl", "twitter-v1"),
        (FIXTURES / "v2_response.json", "twitter-v2"),
        (FIXTURES / "v2_responses.jsonl", "twitter-v2"),
        (FIXTURES / "kaggle_tweets.csv", "csv"),
        (FIXTURES / "sentiment140.csv", "sentiment140"),
    ],
)
def test_detects_every_fixture(path: Path, expected: str) -> None:
    assert detect(path.name, path.read_bytes()[:65536]) == expected


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b'\xef\xbb\xbf  [{"id": 1}]', "json-array"),
        (b'{"id": 1}\n{"id": 2}\n', "json-lines"),
        (b'{\n  "data": []\n}', "json-object"),
        (b"id,text\n", "csv"),
    ],
)
def test_container_from_first_bytes(head: bytes, container: str) -> None:
    assert json_container(head) == container


@pytest.mark.parametrize(
    "head",
    [b"hello, this is\njust some prose\n", b"", b"   \n", b'[{"something": "else"}]', b'{"a": 1}\n', b"[1, 2"],
)
def test_undecidable_input_names_the_supported_formats(head: bytes) -> None:
    with pytest.raises(SourceFormatError, match="nested, jsonl, twitter-v1, twitter-v2, csv, sentiment140"):
        detect("mystery.dat", head)


def test_unknown_format_name() -> None:
    with pytest.raises(SourceFormatError, match="unknown format 'xml'; supported formats: nested"):
        check_format("xml")
