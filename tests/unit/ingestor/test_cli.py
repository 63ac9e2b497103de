"""The CLI's failure paths need no broker: they must fail fast and clearly, without a traceback.
The commands run what ``main`` wires in (``Runs``), as ``python -m ingestor`` does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingestor.cli import ReplayOptions, Runs, app
from ingestor.logic import ReplaySummary
from ingestor.main import replay, watch
from ingestor.replay import ProgressCallback
from ingestor.settings import IngestorSettings

SAMPLE = Path(__file__).parents[3] / "data" / "sample_tweets.json"
FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parents[3]
RUNS = Runs(replay=replay, watch=watch)
runner = CliRunner(mix_stderr=False)


def test_unreachable_kafka_fails_fast_with_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # discard port: nothing listens
    result = runner.invoke(app, ["replay", str(SAMPLE)], obj=RUNS)
    assert result.exit_code == 3
    assert "cannot reach Kafka at 127.0.0.1:9" in result.stderr and "make up" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_undetectable_file_exits_2_naming_the_formats() -> None:
    result = runner.invoke(app, ["replay", str(FIXTURES / "prose.txt")], obj=RUNS)
    assert result.exit_code == 2
    assert "twitter-v2" in result.stderr and "--format" in result.stderr


def test_bad_columns_option_exits_2() -> None:
    result = runner.invoke(app, ["replay", str(FIXTURES / "custom_columns.csv"), "--columns", "colour=red"], obj=RUNS)
    assert result.exit_code == 2 and "unknown field 'colour'" in result.stderr


def test_formats_command_lists_every_format() -> None:
    result = runner.invoke(app, ["formats"], obj=RUNS)
    assert result.exit_code == 0
    for name in ("nested", "jsonl", "twitter-v1", "twitter-v2", "csv", "sentiment140"):
        assert name in result.stderr


def test_python_dash_m_starts_the_command_line_through_main() -> None:
    paths = [str(REPO / "libs"), str(REPO / "services"), str(REPO)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(
        [sys.executable, "-m", "ingestor", "formats"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "twitter-v2" in result.stderr and "sentiment140" in result.stderr


def test_the_replay_command_hands_its_options_to_the_run_whole() -> None:
    asked: list[ReplayOptions] = []

    async def recording(
        path: str,
        settings: IngestorSettings,
        options: ReplayOptions,
        *,
        stopping: asyncio.Event | None,
        on_progress: ProgressCallback | None,
    ) -> ReplaySummary:
        asked.append(options)
        return ReplaySummary(source=path, topics={})

    options = ["--format", "nested", "--limit", "3", "--rate", "5", "--skip-existing"]
    result = runner.invoke(app, ["replay", str(SAMPLE), *options], obj=Runs(replay=recording, watch=watch))
    assert result.exit_code == 0, result.stderr
    assert asked == [ReplayOptions(fmt="nested", limit=3, rate=5.0, skip_existing=True)]


def test_commands_without_wired_runs_say_so() -> None:
    result = runner.invoke(app, ["replay", str(SAMPLE)])
    assert result.exit_code != 0 and "main.main()" in str(result.exception)


def test_the_replay_command_starts_as_many_reading_processes_as_the_file_will_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started ahead while the command starts (``reader.warm_up``): lanes for large JSON Lines,
    one for another large file, none for a small file (read in a thread)."""
    from ingestor import cli

    warmed: list[int] = []
    monkeypatch.setattr(cli, "warm_up", warmed.append)
    monkeypatch.setenv("INGESTOR_READER_PROCESS_MIN_BYTES", "100")
    monkeypatch.setenv("INGESTOR_READER_PROCESSES", "3")
    lines, array, small = tmp_path / "a.jsonl", tmp_path / "a.json", tmp_path / "s.jsonl"
    lines.write_text('{"id": "1"}\n' * 20)
    array.write_text("[" + ",".join(['{"id": "1"}'] * 20) + "]")
    small.write_text('{"id": "1"}\n')

    async def nothing(path: str, *args: object, **kwargs: object) -> ReplaySummary:
        return ReplaySummary(source=path, topics={})

    for path in (lines, array, small):
        result = runner.invoke(app, ["replay", str(path)], obj=Runs(replay=nothing, watch=watch))
        assert result.exit_code == 0, result.stderr
    assert warmed == [3, 1]
