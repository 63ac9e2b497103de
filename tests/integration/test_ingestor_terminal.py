"""The replay on a terminal: log lines go through the same console as the progress bar and the
summary table, so no JSON line cuts through them (stdout and stderr are one pseudo-terminal,
as in a shell)."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys

import pytest

from common.settings import KafkaSettings
from tests.conftest import REPO, SAMPLE_DATASET

pytestmark = pytest.mark.kafka
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=120), ANSI.sub("", b"".join(chunks).decode(errors="replace"))


async def test_logs_never_interleave_with_the_summary_on_a_terminal(kafka_settings: KafkaSettings) -> None:
    env = {**os.environ, "KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix, "COLUMNS": "120",
           "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers}
    args = [sys.executable, "-m", "ingestor", "replay", str(SAMPLE_DATASET)]
    code, screen = await asyncio.to_thread(run_on_terminal, args, env)
    assert code == 0, screen
    assert '{"ts"' not in screen  # no raw JSON log line on a terminal
    table = screen[screen.index("replay of sample_tweets.json") :]
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert any("published to" in row and "40" in row for row in rows)
    assert all(line.startswith(("│", "└", "┌", "├")) or "replay summary" in line or not line.strip()
               for line in table.splitlines()[1:])  # the table's lines are whole, then the summary log
