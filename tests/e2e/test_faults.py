"""The fault suite: the real services as processes, on a private Kafka broker and Elasticsearch
node that the tests SIGKILL and restart (never the shared ones on 9092/9200).

Stance runs against the local OpenAI-compatible fake (tests/fakes/fake_llm_api.py) and emotion
with the tiny test model, so the suite measures delivery, not inference. Every scenario ends
with the same checks of the data, not of counts: every replayed tweet is indexed with its
source fields equal to the input file's, its emotion and stance equal to the last committed
label event for it, no label-only document remains, the labels topic holds exactly one
committed event per tweet and task (read_committed), and the dead-letter topics hold only what
the scenario expects. Every wait has a deadline. The figures each scenario measured are printed
(``pytest -s`` shows them).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.faults import (
    committed_labels,
    data_mismatches,
    dead_letters,
    incomplete_ids,
    index_state,
    indexed_documents,
    read_dataset,
    wait_for_members,
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


DLQ_TOPICS = ("tweets.raw.dlq", "tweets.labels.dlq", "tweets.requests.emotion.dlq", "tweets.requests.stance.dlq")


def assert_nothing_lost_nothing_twice(
    stack: Stack, infra: PrivateInfra, index: str, ids: list[str], dataset: Path
) -> int:
    """The data, not counts: every tweet indexed as it was in the input with the last committed
    label of each task; no label-only document; one committed label event per tweet and task;
    no dead letters. Returns the dead letters found (0)."""
    assert incomplete_ids(infra.es_url, index, ids) == []
    labels = committed_labels(infra.bootstrap, stack.env["KAFKA_TOPIC_PREFIX"] + "tweets.labels")
    for task in ("emotion", "stance"):
        assert labels.missing(ids, task) == [], f"tweets without a committed {task} label event"
    assert labels.duplicates() == 0, "duplicate committed label events"
    assert sum(len(c) for c in labels.per_task.values()) == 2 * len(ids)
    mismatches = data_mismatches(read_dataset(dataset), indexed_documents(infra.es_url, index), labels)
    assert mismatches == [], f"{len(mismatches)} differences, first: {mismatches[:5]}"
    letters = {t: dead_letters(infra.bootstrap, stack.env["KAFKA_TOPIC_PREFIX"] + t) for t in DLQ_TOPICS}
    assert {t: len(found) for t, found in letters.items() if found} == {}, "unexpected dead letters"
    return sum(len(found) for found in letters.values())


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
    dead = assert_nothing_lost_nothing_twice(stack, infra, index, ids, tmp_path / "tweets.jsonl")
    print(
        f"\nFAULTS sigkills: {len(kills)} kills ({', '.join(f'{n} x{kills.count(n)}' for n in WORKERS)}) during a "
        f"{total}-tweet replay; all labelled {took:.0f}s after the replay; lost 0; duplicate label events 0; "
        f"dead letters {dead}"
    )


def last_held_mark(stack: Stack, key: str) -> str | None:
    """The last ``HELD-TRANSACTION`` line a worker printed (tests/support/held_transactions.py)."""
    lines = [line for line in (stack.logs / f"{key}.log").read_text(errors="replace").splitlines()
             if line.startswith("HELD-TRANSACTION ")]
    return lines[-1] if lines else None


def test_sigkills_inside_open_transactions_commit_no_label_twice(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total, kills_wanted = 3000, 6
    ids = write_dataset(tmp_path / "tweets.jsonl", total)
    stack.env["HELD_TRANSACTION_S"] = "1.5"
    stack.start("gateway-indexer", replica=0)
    services = ("emotion", "stance")

    def start_held(service: str) -> str:
        # A worker's transaction stays open 1.5 s before each commit (labels written, offsets sent).
        stack.env["HELD_TRANSACTION_SERVICE"] = service
        stack.processes.pop(f"{service}-0", None)
        return stack.start(service, replica=0, module="tests.support.held_transactions")

    for service in services:
        start_held(service)
    replay = start_replay(stack, tmp_path / "tweets.jsonl", "--rate", "60")
    landed: list[str] = []
    deadline = time.monotonic() + 400
    while len(landed) < kills_wanted and time.monotonic() < deadline:
        service = services[len(landed) % 2]
        key = f"{service}-0"
        stack.assert_running()
        mark = last_held_mark(stack, key)
        if mark is None or not mark.startswith("HELD-TRANSACTION open"):
            time.sleep(0.1)
            continue
        stack.kill(key)  # SIGKILL while the transaction is open
        after = last_held_mark(stack, key)
        if after is not None and after.startswith("HELD-TRANSACTION open"):
            landed.append(f"{service} ({after.split()[-1]})")  # no commit was printed before it died
        start_held(service)
        time.sleep(3)  # let the restarted worker fence the old transaction and make progress
    assert len(landed) >= 5, f"only {len(landed)} kills landed inside an open transaction: {landed}"
    assert replay.wait(300) == 0
    took = wait_until_labelled(stack, infra.es_url, index, total, timeout=600)
    dead = assert_nothing_lost_nothing_twice(stack, infra, index, ids, tmp_path / "tweets.jsonl")
    print(
        f"\nFAULTS kills-in-transactions: {len(landed)} SIGKILLs landed inside an open transaction "
        f"({', '.join(landed)}) during a {total}-tweet replay; all labelled {took:.0f}s after; lost 0; "
        f"duplicate label events 0; dead letters {dead}"
    )


def test_elasticsearch_outage_while_scaling_one_to_three_and_back_loses_nothing(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total = 3000
    ids = write_dataset(tmp_path / "tweets.jsonl", total)
    for name in WORKERS:
        stack.start(name, replica=0)
    # Slow enough (100 s) that the replay still publishes when Elasticsearch dies, even on a busy host.
    replay = start_replay(stack, tmp_path / "tweets.jsonl", "--rate", "30")
    wait_until_labelled(stack, infra.es_url, index, 100, timeout=180)
    # Scale out mid-replay: 1 → 3 replicas of every worker, each a member of its group before the fault.
    for name in WORKERS:
        for replica in (1, 2):
            stack.start(name, replica=replica)
    prefix = stack.env["KAFKA_TOPIC_PREFIX"]
    wait_for_members(stack, infra.bootstrap, {f"{prefix}{name}": 3 for name in WORKERS}, timeout=180)
    scaled_at = index_state(infra.es_url, index).complete
    wait_until_labelled(stack, infra.es_url, index, scaled_at + 150, timeout=180)  # the three replicas at work
    # Elasticsearch is SIGKILLed mid-stream and stays away 60 s; an indexer replica leaves the
    # group during the outage.
    assert replay.poll() is None, "the replay must still be publishing when Elasticsearch dies"
    infra.kill("elasticsearch")
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
    dead = assert_nothing_lost_nothing_twice(stack, infra, index, ids, tmp_path / "tweets.jsonl")
    print(
        f"\nFAULTS es-outage+scaling: Elasticsearch SIGKILLed, down {outage:.0f}s (kill to healthy) "
        f"mid-replay of {total}; "
        f"scaled 1->3->1 replicas of {', '.join(WORKERS)}; an indexer replica left during the outage; "
        f"all labelled {took:.0f}s after; lost 0; duplicate label events 0; dead letters {dead}"
    )


def test_kafka_broker_sigkilled_while_a_replay_publishes_loses_nothing_and_workers_stay_alive(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total = 3000
    ids = write_dataset(tmp_path / "tweets.jsonl", total)
    stack.env["STANCE_REQUESTS_PER_SECOND"] = "100"  # stance takes ≥ 30 s: the kill lands mid-stream
    for name in WORKERS:
        stack.start(name, replica=0)
    pids = {key: process.pid for key, process in stack.processes.items()}
    replay = start_replay(stack, tmp_path / "tweets.jsonl", "--rate", "50")
    wait_until_labelled(stack, infra.es_url, index, 200, timeout=180)
    assert replay.poll() is None, "the replay must still be publishing when the broker dies"
    killed_at = time.monotonic()
    infra.kill("kafka")
    time.sleep(5)
    infra.start("kafka")
    restart = time.monotonic() - killed_at
    replay_exit = replay.wait(600)
    resumed = 0
    if replay_exit != 0:
        # A file replay gives up on a broker that stays unreachable, and a second run resumes
        # from its checkpoint, as a user would: what it published before must not come twice.
        resumed = 1
        assert stack.replay(tmp_path / "tweets.jsonl")["published"] >= 0
    took = wait_until_labelled(stack, infra.es_url, index, total, timeout=600)
    assert {key: process.pid for key, process in stack.processes.items()} == pids  # alive, never restarted
    dead = assert_nothing_lost_nothing_twice(stack, infra, index, ids, tmp_path / "tweets.jsonl")
    print(
        f"\nFAULTS kafka-kill: broker SIGKILLed while the replay published, back in {restart:.0f}s, replay exit "
        f"{replay_exit} (resumed runs {resumed}); {total} tweets; workers alive; all labelled {took:.0f}s after; "
        f"lost 0; duplicate label events 0; dead letters {dead}"
    )


def indexer_metric(stack: Stack, name: str) -> float:
    """The sum of one metric's samples on the indexer's /metrics (0 when unreachable)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{stack.env['GATEWAY_METRICS_PORT']}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def test_an_index_write_block_for_60_s_mid_stream_dead_letters_nothing_and_loses_nothing(
    stack: Stack, infra: PrivateInfra, index: str, tmp_path: Path
) -> None:
    total = 2000
    ids = write_dataset(tmp_path / "tweets.jsonl", total)
    stack.start("gateway-indexer")  # not a replica: it serves /metrics
    for name in ("emotion", "stance"):
        stack.start(name, replica=0)
    # Slow enough (100 s) that the replay still publishes when Elasticsearch dies, even on a busy host.
    replay = start_replay(stack, tmp_path / "tweets.jsonl", "--rate", "30")
    wait_until_labelled(stack, infra.es_url, index, 100, timeout=180)

    def write_block(on: bool) -> None:
        answer = httpx.put(f"{infra.es_url}/{index}/_settings", json={"index.blocks.write": on}, timeout=30)
        assert answer.status_code == 200, answer.text

    write_block(True)
    blocked_at, seen_blocked = time.monotonic(), False
    try:
        while time.monotonic() - blocked_at < 60:  # Elasticsearch refuses every write for 60 s
            stack.assert_running()
            seen_blocked = seen_blocked or indexer_metric(stack, "gateway_indexer_blocked") >= 1
            time.sleep(2)
        mid_stream = replay.poll() is None or index_state(infra.es_url, index).complete < total
        assert mid_stream, "the block must be mid-stream"
    finally:
        write_block(False)
    assert seen_blocked, "/metrics must show the indexer blocked while the block lasts"
    assert replay.wait(300) == 0
    took = wait_until_labelled(stack, infra.es_url, index, total, timeout=600)
    dead = assert_nothing_lost_nothing_twice(stack, infra, index, ids, tmp_path / "tweets.jsonl")
    blocked_s = indexer_metric(stack, "gateway_indexer_blocked_seconds_total")
    assert blocked_s > 0
    print(
        f"\nFAULTS write-block: index.blocks.write=true for 60 s mid-stream of {total}; indexer blocked "
        f"{blocked_s:.0f}s by its /metrics; all labelled {took:.0f}s after lifting; lost 0; "
        f"duplicate label events 0; dead letters {dead}"
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

