"""What exactly-once labels cost: the delivery loop with Kafka transactions vs without, same run.

Both modes run the production loop (``common.delivery.group_loop``) on the real broker over the
same tweets (the repo's sample tweets, cycled, keyed by 64-bit ids) with a handler that builds
one emotion label event per tweet (seven scores, valence, model, trace id: the real event, about
600 bytes), so only delivery differs:

- ``plain``: publish with the idempotent ``acks=all`` producer, wait for the acks, then commit
  the offsets (at least once);
- ``transactional``: begin, publish, ``send_offsets_to_transaction``, commit (exactly once).

Timed from the first batch handled to the last batch committed (group join excluded), for
each batch size, modes alternating and repeated. With a handler this cheap the ratio is the
worst case; ``added_ms_per_batch`` is what a transaction adds to every batch, to be set against
the batch's inference time (hundreds of ms for emotion, seconds for stance). Prints a table;
writes bench/results/transactions.json.

    PYTHONPATH=. .venv/bin/python bench/transactions_bench.py [--tweets 4000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from common.delivery import Subscription, group_loop
from common.events import EMOTION_LABELS, Author, TweetRecord, top_label_event
from common.kafka import OutgoingMessage, ensure_topics
from common.settings import KafkaSettings
from emotion.logic import FIXED_VALENCE_MAP, normalise_scores

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "transactions.json"


def tweets(n: int) -> list[TweetRecord]:
    texts = [
        t
        for r in json.loads((REPO / "data" / "sample_tweets.json").read_text())
        if isinstance(t := ((r.get("payload") or {}).get("tweet") or {}).get("content"), str) and t.strip()
    ]
    created = datetime(2024, 6, 1, tzinfo=UTC)
    return [
        TweetRecord(
            id=str(1_700_000_000_000_000_000 + i),
            author=Author(handle=f"bench{i % 97}"),
            created_at=created,
            text=texts[i % len(texts)],
            source="bench",
        )
        for i in range(n)
    ]


class LabelHandler:
    """One emotion label event per tweet, as the emotion service builds it; fixed scores."""

    def __init__(self, labels_topic: str) -> None:
        self.labels_topic = labels_topic
        self.first: float | None = None
        scores = [0.02, 0.01, 0.03, 0.6, 0.2, 0.1, 0.04]
        self.scores = dict(zip(EMOTION_LABELS, scores, strict=True))

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        if self.first is None:
            self.first = time.perf_counter()
        records = [TweetRecord.model_validate_json(r.value or b"") for r in batch]
        scores = normalise_scores(self.scores)
        events = [
            top_label_event(
                record.id,
                "emotion",
                scores,
                model="j-hartmann/emotion-english-distilroberta-base",
                model_revision="0e1cd914e3d46199ed785853e12b57304e04178b",
                valence=FIXED_VALENCE_MAP.valence(scores),
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            )
            for record in records
        ]
        return [OutgoingMessage(self.labels_topic, e.tweet_id, e.model_dump_json().encode()) for e in events]


async def produce(kafka: KafkaSettings, topic: str, records: list[TweetRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, t.model_dump_json().encode(), key=t.id.encode()) for t in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def one_run(
    base: KafkaSettings, records: list[TweetRecord], transactional: bool, batch_size: int
) -> dict[str, float]:
    kafka = base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}.", "replica_id": "bench"})
    topics = kafka.topics
    await ensure_topics(kafka, [topics.raw, topics.labels])
    await produce(kafka, topics.raw, records)
    handler = LabelHandler(topics.labels)
    committed = 0
    done = asyncio.Event()
    last = 0.0

    def on_committed(batch: list[ConsumerRecord]) -> None:
        nonlocal committed, last
        committed += len(batch)
        last = time.perf_counter()
        if committed >= len(records):
            done.set()

    subscription = Subscription(
        "bench", kafka.group("bench"), [topics.raw], batch_size, max_wait_ms=50, transactional=transactional
    )
    loop = group_loop(kafka, subscription, handler, on_committed=on_committed)
    try:
        async with loop:
            runner = asyncio.create_task(loop.run())
            await asyncio.wait_for(done.wait(), 600)
            loop.stopping.set()
            await runner
    finally:
        await delete_topics(kafka, [topics.raw, topics.labels])
    assert handler.first is not None
    elapsed = last - handler.first
    return {"tweets_per_s": len(records) / elapsed, "seconds": elapsed}


async def delete_topics(kafka: KafkaSettings, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def main(n: int, rounds: int, batch_sizes: list[int]) -> dict[str, object]:
    base = KafkaSettings()
    records = tweets(n)
    rows = []
    for batch_size in batch_sizes:
        rates: dict[str, list[float]] = {"plain": [], "transactional": []}
        for round_ in range(rounds):
            # Alternate which mode goes first, so drift in machine load hits both alike.
            order = [False, True] if round_ % 2 == 0 else [True, False]
            for transactional in order:
                result = await one_run(base, records, transactional, batch_size)
                rates["transactional" if transactional else "plain"].append(result["tweets_per_s"])
        plain, txn = statistics.median(rates["plain"]), statistics.median(rates["transactional"])
        # What a transaction adds per batch: what it costs a worker whose handler is slower.
        added_ms = batch_size * (1 / txn - 1 / plain) * 1000
        row = {
            "batch_size": batch_size,
            "plain_tweets_per_s": round(plain, 1),
            "transactional_tweets_per_s": round(txn, 1),
            "ratio": round(txn / plain, 3),
            "added_ms_per_batch": round(added_ms, 1),
            "runs": rates,
        }
        rows.append(row)
        print(
            f"batch {batch_size:>4}: plain {plain:8.1f}/s  transactional {txn:8.1f}/s  "
            f"ratio {txn / plain:.3f}  +{added_ms:.1f} ms per batch"
        )
    result: dict[str, object] = {
        "tweets": n,
        "rounds": rounds,
        "rows": rows,
        "measured_at": datetime.now(UTC).isoformat(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", default="16,32,128", help="comma-separated (stance 16, emotion 32)")
    args = parser.parse_args()
    asyncio.run(main(args.tweets, args.rounds, [int(b) for b in args.batch_sizes.split(",")]))
