"""The CLI's failure paths need no broker: they must fail fast and clearly, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingestor.cli import app

SAMPLE = Path(__file__).parents[3] / "data" / "sample_tweets.json"
FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner(mix_stderr=False)


def test_unreachable_kafka_fails_fast_with_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # discard port: nothing listens
    result = runner.invoke(app, ["replay", str(SAMPLE)])
    assert result.exit_code == 3
    assert "cannot reach Kafka at 127.0.0.1:9" in result.stderr and "make up" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_undetectable_file_exits_2_naming_the_formats() -> None:
    result = runner.invoke(app, ["replay", str(FIXTURES / "prose.txt")])
    assert result.exit_code == 2
    assert "twitter-v2" in result.stderr and "--format" in result.stderr


def test_bad_columns_option_exits_2() -> None:
    result = runner.invoke(app, ["replay", str(FIXTURES / "custom_columns.csv"), "--columns", "colour=red"])
    assert result.exit_code == 2 and "unknown field 'colour'" in result.stderr


def test_formats_command_lists_every_format() -> None:
    result = runner.invoke(app, ["formats"])
    assert result.exit_code == 0
    for name in ("nested", "jsonl", "twitter-v1", "twitter-v2", "csv", "sentiment140"):
        assert name in result.stderr
