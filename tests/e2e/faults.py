"""What the fault tests check after each scenario, read from the real servers.

- Elasticsearch: every replayed tweet's document, its source fields compared with the input
  file and its labels with the last committed label event; no label-only documents.
- Kafka: the committed label events (``isolation_level=read_committed``), counted per tweet
  and task, so a duplicate committed event cannot hide behind Elasticsearch's ``_id`` upserts;
  and the dead-letter topics, which must hold only what a scenario expects.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e.stack import Stack

T = TypeVar("T")
FIRST_ID = 1_710_000_000_000_000_000  # 64-bit ids, as real tweet ids are


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on its own loop in its own thread (the tests' session loop stays untouched)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join(300)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def write_dataset(path: Path, n: int, poison: dict[int, str] | None = None) -> list[str]:
    """``n`` spec-format tweets as JSON Lines; ``poison`` puts a marker into some texts. Returns the ids."""
    ids = []
    with path.open("w") as out:
        for i in range(n):
            tweet_id = str(FIRST_ID + i)
            ids.append(tweet_id)
            opinion = ("I love the new transit plan", "I hate the new transit plan", "The plan was published")[i % 3]
            text = f"Tweet {i}: {opinion}. {(poison or {}).get(i, '')}".strip()
            record = {
                "id": tweet_id,
                "user": {"username": f"User {i}", "handle": f"@user{i}", "verified": False},
                "meta": {"created_at": f"2024-06-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", "hashtags": ["#faults"]},
                "payload": {"tweet": {"content": text}},
                "metrics": {"retweets": i, "likes": 2 * i},
            }
            out.write(json.dumps(record) + "\n")
    return ids


@dataclass
class IndexState:
    total: int = 0
    complete: int = 0  # the tweet itself and both its labels


# A label can be indexed before its tweet (the indexer may reach tweets.labels first, e.g. after
# an outage): such a label-only document is not done yet, so "done" needs the tweet's text too.
COMPLETE = {
    "bool": {
        "filter": [
            {"exists": {"field": "text"}},
            {"exists": {"field": "emotion.label"}},
            {"exists": {"field": "stance.label"}},
        ]
    }
}


def index_state(es_url: str, index: str) -> IndexState:
    """Documents in ``index``, and the complete ones (tweet and both labels); zero while
    Elasticsearch is down."""
    try:
        with httpx.Client(base_url=es_url, timeout=10) as es:
            es.post(f"/{index}/_refresh")
            total = es.post(f"/{index}/_count", json={"query": {"match_all": {}}})
            labelled = es.post(f"/{index}/_count", json={"query": COMPLETE})
            if total.status_code != 200 or labelled.status_code != 200:
                return IndexState()
            return IndexState(total.json()["count"], labelled.json()["count"])
    except httpx.TransportError:
        return IndexState()


def incomplete_ids(es_url: str, index: str, ids: list[str]) -> list[str]:
    """Which of ``ids`` are missing, lack the tweet itself (label-only) or lack a label."""
    found: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=es_url, timeout=30) as es:
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            docs = es.post(f"/{index}/_mget", json={"ids": chunk}).json()["docs"]
            found |= {d["_id"]: d.get("_source", {}) for d in docs if d.get("found")}
    return [i for i in ids if not all(found.get(i, {}).get(field) for field in ("text", "emotion", "stance"))]


def wait_until_labelled(
    stack: Stack, es_url: str, index: str, expected: int, timeout: float, also: Callable[[], None] | None = None
) -> float:
    """Poll until ``expected`` documents hold their tweet and both labels; every worker must stay
    alive. Returns seconds."""
    started = time.monotonic()
    state = IndexState()
    while time.monotonic() - started < timeout:
        stack.assert_running()
        if also is not None:
            also()
        state = index_state(es_url, index)
        if state.complete >= expected:
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(
        f"after {timeout:.0f}s only {state.complete} of {expected} tweets are indexed with both labels ({state})"
    )


def wait_for_members(stack: Stack, bootstrap: str, groups: dict[str, int], timeout: float) -> float:
    """Poll until each consumer group has its expected number of members (replicas that joined
    and hold their share of the partitions); every worker must stay alive. Returns seconds."""

    async def members(admin: AIOKafkaAdminClient, group: str) -> int:
        # One group per request: aiokafka 0.12 misparses a DescribeGroups response with several.
        (response,) = await admin.describe_consumer_groups([group])
        return sum(len(g["members"]) for g in response.to_object()["groups"] if g["state"] == "Stable")

    async def counts() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return {group: await members(admin, group) for group in groups}
        finally:
            await admin.close()

    started = time.monotonic()
    found: dict[str, int] = {}
    while time.monotonic() - started < timeout:
        stack.assert_running()
        found = run_async(counts)
        if found == groups:
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"after {timeout:.0f}s the consumer groups have {found} members, not {groups}")


@dataclass
class LabelCount:
    per_task: dict[str, Counter[str]] = field(default_factory=dict)
    # per task and tweet, the last committed event (offset order within the tweet's partition)
    last: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def duplicates(self) -> int:
        """Committed label events beyond the first, per tweet and task."""
        return sum(n - 1 for counts in self.per_task.values() for n in counts.values() if n > 1)

    def missing(self, ids: list[str], task: str) -> list[str]:
        counts = self.per_task.get(task, Counter())
        return [i for i in ids if counts[i] == 0]


def committed_labels(bootstrap: str, topic: str) -> LabelCount:
    """Every committed label event on ``topic`` (read_committed, up to the last stable offset)."""

    async def read() -> LabelCount:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                await consumer.force_metadata_update()
                partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)  # the last stable offsets under read_committed
            result = LabelCount()
            deadline = time.monotonic() + 120
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not read {topic} up to {ends} within 120 s")
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        event = json.loads(record.value)
                        result.per_task.setdefault(event["task"], Counter())[event["tweet_id"]] += 1
                        result.last.setdefault(event["task"], {})[event["tweet_id"]] = event
            return result
        finally:
            await consumer.stop()

    return run_async(read)


def dead_letters(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every dead letter on ``topic`` (read from the beginning until a quiet second)."""

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        try:
            letters: list[dict[str, Any]] = []
            for _ in range(30):  # bounded: at most 30 polls of 1 s
                polled = await consumer.getmany(timeout_ms=1000)
                if not polled:
                    break
                letters += [json.loads(r.value) for rs in polled.values() for r in rs]
            return letters
        finally:
            await consumer.stop()

    return run_async(read)


