"""Elasticsearch's CPU per tweet against the indexer's bulk size: why the indexer lingers.

    PYTHONPATH=. .venv/bin/python bench/es_bulk_bench.py [--tweets 2000] [--bulks 8,32,200]

The real indexer handler (``gateway.indexer.handlers.IndexBatchHandler``: one bulk per batch)
writes against the local Elasticsearch node what the pipeline sends it: each tweet (generated
with real tweet lengths, bench/workload.py), then its emotion label event, then its stance
label event, in bulks of each size, into a fresh index per size. The Elasticsearch process's
CPU seconds (/proc) over the run, divided by the tweets, is the figure; the indexer's own CPU
is this process's. Writes bench/results/es_bulk.json.

In the pipeline, labels reach the indexer a committed transaction at a time (a few to a few
dozen per poll); ``GATEWAY_INDEXER_LINGER_MS`` lets the broker gather them into bigger bulks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from bench.pipeline_bench import ES_URL, RESULTS, cpu_seconds, infra_pids
from bench.workload import generate_texts
from common.events import Author, LabelEvent, TweetRecord
from common.settings import KafkaSettings
from common.tweet_store import TweetStore
from gateway.documents import ensure_indices
from gateway.indexer.handlers import IndexBatchHandler
from gateway.settings import GatewaySettings

ID_BASE = 1_760_000_000_000_000_000


def records(texts: list[str], topics: Any) -> dict[str, list[ConsumerRecord]]:
    """The three streams the indexer reads, as Kafka would hand them over."""
    now = datetime.now(UTC)
    out: dict[str, list[ConsumerRecord]] = {"tweets": [], "emotion": [], "stance": []}
    for i, text in enumerate(texts):
        tweet_id = str(ID_BASE + i)
        tweet = TweetRecord(
            id=tweet_id, author=Author(handle=f"bench{i % 997}"), created_at=now, text=text, source="bench"
        )
        emotion = LabelEvent(
            tweet_id=tweet_id,
            task="emotion",
            label="joy",
            score=0.6,
            scores={"joy": 0.6, "neutral": 0.3, "anger": 0.1},
            model="distilroberta-shape",
            valence=0.5,
        )
        stance = LabelEvent(
            tweet_id=tweet_id,
            task="stance",
            label="OPPOSE",
            score=0.7,
            scores={"SUPPORT": 0.1, "OPPOSE": 0.7, "NEUTRAL": 0.2},
            model="gemma",
            method="probe-h2",
        )
        for name, topic, event in (
            ("tweets", topics.raw, tweet),
            ("emotion", topics.labels, emotion),
            ("stance", topics.labels, stance),
        ):
            value = event.model_dump_json().encode()
            out[name].append(ConsumerRecord(topic, 0, i, 0, 0, tweet_id.encode(), value, None, 0, 0, []))
    return out


async def run(texts: list[str], bulk: int, es_pid: int) -> dict[str, float]:
    index = f"bench-bulk-{uuid.uuid4().hex[:8]}"
    settings = GatewaySettings(es_url=ES_URL, index=index, kafka=KafkaSettings())
    store = TweetStore(settings.es_url, request_timeout_s=settings.es_request_timeout_s)
    try:
        await ensure_indices(store, settings)
        handler = IndexBatchHandler(store, index, settings.kafka.topics, clock=lambda: datetime.now(UTC))
        streams = records(texts, settings.kafka.topics)
        start, es_cpu, own_cpu = time.perf_counter(), cpu_seconds(es_pid), time.process_time()
        for stream in ("tweets", "emotion", "stance"):  # each tweet, then its labels, as they arrive
            for i in range(0, len(texts), bulk):
                dead = await handler(streams[stream][i : i + bulk])
                assert not dead, f"dead-lettered: {dead[:1]}"
        wall, es_cpu, own_cpu = time.perf_counter() - start, cpu_seconds(es_pid) - es_cpu, time.process_time() - own_cpu
        assert handler.stats.indexed == 3 * len(texts)
    finally:
        await store.delete_indices(f"{index}*")
        await store.close()
    n = len(texts)
    return {
        "bulk": bulk,
        "seconds": round(wall, 2),
        "es_cpu_ms_per_tweet": round(1000 * es_cpu / n, 2),
        "indexer_cpu_ms_per_tweet": round(1000 * own_cpu / n, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=2000)
    parser.add_argument("--bulks", default="8,32,200", help="bulk sizes (messages per indexer batch)")
    parser.add_argument("--out", type=Path, default=RESULTS / "es_bulk.json")
    args = parser.parse_args()
    es_pid = infra_pids()["elasticsearch"]
    texts = generate_texts(args.tweets)
    rows = [asyncio.run(run(texts, int(b), es_pid)) for b in args.bulks.split(",")]
    report = {
        "what": "Elasticsearch CPU per tweet (tweet + emotion + stance writes, one bulk per batch) by bulk size",
        "tweets": args.tweets,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
