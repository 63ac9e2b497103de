"""Replay a dataset through every service, as real processes, on the real servers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.events import LabelEvent
from common.settings import KafkaSettings
from tests.conftest import SAMPLE_DATASET
from tests.e2e.conftest import MakeStack
from tests.e2e.stack import REPO, Stack
from tests.support.kafka_probe import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.model]


def wait_for(
    probe: Callable[[], Any], done: Callable[[Any], bool], stack: Stack, what: str, timeout: float = 600
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        stack.assert_running()
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {value!r:.500}")
        time.sleep(1)


def labelled(items: list[dict[str, Any]], *tasks: str) -> list[dict[str, Any]]:
    return [item for item in items if all(item.get(task) for task in tasks)]


def run_full_pipeline(make_stack: MakeStack, dataset: Path, model: Path, gguf: Path) -> None:
    stack = make_stack({"EMOTION_MODEL": str(model), "STANCE_GGUF_PATH": str(gguf), "STANCE_PROVIDER": "llamacpp"})
    for name in ("gateway-indexer", "gateway", "emotion", "stance"):
        stack.start(name)
    stack.wait_ready()
    summary = stack.replay(dataset)

    assert summary["read"] == summary["published"] + summary["rejected"]
    assert summary["published"] > 0
    items = wait_for(
        stack.all_tweets,
        lambda items: len(labelled(items, "emotion", "stance")) >= summary["published"],
        stack,
        f"{summary['published']} tweets with emotion and stance",
    )
    assert len(items) == summary["published"]  # published = indexed, nothing twice
    assert len({item["id"] for item in items}) == len(items)
    for item in items:
        assert item["emotion"]["model"] == str(model)
        assert item["emotion"]["label"] in item["emotion"]["scores"]
        assert -1 <= item["emotion"]["valence"] <= 1
        assert item["stance"]["label"] in ("SUPPORT", "OPPOSE", "NEUTRAL")
        assert abs(sum(item["stance"]["scores"].values()) - 1) < 1e-3


def test_sample_dataset_end_to_end(make_stack: MakeStack, tiny_emotion_model: Path, stance_gguf: Path) -> None:
    run_full_pipeline(make_stack, SAMPLE_DATASET, tiny_emotion_model, stance_gguf)


def test_shared_dataset_end_to_end(
    make_stack: MakeStack, tiny_emotion_model: Path, stance_gguf: Path, shared_dataset: Path
) -> None:
    run_full_pipeline(make_stack, shared_dataset, tiny_emotion_model, stance_gguf)


def _generated_dataset(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            record = {
                "id": str(1_700_000_000_000_000_000 + i),
                "user": {"username": f"User {i}", "handle": f"@user{i}", "verified": False},
                "meta": {"created_at": f"2024-06-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", "hashtags": ["#e2e"]},
                "payload": {
                    "tweet": {"content": f"Tweet {i}: the new transit plan is {'great' if i % 2 else 'awful'}"}
                },
                "metrics": {"retweets": i, "likes": 2 * i},
            }
            out.write(json.dumps(record) + "\n")
    return path


def test_emotion_crash_mid_replay_loses_nothing_and_duplicates_nothing(
    make_stack: MakeStack, tiny_emotion_model: Path, tmp_path: Path
) -> None:
    total = 300
    dataset = _generated_dataset(tmp_path / "many.jsonl", total)
    stack = make_stack({"EMOTION_MODEL": str(tiny_emotion_model), "EMOTION_BATCH_SIZE": "8"})
    for name in ("gateway-indexer", "gateway", "emotion"):
        stack.start(name)
    stack.wait_ready()
    # The replay must outlast the crash below: start it once emotion consumes (its model load
    # alone can take longer than the replay on a busy machine).
    emotion_log = stack.logs / "emotion.log"
    wait_for(lambda: emotion_log.read_text(errors="replace"), lambda t: "partitions assigned" in t, stack, "emotion")
    replay = subprocess.Popen(
        [sys.executable, "-m", "ingestor", "replay", str(dataset), "--rate", "40"],
        cwd=REPO,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(stack.all_tweets, lambda items: len(labelled(items, "emotion")) >= 10, stack, "first labels", 120)
    assert replay.poll() is None, "the replay must still be running when the emotion service crashes"
    stack.kill("emotion")
    stack.start("emotion")
    assert replay.wait(120) == 0
    items = wait_for(
        stack.all_tweets, lambda items: len(labelled(items, "emotion")) >= total, stack, "all tweets labelled"
    )
    assert len(items) == total
    assert sorted(int(item["id"]) for item in items) == [1_700_000_000_000_000_000 + i for i in range(total)]
    # The crash replayed an uncommitted batch, yet tweets.labels holds exactly one committed
    # emotion event per tweet: the killed process's transaction was never committed.
    kafka = KafkaSettings(topic_prefix=stack.env["KAFKA_TOPIC_PREFIX"])
    events = [LabelEvent.model_validate_json(v) for _, v in asyncio.run(read_all(kafka, kafka.topics.labels))]
    per_tweet = Counter(e.tweet_id for e in events if e.task == "emotion")
    assert per_tweet == Counter(item["id"] for item in items)
