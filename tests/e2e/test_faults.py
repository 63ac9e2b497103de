"""The fault suite: the real services as processes, on a private Kafka broker and Elasticsearch
node that the tests kill, stop and restart (never the shared ones on 9092/9200).

Stance runs against the local OpenAI-compatible fake (tests/fakes/fake_llm_api.py) and emotion
with the tiny test model, so the suite measures delivery, not inference. Every scenario ends
with the same two checks: every replayed tweet is indexed with both labels, and the labels
topic holds exactly one committed event per tweet and task (read_committed). Every wait has
a deadline. The figures each scenario measured are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.faults import (
    committed_labels,
    dead_letters,
    incomplete_ids,
    index_state,
    wait_until_labelled,
    write_dataset,
)
from tests.e2e.private_infra import PrivateInfra
from tests.e2e.stack import REPO, Stack
from tests.fakes.fake_llm_api import FakeLlmApi, running_fake_api

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.model, pytest.mark.faults]

WORKERS = ("gateway-indexer", "emotion", "stance")


@pytest.fixture(scope="module")
def infra() -> Iterator[PrivateInfra]:
    with PrivateInfra.running() as private:
        yield private


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeLlmApi]:
    with running_fake_api() as api:
        yield api


@pytest.fixture
def stack(tmp_path: Path, infra: PrivateInfra, fake_api: FakeLlmApi, tiny_emotion_model: Path) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:10]
    stack = Stack.create(
        tmp_path,
        f"faults-{suffix}.",
        f"faults-{suffix}",
        {
            "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
            "GATEWAY_ES_URL": infra.es_url,
            "EMOTION_MODEL": str(tiny_emotion_model),
            "EMOTION_BATCH_SIZE": "32",
            "EMOTION_TORCH_THREADS": "1",
            "STANCE_PROVIDER": "openai",
            "STANCE_API_BASE_URL": fake_api.base_url,
            "STANCE_API_KEY": "fault-suite-key",
            "STANCE_ALLOW_INSECURE_API_URL": "true",
            "STANCE_REQUESTS_PER_SECOND": "1000",
            "STANCE_MAX_CONCURRENT_REQUESTS": "16",
            "STANCE_BATCH_SIZE": "64",
            "STANCE_QUOTA_REFRESH_S": "2",
            "GATEWAY_INDEXER_BATCH_SIZE": "500",
            "LOG_LEVEL": "WARNING",
        },
    )
    stack.env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)  # no tracing: nothing listens on the private side
    yield stack
    stack.stop_all()


@pytest.fixture
def index(stack: Stack) -> str:
    return stack.env["GATEWAY_INDEX"]


def start_replay(stack: Stack, dataset: Path, *args: str) -> subprocess.Popen[bytes]:
    log = (stack.logs / "replay.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "ingestor", "replay", str(dataset), *args],
        cwd=REPO,
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def assert_nothing_lost_nothing_twice(stack: Stack, infra: PrivateInfra, index: str, ids: list[str]) -> int:
    """Every tweet indexed with both labels; one committed label event per tweet and task."""
    assert incomplete_ids(infra.es_url, index, ids) == []
    assert index_state(infra.es_url, index).total == len(ids)
    labels = committed_labels(infra.bootstrap, stack.env["KAFKA_TOPIC_PREFIX"] + "tweets.labels")
    for task in ("emotion", "stance"):
        assert labels.missing(ids, task) == [], f"tweets without a committed {task} label event"
    assert labels.duplicates() == 0, "duplicate committed label events"
    assert sum(len(c) for c in labels.per_task.values()) == 2 * len(ids)
    return labels.duplicates()


def test_ten_sigkills_over_every_worker_lose_no_tweet_and_commit_each_label_once(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total, kills_wanted = 5000, 12
    ids = write_dataset(tmp_path / "tweets.jsonl", total)
    for name in WORKERS:
        stack.start(name, replica=0)
    replay = start_replay(stack, tmp_path / "tweets.jsonl", "--rate", "100")
    started = time.monotonic()
    kills: list[str] = []
    # Kill one worker every 4 s in turn, and restart it at once with the same REPLICA_ID (the
    # supervisor's job in production): each service dies 4 times while the tweets stream in.
    while len(kills) < kills_wanted and time.monotonic() - started < 300:
        time.sleep(4)
        stack.assert_running()
        name = WORKERS[len(kills) % len(WORKERS)]
        stack.kill(f"{name}-0")
        stack.start(name, replica=0)
        kills.append(name)
    assert len(kills) == kills_wanted
    assert replay.wait(300) == 0
    took = wait_until_labelled(stack, infra.es_url, index, total, timeout=600)
    duplicates = assert_nothing_lost_nothing_twice(stack, infra, index, ids)
    print(
        f"\nFAULTS sigkills: {len(kills)} kills ({', '.join(f'{n} x{kills.count(n)}' for n in WORKERS)}) during a "
        f"{total}-tweet replay; all labelled {took:.0f}s after the replay; lost 0; duplicate label events {duplicates}"
    )


def test_elasticsearch_outage_while_scaling_one_to_three_and_back_loses_nothing(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total = 3000
    ids = write_dataset(tmp_path / "tweets.jsonl", total)
    for name in WORKERS:
        stack.start(name, replica=0)
    replay = start_replay(stack, tmp_path / "tweets.jsonl", "--rate", "60")
    wait_until_labelled(stack, infra.es_url, index, 100, timeout=180)
    # Scale out mid-replay: 1 → 3 replicas of every worker.
    for name in WORKERS:
        for replica in (1, 2):
            stack.start(name, replica=replica)
    wait_until_labelled(stack, infra.es_url, index, 600, timeout=180)
    # Elasticsearch goes away for 60 s; an indexer replica leaves the group during the outage.
    infra.stop("elasticsearch")
    down_since = time.monotonic()
    time.sleep(10)
    stack.assert_running()
    assert stack.stop("gateway-indexer-2") == 0, "an indexer replica leaving during the outage must exit cleanly"
    deadline = down_since + 60
    while time.monotonic() < deadline:  # the outage: the workers must ride it out
        stack.assert_running()
        time.sleep(2)
    infra.start("elasticsearch")
    outage = time.monotonic() - down_since
    # Scale back in to one replica each; each leaves cleanly.
    exits = {key: stack.stop(key) for key in [f"{n}-{r}" for n in WORKERS for r in (1, 2)] if key in stack.processes}
    assert all(code == 0 for code in exits.values()), f"replicas that left failed: {exits}"
    assert replay.wait(300) == 0
    took = wait_until_labelled(stack, infra.es_url, index, total, timeout=600)
    duplicates = assert_nothing_lost_nothing_twice(stack, infra, index, ids)
    print(
        f"\nFAULTS es-outage+scaling: Elasticsearch down {outage:.0f}s (stop to healthy) mid-replay of {total}; "
        f"scaled 1->3->1 replicas of {', '.join(WORKERS)}; an indexer replica left during the outage; "
        f"all labelled {took:.0f}s after; lost 0; duplicate label events {duplicates}"
    )


def test_kafka_broker_restart_mid_stream_loses_nothing_and_workers_stay_alive(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total = 3000
    ids = write_dataset(tmp_path / "tweets.jsonl", total)
    stack.env["STANCE_REQUESTS_PER_SECOND"] = "100"  # stance takes ≥ 30 s: the restart lands mid-stream
    for name in WORKERS:
        stack.start(name, replica=0)
    pids = {key: process.pid for key, process in stack.processes.items()}
    summary = stack.replay(tmp_path / "tweets.jsonl")
    assert summary["published"] == total
    wait_until_labelled(stack, infra.es_url, index, 200, timeout=180)
    assert index_state(infra.es_url, index).both < total, "the stream must still be flowing at the restart"
    restart_started = time.monotonic()
    infra.stop("kafka")
    infra.start("kafka")
    restart = time.monotonic() - restart_started
    took = wait_until_labelled(stack, infra.es_url, index, total, timeout=600)
    assert {key: process.pid for key, process in stack.processes.items()} == pids  # alive, never restarted
    duplicates = assert_nothing_lost_nothing_twice(stack, infra, index, ids)
    print(
        f"\nFAULTS kafka-restart: broker down and back in {restart:.0f}s mid-stream of {total}; workers alive; "
        f"all labelled {took:.0f}s after; lost 0; duplicate label events {duplicates}"
    )


def test_a_record_that_makes_inference_raise_is_dead_lettered_and_every_other_tweet_is_labelled(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total, poison_at, marker = 600, 321, "POISON-7f3a91"
    ids = write_dataset(tmp_path / "tweets.jsonl", total, poison={poison_at: marker})
    stack.env["POISON_MARKER"] = marker
    stack.start("gateway-indexer", replica=0)
    stack.start("stance", replica=0)
    stack.start("emotion", replica=0, module="tests.support.poison_emotion")
    assert stack.replay(tmp_path / "tweets.jsonl")["published"] == total
    healthy = [i for i in ids if i != ids[poison_at]]
    wait_until_labelled(stack, infra.es_url, index, len(healthy), timeout=300)
    assert incomplete_ids(infra.es_url, index, ids) == [ids[poison_at]]
    letters = dead_letters(infra.bootstrap, stack.env["KAFKA_TOPIC_PREFIX"] + "tweets.raw.dlq")
    assert [(d["key"], d["service"]) for d in letters] == [(ids[poison_at], "emotion")]
    assert marker in letters[0]["detail"]
    labels = committed_labels(infra.bootstrap, stack.env["KAFKA_TOPIC_PREFIX"] + "tweets.labels")
    assert labels.missing(ids, "emotion") == [ids[poison_at]]
    assert labels.missing(ids, "stance") == []
    assert labels.duplicates() == 0
    reason = letters[0]["reason"]
    print(f"\nFAULTS poison: 1 poison record of {total} dead-lettered ({reason}); {len(healthy)} labelled")