def read_dataset(path: Path) -> dict[str, dict[str, Any]]:
    """The input file's records by tweet id (what ``write_dataset`` wrote)."""
    return {record["id"]: record for record in map(json.loads, path.read_text().splitlines())}


def indexed_documents(es_url: str, index: str) -> dict[str, dict[str, Any]]:
    """Every document in ``index`` by ``_id`` (the fault datasets hold at most 5,000)."""
    with httpx.Client(base_url=es_url, timeout=60) as es:
        es.post(f"/{index}/_refresh").raise_for_status()
        found = es.post(f"/{index}/_search", json={"size": 10_000, "query": {"match_all": {}}, "sort": ["_doc"]})
        found.raise_for_status()
        hits = found.json()["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def data_mismatches(
    dataset: dict[str, dict[str, Any]], documents: dict[str, dict[str, Any]], labels: LabelCount
) -> list[str]:
    """Each way the index differs from the input and from the committed label events: a missing
    or extra document, a label-only document, a source field that is not the input's, a label
    that is not the last committed event for its tweet and task. Empty when the data is right."""
    problems = [f"{tweet_id}: not indexed" for tweet_id in dataset if tweet_id not in documents]
    problems += [f"{doc_id}: indexed but never replayed" for doc_id in documents if doc_id not in dataset]
    for tweet_id, record in dataset.items():
        doc = documents.get(tweet_id)
        if doc is None:
            continue
        if "text" not in doc:
            problems.append(f"{tweet_id}: label-only document (the tweet itself was never indexed)")
            continue
        expected_created = datetime.fromisoformat(record["meta"]["created_at"].replace("Z", "+00:00"))
        author = doc.get("author") or {}
        if doc["text"] != record["payload"]["tweet"]["content"]:
            problems.append(f"{tweet_id}: text {doc['text']!r} is not the input's")
        if datetime.fromisoformat(doc["created_at"].replace("Z", "+00:00")) != expected_created:
            problems.append(f"{tweet_id}: created_at {doc['created_at']} is not {record['meta']['created_at']}")
        if author.get("handle", "").lstrip("@") != record["user"]["handle"].lstrip("@"):
            problems.append(f"{tweet_id}: author handle {author.get('handle')!r} is not the input's")
        if author.get("username") != record["user"]["username"]:
            problems.append(f"{tweet_id}: author username {author.get('username')!r} is not the input's")
        for task in ("emotion", "stance"):
            event = labels.last.get(task, {}).get(tweet_id)
            stored = doc.get(task) or {}
            if event is None:
                problems.append(f"{tweet_id}: no committed {task} label event")
            elif (stored.get("label"), stored.get("produced_at")) != (event["label"], event["produced_at"]):
                problems.append(
                    f"{tweet_id}: stored {task} {stored.get('label')} of {stored.get('produced_at')} is not the last "
                    f"committed event ({event['label']} of {event['produced_at']})"
                )
    return problems
