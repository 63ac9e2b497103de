"""The dead-letter tool's commands over an in-memory store: each takes the same selection options."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner, Result

from common.settings import KafkaSettings
from gateway.dead_letters import Letter, RedriveResult
from gateway.dlq import cli
from gateway.settings import GatewaySettings

PREFIX = "p."
LETTERS = {
    f"{PREFIX}tweets.raw.dlq": [
        Letter(f"{PREFIX}tweets.raw.dlq", 0, 1, "1", "emotion", "invalid_tweet:text", f"{PREFIX}tweets.raw", "{}"),
        Letter(f"{PREFIX}tweets.raw.dlq", 0, 2, "2", "stance", "inference_error", f"{PREFIX}tweets.raw", "{}"),
    ],
    f"{PREFIX}tweets.labels.dlq": [
        Letter(f"{PREFIX}tweets.labels.dlq", 0, 3, "3", "gateway-indexer", "invalid_label:label",
               f"{PREFIX}tweets.labels", "{}"),
    ],
    f"{PREFIX}tweets.rejected": [
        Letter(f"{PREFIX}tweets.rejected", 0, 4, "api:ci", "gateway-api", "missing_field:text", None, "{}"),
    ],
}


class FakeStore:
    """``DeadLetterStore`` without Kafka: the letters above; ``redrive`` records what it was given."""

    redriven_letters: list[Letter] = []

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings

    async def topics(self, *, rejected: bool = True) -> list[str]:
        return [t for t in LETTERS if rejected or not t.endswith("tweets.rejected")]

    async def scan(self, topic: str) -> AsyncIterator[Letter]:
        for letter in LETTERS[topic]:
            yield letter

    async def sizes(self, topics: Iterable[str]) -> dict[str, int]:
        return {t: len(LETTERS[t]) for t in topics}

    async def redriven(self) -> set[str]:
        return set()

    async def redrive(self, letters: Sequence[Letter], *, dry_run: bool) -> RedriveResult:
        FakeStore.redriven_letters = list(letters)
        return RedriveResult(selected=len(letters), redriven=0 if dry_run else len(letters))

    async def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def fake_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "DeadLetterStore", FakeStore)


def invoke(*args: str) -> Result:
    """The CLI in a thread of its own: its ``asyncio.run`` must not close the tests' event loop."""
    settings = GatewaySettings(kafka=KafkaSettings(topic_prefix=PREFIX))
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(CliRunner().invoke, cli.app, list(args), obj=settings, terminal_width=200).result()


def run(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("command", ["list", "show", "redrive"])
def test_every_command_offers_the_selection_options_before_its_own(command: str) -> None:
    help_text = run(command, "--help").output
    positions = [help_text.index(option) for option in ("--reason", "--service", "--topic")]
    own = {"list": "--json", "show": "--limit", "redrive": "--dry-run"}[command]
    assert positions == sorted(positions) and positions[-1] < help_text.index(own)


def test_list_and_show_select_by_reason_service_and_topic() -> None:
    rows = [json.loads(line) for line in run("list", "--json", "-r", "invalid_tweet", "-r", "missing_field").output
            .splitlines()]
    assert {row["topic"]: row["matching"] for row in rows} == {
        "tweets.raw.dlq": 1, "tweets.labels.dlq": 0, "tweets.rejected": 1
    }
    shown = run("show", "--json", "--service", "stance", "--service", "gateway-indexer", "--limit", "5").output
    assert sorted(json.loads(line)["offset"] for line in shown.splitlines()) == [2, 3]
    only = run("show", "--json", "--topic", "tweets.labels.dlq").output
    assert [json.loads(line)["offset"] for line in only.splitlines()] == [3]


def test_redrive_leaves_the_rejects_out_and_an_unknown_topic_is_refused() -> None:
    out = run("redrive", "--dry-run").output
    assert "3 matching dead letters" in out and "would republish 3" in out
    assert [letter.offset for letter in FakeStore.redriven_letters] == [1, 2, 3]
    run("redrive", "-s", "emotion")
    assert [letter.offset for letter in FakeStore.redriven_letters] == [1]
    refused = invoke("show", "--topic", "nope")
    assert refused.exit_code == 2 and "no dead-letter topic 'nope'" in refused.output
